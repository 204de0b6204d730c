"""What an agent's XMPP client builds received messages as: slixmpp's ``Message``, without
binding XEP-0004 data forms to stanza objects; and the short way a protocol message takes to the
agent.

A protocol message may carry SPADE's metadata as a data form (docs/protocol.md section 7: VME
agents send it only when set to, ``spade_metadata``; other senders may). slixmpp turned the form
of every message received into ``Form`` and ``FormField`` stanza objects (about
50 us a message, 7-8 % of a prosumer's CPU per offer: bench/RESULTS.md, "Agent path") and matched
each message against its "Data Form" handler, which only re-announces forms as an event. Nothing
in an agent reads a message's form through them: the agent reads the protocol element from the
XML, and SPADE reads its metadata from the XML too (``Message.from_node``). The form stays in the
stanza's XML, unchanged.

slixmpp matched every stanza received against each of the client's ~27 handlers (XPath and XML
mask matchers, each walking the stanza) to find the one that takes it. A protocol message (a
``<message/>`` with a body and an element in VME's namespace, not an error) only ever matches
slixmpp's own message handler (a test checks this on a connected agent), so :func:`short_way`
hands it to that handler directly. Everything else is as before: the stanza object is built the
same way, the incoming filters run on it (XEP-0198 counts it there), and the agent's
``message`` handler checks depth and size first. The server's XEP-0198 ack requests (one per
stanza Prosody sends) are answered at once too (``smacks.answer_ack_request``), and its answers
to the client's own requests taken at once (``smacks.take_ack``). Any other stanza takes
slixmpp's way.
"""

from __future__ import annotations

from typing import Any, Callable

from slixmpp.stanza import Message

from vmenergy.wire.stanzas import NS

from . import smacks

__all__ = ["FORM_TAG", "ReceivedMessage", "use_received_messages", "is_protocol_message"]

#: The element of a XEP-0004 data form.
FORM_TAG = "{jabber:x:data}x"
_MESSAGE = "{jabber:client}message"
_BODY = "{jabber:client}body"
_ERROR = "{jabber:client}error"
_PROTOCOL = "{" + NS + "}"

# Message's plugin map as last seen, and that map without the form
_cache: list[Any] = [None, {}]


class ReceivedMessage(Message):
    """``Message``, whose plugin map (read live, as plugins register on ``Message``) leaves data
    forms as plain XML."""

    @property  # type: ignore[override]
    def plugin_tag_map(self) -> dict[str, Any]:
        source = Message.plugin_tag_map  # register_stanza_plugin replaces it with a new copy
        if _cache[0] is not source:
            _cache[:] = [source, {tag: cls for tag, cls in source.items() if tag != FORM_TAG}]
        return _cache[1]


def is_protocol_message(xml: Any) -> bool:
    """Whether a stanza's XML is a VME protocol message for slixmpp's message handler: a
    ``<message/>`` with a body (that handler's match), an element in VME's namespace, no error."""
    if xml.tag != _MESSAGE or xml.get("type") == "error":
        return False
    body = protocol = False
    for child in xml:
        tag = child.tag
        if tag == _BODY:
            body = True
        elif tag == _ERROR:
            return False
        elif isinstance(tag, str) and tag.startswith(_PROTOCOL):
            protocol = True
    return body and protocol


def use_received_messages(client: Any) -> None:
    """Make ``client`` build received messages as :class:`ReceivedMessage`, drop slixmpp's
    "Data Form" handler (it announces a message's form as an event nobody in an agent takes),
    and take protocol messages the short way (:func:`short_way`)."""
    if getattr(client, "_vme_received_messages", False):
        return  # idempotent: the same client across reconnects
    client.remove_stanza(Message)
    client.register_stanza(ReceivedMessage)
    client.remove_handler("Data Form")
    client._spawn_event = short_way(client, client._spawn_event)
    client._vme_received_messages = True


def short_way(client: Any, spawn: Callable[[Any], None]) -> Callable[[Any], None]:
    """``client._spawn_event`` (what slixmpp calls with each stanza's XML as it is parsed), with
    protocol messages handed straight to slixmpp's message handler instead of being matched
    against every handler; ``spawn`` (slixmpp's own) takes every other stanza."""
    # slixmpp keeps its filters in a private attribute: read once, the list is live
    filters_in = client._XMLStream__filters["in"]
    handle = client._handle_message

    def spawn_event(raw: Any) -> None:
        xml = client.incoming_filter(raw)
        if xml.tag == smacks.ACK_REQUEST and smacks.answer_ack_request(client):
            return
        if xml.tag == smacks.ACK_ANSWER and smacks.take_ack(client, xml):
            return
        if not is_protocol_message(xml):
            return spawn(raw)
        stanza: Any = ReceivedMessage(client, xml, recv=True)
        if stanza["lang"] is None and client.peer_default_lang:
            stanza["lang"] = client.peer_default_lang
        for f in filters_in:  # XEP-0198 counts the stanza here
            stanza = f(stanza)
            if stanza is None:
                return
        try:
            handle(stanza)
        except Exception as exc:  # as slixmpp's handler loop does: the stanza's own error path
            stanza.exception(exc)

    return spawn_event
