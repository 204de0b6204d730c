"""The operator commands as XEP-0050 ad-hoc commands with XEP-0004 data forms.

Clients with a command menu (Gajim, Psi, Conversations, profanity's ``/cmd``) list an agent's
commands through service discovery (XEP-0030) on its full JID. The list depends on who asks: a
controller sees every command of the agent's role, a viewer the read-only ones, anyone else none;
running a command one may not use is answered ``forbidden``. A command's arguments are the fields
of a form (a choice is a ``list-single``, several a ``list-multi``); a bad value brings the same
form back with the reason as an error note, and nothing changes. The answer is a note (``info``,
or ``error`` when a steering action did not apply), multi-line for tables. ``withdraw`` (choose offers,
then confirm) and ``objective`` (choose the kind, then its series) take two steps. The command
itself runs through the operator desk (:mod:`.desk`), like a chat command.

Disco advertises only what the agent does (disco info, ad-hoc commands, data forms, ping): SPADE
loads HTTP upload (XEP-0363), which an agent does not offer, so it is unloaded here, and the
out-of-band data features that in-band registration brings along are taken out. The embedded server (pyjabber) cannot route an IQ to a
full JID, so ad-hoc commands do not work through it: chat commands do.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any, Optional

from vmenergy.protocol.operators import Access

from .commands import ArgError, Command, Param, check_values, commands_for
from .desk import NotAuthorized
from .views import VmeAgent

__all__ = ["AdHocCommands", "COMMANDS_NS", "MAX_LIST_OPTIONS"]

COMMANDS_NS = "http://jabber.org/protocol/commands"
#: A choice among more options than this is a text field (a list of 10,000 offers helps no one).
MAX_LIST_OPTIONS = 60
#: Ad-hoc commands a person does not need (``help`` is the chat's way to list commands).
_CHAT_ONLY = ("help",)
#: Features slixmpp plugins advertise that an agent does not offer (out-of-band data, XEP-0066,
#: comes with in-band registration).
_NOT_OFFERED = ("jabber:iq:oob", "jabber:x:oob")
#: Command sessions kept (slixmpp keeps every session, finished or abandoned, for ever).
MAX_SESSIONS = 200


class _RecentSessions(OrderedDict):
    """The ad-hoc sessions store: the latest :data:`MAX_SESSIONS`, oldest dropped first."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > MAX_SESSIONS:
            self.popitem(last=False)


class AdHocCommands:
    """The ad-hoc commands of one agent: registered once its session has started."""

    def __init__(self, agent: VmeAgent) -> None:
        self.agent = agent

    def start(self) -> None:
        """Advertise what the agent is; offer the commands only if it has operators.

        An agent nobody may operate (no ``[operators]``: every swarm prosumer of a city) would
        answer every command ``forbidden`` and list none to anyone, yet registering them cost
        ~64 KiB per agent (disco nodes and items per command, measured with tracemalloc;
        bench/RESULTS.md "Scale ladder"): such an agent does not register them."""
        client = self.agent.client
        if client.plugin.enabled("xep_0363"):
            client.plugin.disable("xep_0363")  # SPADE loads HTTP upload; an agent offers no upload
        client.register_plugin("xep_0030")
        disco = client.plugin["xep_0030"]
        me = client.boundjid
        for feature in _NOT_OFFERED:  # advertised by plugins SPADE's registration pulls in (XEP-0066)
            disco.del_feature(jid=me, feature=feature)
        disco.add_identity(category="client", itype="bot", name=f"VME {self.agent.role}", jid=me)
        if not self.agent.operators:
            return
        for name in ("xep_0004", "xep_0050"):
            client.register_plugin(name)
        adhoc = client.plugin["xep_0050"]
        adhoc.set_backend(_RecentSessions())
        # slixmpp finds a session by its id alone: a step sent from another JID than the one that
        # started the session is refused before it reaches the session
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import StanzaPath

        client.remove_handler("Ad-Hoc Execute")
        client.register_handler(Callback("Ad-Hoc Execute", StanzaPath("iq@type=set/command"), self._guard))
        for command in self._offered(Access.CONTROL):
            # partials of coroutine functions: slixmpp awaits those (it calls a lambda without awaiting)
            adhoc.add_command(jid=me, node=command.name, name=command.title, handler=partial(self._begin, command))
        # who may see which commands: the list of the commands node depends on the requester
        disco.set_node_handler("get_items", jid=me, node=COMMANDS_NS, handler=self._items)

    def _guard(self, iq: Any) -> None:
        from slixmpp.exceptions import XMPPError

        session = self.agent.client.plugin["xep_0050"].sessions.get(iq["command"]["sessionid"])
        if session is not None and session["from"] != iq["from"]:
            self.agent.log.warning("event=operator-refused from=%s command=%s why=not-its-session", iq["from"],
                                   iq["command"]["node"])
            raise XMPPError("forbidden", text="not your command session")
        # what slixmpp's own handler does
        self.agent.client.event("command", iq)
        self.agent.client.event(f"command_{iq['command']['action']}", iq)

    def _offered(self, access: Access) -> list[Command]:
        return [c for c in commands_for(self.agent, access) if c.name not in _CHAT_ONLY]

    def _items(self, jid: Any, node: Optional[str], ifrom: Any, data: Any) -> Any:
        from slixmpp.plugins.xep_0030.stanza import DiscoItems

        items = DiscoItems()
        me = self.agent.client.boundjid.full
        if ifrom is not None:
            for command in self._offered(self.agent.desk.access(str(ifrom))):
                items.add_item(me, command.name, command.title)
        return items

    # -- a command session ---------------------------------------------------------------------
    async def _begin(self, command: Command, iq: Any, session: dict) -> dict:
        from slixmpp.exceptions import XMPPError

        access = self.agent.desk.access(str(iq["from"]))
        if access is Access.NONE or access < command.access:
            self.agent.log.warning("event=operator-refused from=%s command=%s access=%s", iq["from"].bare,
                                   command.name, access)
            raise XMPPError("forbidden", text=f"{command.name}: not authorized")
        session["vme"] = {"values": {}, "done": 0, "fields": ()}
        return await self._advance(command, session)

    async def _advance(self, command: Command, session: dict) -> dict:
        state = session["vme"]
        fields = await self.agent.read(lambda now: command.step(state["done"], state["values"]))
        if fields is None:
            return await self._finish(command, session)
        return await self._ask(command, session, fields, notes=None)

    async def _ask(self, command: Command, session: dict, fields: tuple[Param, ...], notes: Optional[list],
                   given: Optional[dict] = None) -> dict:
        # a mistake is said twice: as an error note, and in the form's instructions (some clients,
        # profanity among them, show the form again but not the notes of an executing command)
        problem = notes[0][1] if notes else ""
        # the choices are read from the ledger between engine steps, like any view
        form = await self.agent.read(lambda now: self._form(command, fields, given or {}, problem))
        state = session["vme"]
        steps = 2 if command.steps is not None else 1
        session["payload"] = form
        session["next"] = partial(self._submitted, command, fields)
        session["has_next"] = state["done"] + 1 < steps
        session["allow_complete"] = True
        session["notes"] = notes
        return session

    async def _submitted(self, command: Command, fields: tuple[Param, ...], payload: Any, session: dict) -> dict:
        state = session["vme"]
        form = payload[0] if isinstance(payload, list) and payload else payload
        submitted = form.get_values() if hasattr(form, "get_values") else {}
        given = {p.name: submitted.get(p.name) for p in fields}
        try:
            checked = await self.agent.read(lambda now: check_values(self.agent, fields, given))
        except ArgError as exc:
            label = next((p.label for p in fields if p.name == exc.path), exc.path)
            return await self._ask(command, session, fields, [("error", f"{label}: {exc.reason}")], given)
        state["values"].update({p.name: checked.get(p.name) for p in fields})
        state["fields"] = state["fields"] + fields
        state["done"] += 1
        return await self._advance(command, session)

    async def _finish(self, command: Command, session: dict) -> dict:
        state = session["vme"]
        session["next"] = None
        session["has_next"] = False
        try:
            reply = await self.agent.desk.run(str(session["from"]), command, state["values"], params=state["fields"])
        except NotAuthorized:
            session["payload"], session["notes"] = None, [("error", f"{command.name}: not authorized")]
            return session
        except ArgError as exc:
            session["payload"], session["notes"] = None, [("error", f"{exc.path}: {exc.reason}")]
            return session
        # the answer is a note, for reads too: clients print notes where a person reads them
        # (profanity opens a result form as a form to edit); tables keep their line breaks
        session["payload"] = None
        session["notes"] = [("info" if reply.ok else "error", reply.text)]
        return session

    def _form(self, command: Command, fields: tuple[Param, ...], given: dict, problem: str = "") -> Any:
        form = self.agent.client.plugin["xep_0004"].make_form(ftype="form", title=command.title)
        summary = command.summary_for(self.agent.role)
        form.set_instructions([f"error: {problem}", summary] if problem else summary)
        for p in fields:
            value = given.get(p.name)
            options = p.options(self.agent) if p.options is not None else None
            if p.kind == "boolean":
                form.add_field(var=p.name, ftype="boolean", label=p.label, desc=p.desc, required=p.required,
                               value=bool(value) if value is not None else False)
            elif options is not None and len(options) <= MAX_LIST_OPTIONS:
                ftype = "list-multi" if p.kind == "choices" else "list-single"
                form.add_field(var=p.name, ftype=ftype, label=p.label, desc=p.desc, required=p.required,
                               value=value, options=[{"label": label, "value": v} for v, label in options])
            else:
                many = p.kind == "choices"
                hint = p.desc or (f"one of {len(options)} (ids, separated by spaces)" if many and options
                                  else f"one of {len(options)}" if options else "")
                form.add_field(var=p.name, ftype="text-single", label=p.label, desc=hint, required=p.required,
                               value=" ".join(value) if isinstance(value, (list, tuple)) else value)
        return form
