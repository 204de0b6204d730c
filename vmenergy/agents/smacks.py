"""XEP-0198 stream management on an agent's client: how often it asks the server for an ack.

Stream management is what lets an agent resume its stream after a network cut: each side keeps
what it sent until the other acknowledges it, and resends the rest on resumption. Asking for an
ack is a stanza each way (``<r/>``, ``<a/>``) that the server and both parsers handle like any
other; slixmpp asked after every 5 stanzas, Prosody (0.12's default) after every stanza it sent,
which cost Prosody ~20 % and the agents 15-20 % of their CPU per offer and about 1 ms of each
request/answer exchange (bench/RESULTS.md, "Agent path").

How often to ask only decides how long a sent stanza is *held* (memory), never whether it is
resent: whatever is unacknowledged when a stream is cut is resent on resumption, and held again
if that fails. So the client asks once per :data:`WINDOW` stanzas within a burst, and at the end
of each burst (:class:`~vmenergy.agents.stream_acks.BurstAcks`), so an agent between bursts holds
none. The private Prosody keeps its default (an ack request after each stanza it sends, one
outstanding at a time): raising its threshold made pipelined offers queue for seconds
(bench/RESULTS.md). The server's requests are answered the short way (:func:`answer_ack_request`).
"""

from __future__ import annotations

from typing import Any

from .stream_acks import BurstAcks

__all__ = ["WINDOW", "ACK_REQUEST", "ACK_ANSWER", "ARRIVAL_ONLY", "enable_stream_management", "answer_ack_request",
           "take_ack"]

#: The client asks for an ack after this many stanzas sent in one burst (and at the end of the
#: burst: stream_acks.py). A cut loses none of them either way.
WINDOW = 32
#: The server's ack request as slixmpp's XEP-0198 plugin answers it (the ``urn:xmpp:sm:3`` one).
ACK_REQUEST = "{urn:xmpp:sm:3}r"
#: The server's answer to the client's ack request.
ACK_ANSWER = "{urn:xmpp:sm:3}a"


def enable_stream_management(client: Any, window: int = WINDOW) -> BurstAcks:
    """Load slixmpp's XEP-0198 plugin on ``client`` with an ack request per ``window`` stanzas,
    and one more once a burst of sending is over
    (:class:`~vmenergy.agents.stream_acks.BurstAcks`). Idempotent (a client is set up again on
    every connect)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: a positive number of stanzas (got {window!r})")
    client.register_plugin("xep_0198", pconfig={"window": window})
    acks = getattr(client, "_vme_burst_acks", None)
    if acks is None:
        acks = client._vme_burst_acks = BurstAcks(client)
    return acks


#: Set on an incoming filter that only notes that a stanza arrived (it reads nothing of the stanza
#: and returns it unchanged, like the link watch's, agents/keepalive.py): the short ways below
#: call it with the element as it was parsed instead of taking slixmpp's way for it.
ARRIVAL_ONLY = "vme_arrival_only"


def answer_ack_request(client: Any) -> bool:
    """Answer the server's ``<r/>`` as slixmpp's plugin does (``<a h=.../>`` with the count of
    stanzas handled), written as text; False if this client's incoming filters are not only the
    plugin's own (then the request must take slixmpp's way, which shows it to every filter).

    Prosody asks after every stanza it sends; slixmpp's way (a stanza object, its filters, a
    match against every handler, an ``Ack`` stanza object written out) cost ~35 us a request."""
    plugin = _plugin_alone(client)
    if plugin is None:
        return False
    _arrived(client)
    if client.transport is not None:
        client.send_raw(f'<a xmlns="urn:xmpp:sm:3" h="{plugin.handled}" />')
    return True


def take_ack(client: Any, xml: Any) -> bool:
    """Take the server's ``<a h=.../>`` as slixmpp's plugin does (its ``_handle_ack``: acknowledged
    stanzas leave the queue, a ``stanza_acked`` event each), without a stanza object or a match
    against every handler; False (slixmpp's way, which logs what is wrong) if ``h`` is not a
    count or another incoming filter would see the answer.

    Each request of the client's (its window, :class:`~vmenergy.agents.stream_acks.BurstAcks`)
    brings one; slixmpp's way cost about what a request did (~35 us)."""
    plugin = _plugin_alone(client)
    h = xml.get("h", "")
    if plugin is None or not h.isdigit():
        return False
    _arrived(client)
    plugin._handle_ack({"h": int(h)})  # it reads the count only (ack['h'], an int, as Ack's interface gives)
    return True


def _plugin_alone(client: Any) -> Any:
    """The client's XEP-0198 plugin if its incoming filter is the only one besides filters that
    only note an arrival (:data:`ARRIVAL_ONLY`): then a stream management element may skip the
    filters (the plugin's leaves them alone; the others are called by :func:`_arrived`), else None.

    Without the arrival-only case every ``<r/>`` from the server took slixmpp's way once the link
    watch (agents/keepalive.py) added its filter: a stanza object, every filter, a match against
    every handler, ~35-100 us, between an agent's step on a message and its commit when the
    request came in the same read (bench/RESULTS.md, "Agent path, round 5")."""
    plugin = client.plugin.get("xep_0198", None)
    if plugin is None or any(f != plugin._handle_incoming and not getattr(f, ARRIVAL_ONLY, False)
                             for f in client._XMLStream__filters["in"]):
        return None
    return plugin


def _arrived(client: Any) -> None:
    """Tell the arrival-only incoming filters that a stanza arrived."""
    for f in client._XMLStream__filters["in"]:
        if getattr(f, ARRIVAL_ONLY, False):
            f(None)
