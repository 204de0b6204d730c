"""What an agent's XMPP client builds received messages as: slixmpp's ``Message``, without
binding XEP-0004 data forms to stanza objects.

Every VME message carries SPADE's metadata as a data form (docs/protocol.md section 7). slixmpp
turned the form of every message received into ``Form`` and ``FormField`` stanza objects (about
50 us a message, 7-8 % of a prosumer's CPU per offer: bench/RESULTS.md, "Agent path") and matched
each message against its "Data Form" handler, which only re-announces forms as an event. Nothing
in an agent reads a message's form through them: the agent reads the protocol element from the
XML, and SPADE reads its metadata from the XML too (``Message.from_node``). The form stays in the
stanza's XML, unchanged.
"""

from __future__ import annotations

from typing import Any

from slixmpp.stanza import Message

__all__ = ["FORM_TAG", "ReceivedMessage", "use_received_messages"]

#: The element of a XEP-0004 data form.
FORM_TAG = "{jabber:x:data}x"

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


def use_received_messages(client: Any) -> None:
    """Make ``client`` build received messages as :class:`ReceivedMessage`, and drop slixmpp's
    "Data Form" handler (it announces a message's form as an event nobody in an agent takes)."""
    if getattr(client, "_vme_received_messages", False):
        return  # idempotent: the same client across reconnects
    client.remove_stanza(Message)
    client.register_stanza(ReceivedMessage)
    client.remove_handler("Data Form")
    client._vme_received_messages = True
