"""XEP-0198 stream management on an agent's client: how often it asks the server for an ack.

Stream management is what lets an agent resume its stream after a network cut: each side keeps
what it sent until the other acknowledges it, and resends the rest on resumption. Asking for an
ack is a stanza each way (``<r/>``, ``<a/>``) that the server and both parsers handle like any
other; slixmpp asked after every 5 stanzas, Prosody (0.12's default) after every stanza it sent,
which cost Prosody ~20 % and the agents 15-20 % of their CPU per offer and about 1 ms of each
request/answer exchange (bench/RESULTS.md, "Agent path").

How often to ask only decides how long a sent stanza is *held* (memory), never whether it is
resent: whatever is unacknowledged when a stream is cut is resent on resumption, and held again
if that fails. So the client asks once per :data:`WINDOW` stanzas in a burst, and once more when
it has been quiet for :data:`QUIET_SECONDS` with stanzas still held, so an idle agent holds none
(10,000 prosumers each holding a window of offers would be gigabytes). The private Prosody
keeps its default (an ack request after each stanza it sends, one outstanding at a time):
raising its threshold made pipelined offers queue for seconds (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

__all__ = ["WINDOW", "QUIET_SECONDS", "ACK_REQUEST", "enable_stream_management", "answer_ack_request"]

#: The client asks for an ack after this many stanzas sent in a burst. A cut loses none of them
#: either way; a bigger window holds more of them (stanza objects) between acks.
WINDOW = 32
#: ... and once the client has sent nothing for this many real seconds with stanzas still
#: unacknowledged (one timer per quiet spell, not per stanza).
QUIET_SECONDS = 1.0
#: The server's ack request as slixmpp's XEP-0198 plugin answers it (the ``urn:xmpp:sm:3`` one).
ACK_REQUEST = "{urn:xmpp:sm:3}r"


def enable_stream_management(client: Any, window: int = WINDOW, quiet: float = QUIET_SECONDS) -> None:
    """Load slixmpp's XEP-0198 plugin on ``client`` with an ack request per ``window`` stanzas,
    and one after ``quiet`` seconds without sending while stanzas are held. Idempotent (a client
    is set up again on every connect)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: a positive number of stanzas (got {window!r})")
    if isinstance(quiet, bool) or not isinstance(quiet, (int, float)) or not quiet > 0:
        raise ValueError(f"quiet: a positive number of seconds (got {quiet!r})")
    client.register_plugin("xep_0198", pconfig={"window": window})
    if getattr(client, "_vme_quiet_acks", None) is None:
        quiet_acks = _QuietAcks(client.plugin["xep_0198"], quiet)
        client._vme_quiet_acks = quiet_acks
        # after slixmpp's own outgoing filter (the one that holds the stanza and counts the window)
        client.add_filter("out_sync", quiet_acks.sent)


class _QuietAcks:
    """Asks for an ack once the client has been quiet for a while with stanzas held."""

    def __init__(self, plugin: Any, quiet: float) -> None:
        self.plugin = plugin
        self.quiet = quiet
        self._timer: Optional[asyncio.TimerHandle] = None
        self._busy = False  # whether anything was sent since the timer was armed

    def sent(self, stanza: Any) -> Any:
        if self._timer is None:
            self._arm()
        else:
            self._busy = True
        return stanza

    def _arm(self) -> None:
        self._busy = False
        self._timer = self.plugin.xmpp.loop.call_later(self.quiet, self._check)

    def _check(self) -> None:
        self._timer = None
        plugin = self.plugin
        if self._busy:  # still sending: look again a quiet spell later
            self._arm()
            return
        if plugin.enabled_out and plugin.unacked_queue and plugin.xmpp.transport is not None:
            plugin.request_ack()
            plugin.window_counter = plugin.window  # the next burst counts its window afresh


def answer_ack_request(client: Any) -> bool:
    """Answer the server's ``<r/>`` as slixmpp's plugin does (``<a h=.../>`` with the count of
    stanzas handled), written as text; False if this client's incoming filters are not only the
    plugin's own (then the request must take slixmpp's way, which shows it to every filter).

    Prosody asks after every stanza it sends; slixmpp's way (a stanza object, its filters, a
    match against every handler, an ``Ack`` stanza object written out) cost ~35 us a request."""
    plugin = client.plugin.get("xep_0198", None)
    if plugin is None or any(f != plugin._handle_incoming for f in client._XMLStream__filters["in"]):
        return False
    if client.transport is not None:
        client.send_raw(f'<a xmlns="urn:xmpp:sm:3" h="{plugin.handled}" />')
    return True
