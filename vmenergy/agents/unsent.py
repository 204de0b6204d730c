"""Stanzas an agent handed to slixmpp just before its stream dropped are kept, not lost.

slixmpp sends in two steps: ``send()`` puts a stanza on a queue, and a send loop (its own task)
later takes it, runs the outgoing filters (XEP-0198 records the stanza there as sent and not yet
acknowledged) and writes it to the transport. When the connection is lost between the two, the
loop still takes what was queued: by then XEP-0198 is disabled until the stream is resumed, so
the stanza is not recorded, and the write raises ``NotConnectedError``, which the loop logs and
drops ("Exception raised in send queue"). After the stream is resumed nothing resends it: the
server never had it, and the client no longer knows it. An aggregator that had just read a burst
of offers lost its acknowledgements that way when ejabberd cut its stream (the ack time-out), and
in virtual time the round waiting for them never ended (bench/RESULTS.md, "A city on a cluster";
docs/scaling.md, "Stream resumption").

:func:`keep_unsent` puts a filter in front of the write: a stanza the loop reaches once the
transport is gone is put back where XEP-0198 keeps what the server has not acknowledged, with
the next sequence number, as if it had been written and lost on the wire. Resumption then resends
it after the stanzas sent before it (XEP-0198 resends its queue in order); a failed resumption
drops it with the rest of that queue, as for any unacknowledged stanza (the protocol's reliable
layer resends what matters). Without stream management it goes back to slixmpp's own queue of
stanzas held until the next session starts.

What is never kept: the stanzas that negotiate a stream (resource binding, the legacy session,
in-band registration). They belong to the connection that died, the next connection negotiates
afresh, and slixmpp lets them past its hold: handed back to ``send()`` from inside the send loop
such a stanza went straight back onto the loop's queue, which took it again at once without
yielding, for ever. That froze the whole process (every agent in it) when a restarted server
refused a resumption and the new stream died during binding: the server-kill drill stood still
(docs/scaling.md, "Stream resumption"; tests/test_unsent.py).
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["keep_unsent", "keep", "negotiates_stream", "FILTER_ATTR", "KEPT_ATTR", "MAX_SEQ"]

#: XEP-0198 sequence numbers wrap at 2**32 (slixmpp's ``xep_0198.MAX_SEQ``).
MAX_SEQ = 2**32

#: The client's attribute holding the filter once installed.
FILTER_ATTR = "_vme_unsent_filter"
#: The client's attribute listing what :func:`keep` put in XEP-0198's queue since the stream
#: dropped (sent again if the resumption fails).
KEPT_ATTR = "_vme_kept_for_resumption"


def keep_unsent(client: Any) -> None:
    """Install the filter on ``client`` (idempotent: the same client across reconnects)."""
    if getattr(client, FILTER_ATTR, None) is not None:
        return

    def unsent(stanza: Any) -> Optional[Any]:
        return _unsent(client, stanza)

    client.add_filter("out_sync", unsent)
    setattr(client, FILTER_ATTR, unsent)
    # a resumption that fails (the server restarted and knows no such session) clears XEP-0198's
    # queue: what was kept there is sent again on the new session instead of vanishing (under a
    # virtual clock a stanza counted as sent and never delivered holds its round for ever)
    client.add_event_handler("session_resumed", lambda _event: _kept(client).clear())
    for event in ("sm_failed", "session_end"):
        client.add_event_handler(event, lambda _event: _send_kept_again(client))


def _kept(client: Any) -> list:
    kept = getattr(client, KEPT_ATTR, None)
    if kept is None:
        kept = []
        setattr(client, KEPT_ATTR, kept)
    return kept


def _send_kept_again(client: Any) -> None:
    kept = _kept(client)
    again, kept[:] = list(kept), []
    for stanza in again:
        client.send(stanza)  # held by slixmpp until the new session starts


def _unsent(client: Any, stanza: Any) -> Optional[Any]:
    """The filter: ``stanza`` goes on to the write while there is a transport; otherwise it is
    kept (:func:`keep`) and the send loop is told to skip it (None)."""
    if client.transport is not None:
        return stanza
    from slixmpp.stanza import Iq, Message, Presence

    if isinstance(stanza, (Message, Presence, Iq)):  # not an ack or a footer of the old stream
        keep(client, stanza)
    return None


def negotiates_stream(stanza: Any) -> bool:
    """Whether ``stanza`` is part of negotiating a stream (binding a resource, the legacy session,
    in-band registration): what slixmpp sends before a session starts, past its hold."""
    from slixmpp.stanza import Iq

    return isinstance(stanza, Iq) and any(
        stanza.get_plugin(name, check=True) is not None for name in ("bind", "session", "register"))


def keep(client: Any, stanza: Any) -> None:
    """Keep ``stanza`` for when the stream is back: while a resumption is ahead (the connection
    is gone, or a new one has not negotiated stream management yet) in XEP-0198's queue of
    stanzas the server has not acknowledged (resumption resends them in order, this one last);
    otherwise with slixmpp, which sends what it holds when the session starts (no stream
    management, or a new session already set up whose start the agent has not seen yet: a stanza
    put in the acknowledgement queue there would never be sent).

    An agent sends through this while its link is down too: slixmpp alone would hold such a
    stanza and, on resumption, send it *before* the older unacknowledged ones it resends.

    A stanza negotiating a stream (:func:`negotiates_stream`) is dropped: it belonged to the
    connection that died (see the module docstring)."""
    if negotiates_stream(stanza):
        return  # the dead stream's negotiation: the next connection negotiates its own
    sm = client.plugin.get("xep_0198", None)
    resuming = client.transport is None or "stream_management" not in client.features
    if sm is not None and sm.sm_id and sm.allow_resume and resuming:
        if sm.unacked_queue and sm.unacked_queue[-1][1] is stanza:
            return  # XEP-0198's own filter recorded it already (it runs before this one)
        sm.seq = (sm.seq + 1) % MAX_SEQ
        sm.unacked_queue.append((sm.seq, stanza))
        _kept(client).append(stanza)
    elif client.transport is None and getattr(client, "_session_started", False):
        # slixmpp's send() would put it straight back on the send loop's queue, whose filters
        # brought it here (see the module docstring); slixmpp marks a session ended before it
        # runs the filters again, so this is a guard, not a path
        return
    else:
        client.send(stanza)  # not in a session now: held by slixmpp until the next one starts
