"""The operator desk of one agent: who may do what, running a command for a sender, watchers.

Chat and ad-hoc commands both come here (:meth:`OperatorDesk.run`), so access control is decided
in one place: the agent's :class:`~vmenergy.protocol.operators.Operators` say whether the sender
is a viewer (reads), a controller (also steers) or nobody (refused, nothing changes). A read
runs between engine steps; a steering action runs as an engine step
(:meth:`~vmenergy.protocol.engine.Engine.steer` inside ``agent.handle``), which persists it,
records it in the audit table and wakes the timed steps it affects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from vmenergy.protocol.engine import Note, bare
from vmenergy.protocol.messages import Message
from vmenergy.protocol.operators import Access
from vmenergy.protocol.steering import SteeringError

from .commands import ArgError, Command, Param, check_values, chat_values, closest, commands_for, find
from .views import Ctx, VmeAgent

__all__ = ["OperatorDesk", "Reply", "NotAuthorized", "NOT_AUTHORIZED"]

NOT_AUTHORIZED = "not authorized"
#: A stranger is told "not authorized" at most this often (real seconds): two agents that are
#: strangers to each other must not answer each other's answers forever, and a flood of chat
#: must not be turned into a flood of replies.
TELL_STRANGER_EVERY = 3600.0
_MAX_STRANGERS = 1000


class NotAuthorized(Exception):
    """The sender may not use the command (a stranger, or a viewer asking to steer)."""


@dataclass(frozen=True)
class Reply:
    """What a command answered: ``text`` for the operator; ``ok`` False when it was refused
    (a steering action that does not apply now: nothing changed)."""

    text: str
    ok: bool = True


class OperatorDesk:
    """See the module docstring. ``watchers``: bare JIDs that asked ``watch on``."""

    def __init__(self, agent: VmeAgent) -> None:
        self.agent = agent
        self.watchers: dict[str, None] = {}
        self._told: dict[str, float] = {}

    def access(self, jid: str) -> Access:
        return self.agent.operators.access(jid)

    # -- chat ---------------------------------------------------------------------------------
    async def chat(self, sender: str, text: str) -> Optional[str]:
        """The reply to one chat message from ``sender`` (a full JID), or None for no reply."""
        text = text.strip()
        if not text:
            return None
        who = bare(sender)
        access = self.access(who)
        agent = self.agent
        if access is Access.NONE:
            return self._tell_stranger(who, text)
        words = text.split()
        command = find(agent, words[0])
        if command is None:
            near = closest(agent, words[0], access)
            hint = f"; closest: {near.usage_for(agent.role)}" if near is not None else ""
            return f"unknown command {words[0]!r}{hint}\nhelp lists your commands"
        try:
            return (await self.run(sender, command, chat_values(command, words[1:]))).text
        except NotAuthorized:
            return f"{NOT_AUTHORIZED}: {command.name} is for controllers"
        except ArgError as exc:
            details = f"\n{command.details}" if command.details else ""
            return f"{exc.path}: {exc.reason}\nusage: {command.usage_for(agent.role)}{details}"

    def _tell_stranger(self, who: str, text: str) -> Optional[str]:
        now = time.monotonic()
        last = self._told.get(who)
        if last is not None and now - last < TELL_STRANGER_EVERY:
            self.agent.log.debug("event=operator-refused from=%s text=%r", who, text[:60])
            return None
        self.agent.log.warning("event=operator-refused from=%s text=%r", who, text[:60])
        self._told[who] = now
        if len(self._told) > _MAX_STRANGERS:
            del self._told[next(iter(self._told))]
        return NOT_AUTHORIZED

    # -- one command, from chat or ad-hoc ---------------------------------------------------
    async def run(self, sender: str, command: Command, values: dict,
                  params: Optional[tuple[Param, ...]] = None) -> Reply:
        """Run ``command`` for ``sender`` with argument ``values`` (checked here against
        ``params``, by default the command's). Raises :class:`NotAuthorized` or
        :class:`~.commands.ArgError` (nothing changed)."""
        agent = self.agent
        who = bare(sender)
        access = self.access(who)
        if access < command.access or access is Access.NONE:
            agent.log.warning("event=operator-refused from=%s command=%s access=%s", who, command.name, access)
            raise NotAuthorized(command.name)
        fields = command.params if params is None else params
        if command.action is None:
            def view(now: int) -> str:
                checked = check_values(agent, fields, values)
                ctx = Ctx(agent, now, who, access, tuple(commands_for(agent, access)), self, agent.full_jid())
                return command.view(ctx, checked)  # type: ignore[misc]

            try:
                return Reply(await agent.read(view, offload=command.heavy))
            except ArgError:
                raise
            except Exception:  # a view's bug must not take the operator's desk down with it
                agent.log.exception("event=operator-command-failed command=%s", command.name)
                return Reply(f"{command.name}: failed (the agent's log says why)", ok=False)
        return await self._steer(who, command, values, fields)

    async def _steer(self, who: str, command: Command, values: dict, fields: tuple[Param, ...]) -> Reply:
        agent = self.agent
        box: dict[str, Any] = {}

        def step(now: int) -> list:
            # checked and converted inside the step: the options (offers, sessions) and "now"
            # are those the engine sees when it acts
            try:
                params = command.to_engine(check_values(agent, fields, values), now)
                effects, outcome = agent.engine.steer(who, command.action, params, now=now)  # type: ignore[arg-type]
            except ArgError as exc:
                box["arg"] = exc
                return []
            except SteeringError as exc:
                box["refused"] = exc
                return [Note("steer-refused", {"by": who, "action": command.action, "why": exc.reason})]
            box["outcome"] = outcome
            return effects

        await agent.handle(step)
        if "arg" in box:
            raise box["arg"]
        if "refused" in box:
            return Reply(f"{command.name}: {box['refused'].reason} (nothing changed)", ok=False)
        return Reply(box.get("outcome", f"{command.name}: failed (the agent's log says why)"), ok="outcome" in box)

    # -- watch --------------------------------------------------------------------------------
    def set_watch(self, jid: str, on: bool) -> None:
        jid = bare(jid)
        if on:
            self.watchers[jid] = None
        else:
            self.watchers.pop(jid, None)

    def watch(self, sent: bool, peer: str, payload: Message) -> None:
        """Tell the watchers about one protocol message as it passes (``sent`` by the agent to
        ``peer``, or received from it). Watchers who are no longer operators are dropped."""
        if not self.watchers:
            return
        line = f"{'→' if sent else '←'} {bare(peer).split('@', 1)[0]}: {payload.summary()}"
        for jid in list(self.watchers):
            if self.access(jid) is Access.NONE:
                del self.watchers[jid]
                continue
            self.agent.tell(jid, line)
