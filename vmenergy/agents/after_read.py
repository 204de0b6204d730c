"""Work an agent finishes when its client has handled one read from the stream, instead of on a
later turn of the event loop.

A message reaching an idle agent is stepped in the callback that parsed it (VmeAgent._deliver);
its changes are committed, and its answer sent, once per loop turn, so that a read that brought
many messages (a burst of offers) costs one commit and one write. "Once per loop turn" was a
``call_soon``: the commit, and then the joined write (agents/coalesced_writes.py), each waited for
the loop's next round, after whatever else was ready, on the path of every message of a
one-at-a-time exchange (bench/RESULTS.md, "Agent path, round 5"). The end of the read is the
same boundary, known exactly: everything that read brought has been stepped, nothing more can
join this commit before the loop runs again.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

__all__ = ["after_each_read", "ATTR"]

#: The client's attribute holding the hook once installed.
ATTR = "_vme_after_read"


def after_each_read(client: Any, hook: Callable[[], None], before: Optional[Callable[[], None]] = None) -> None:
    """Call ``hook()`` each time ``client`` has handled what one read from its stream brought (its
    ``data_received``), also when handling it raised; ``before()`` (if given) before handling it.
    Installed once per client (it survives reconnects: the transport calls the client's
    ``data_received`` afresh)."""
    if getattr(client, ATTR, None) is not None:
        return
    received = client.data_received

    def data_received(data: bytes) -> None:
        if before is not None:
            before()
        try:
            received(data)
        finally:
            hook()

    client.data_received = data_received
    setattr(client, ATTR, hook)
