"""One write to the stream per event-loop turn: what an agent's client sends in one turn (a burst
of acks, XEP-0198 answers) goes to the TLS transport in one piece.

slixmpp writes every stanza on its own (``send_raw`` -> ``transport.write``): one TLS record and
one ``send`` system call per stanza. An aggregator answering a burst of 256 offers made 256 of
each, and the TLS encryption and socket write were ~19 % of its CPU per offer (cProfile,
bench/RESULTS.md "Agent path, round 4"); the server then decrypted 256 records. Here the writes
of one turn are joined and written when the loop has run what is ready now (``call_soon``): the
same bytes in the same order, and a one-at-a-time exchange waits one loop turn at most (none when
the agent writes at the end of handling a read: :func:`write_now`).

What was joined is written to the transport it was sent on, or not at all: a stream that dropped
(or was replaced by a new connection) within the turn loses it as it would lose bytes still in
the transport's buffer, and XEP-0198 or the protocol's resend sends it again.
"""

from __future__ import annotations

from typing import Any, Union

from slixmpp.xmlstream.xmlstream import NotConnectedError

__all__ = ["coalesce_writes", "write_now"]

#: The client's attribute holding the function that writes what was joined so far.
FLUSH_ATTR = "_vme_flush_writes"


def coalesce_writes(client: Any) -> None:
    """Make ``client.send_raw`` join the writes of one event-loop turn (idempotent)."""
    if getattr(client, "_vme_coalesced_writes", False):
        return
    pending: list[bytes] = []
    state: dict[str, Any] = {"transport": None, "scheduled": False}

    def flush() -> None:
        state["scheduled"] = False
        if not pending:
            return
        data = b"".join(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        transport, state["transport"] = state["transport"], None
        if transport is not None and transport is client.transport and not transport.is_closing():
            transport.write(data)

    def send_raw(data: Union[str, bytes]) -> None:
        transport = client.transport
        if not transport:
            raise NotConnectedError()  # as slixmpp's send_raw: the caller sees it at once
        if pending and state["transport"] is not transport:
            flush()  # the turn's earlier writes belong to a stream that is gone
        state["transport"] = transport
        pending.append(data.encode("utf-8") if isinstance(data, str) else data)
        if not state["scheduled"]:
            state["scheduled"] = True
            client.loop.call_soon(flush)

    client.send_raw = send_raw
    setattr(client, FLUSH_ATTR, flush)
    client._vme_coalesced_writes = True


def write_now(client: Any) -> None:
    """Write what the client joined so far now, not when the loop turn ends: the caller knows no
    more is coming in this turn (an agent that has handled everything one read from the stream
    brought, agents/after_read.py). Nothing for a client whose writes are not joined."""
    flush = getattr(client, FLUSH_ATTR, None)
    if flush is not None:
        flush()
