"""A stanza written in the turn that sends it, not one task switch later.

slixmpp's ``send()`` puts every stanza on a queue that a task of its own (``run_filters``) empties
on a later turn of the event loop: it runs the outgoing filters (XEP-0198 records the stanza
there; agents/unsent.py keeps it if the link went away), serialises it and writes it. For an
agent answering one message at a time that hop is on the path of every message: in the
sequential offer -> ack benchmark it was 0.07-0.12 ms of each side's ~0.5 ms (bench/RESULTS.md,
"Agent path, round 5").

:func:`send_now` does what that task does, at once, when doing so cannot change what is written
or its order: the queue is empty (so everything handed over before has been written: the task
takes a stanza and handles it without yielding), no outgoing filter is a coroutine (which the
task would wait for, up to a second), and the session is up (before it starts slixmpp holds
stanzas back). Otherwise the stanza takes slixmpp's way. The bytes are the same
(slixmpp's own serialiser, with the stream's namespace); the write still goes through the
client's ``send_raw`` (joined per loop turn by agents/coalesced_writes.py).
"""

from __future__ import annotations

import importlib
import logging
from inspect import iscoroutinefunction
from typing import Any

__all__ = ["send_now", "can_send_now"]

log = logging.getLogger(__name__)
#: slixmpp's stream module (the package re-exports names that shadow it): its ``tostring`` is the
#: serialiser the send task uses.
_XMLSTREAM = importlib.import_module("slixmpp.xmlstream.xmlstream")


def _filters(client: Any) -> dict[str, list]:
    # slixmpp keeps its filters in a private attribute; the lists are live
    return client._XMLStream__filters


def can_send_now(client: Any) -> bool:
    """Whether a stanza handed over now may be written at once with the same result as through
    slixmpp's send queue (see the module docstring)."""
    return bool(
        client.transport is not None
        and client._session_started
        and client.waiting_queue.empty()
        and not any(iscoroutinefunction(f) for f in _filters(client)["out"])
    )


def send_now(client: Any, stanza: Any) -> None:
    """Send ``stanza`` as slixmpp's send queue would, in this turn when :func:`can_send_now`,
    else through the queue (``client.send``)."""
    if not can_send_now(client):
        client.send(stanza)
        return
    filters = _filters(client)
    try:
        for f in filters["out"]:  # the roster's: it notes presence sent
            stanza = f(stanza)
            if stanza is None:
                return
        for f in filters["out_sync"]:  # XEP-0198 records it; unsent.py keeps it if the link went
            stanza = f(stanza)
            if stanza is None:
                return
        # looked up here: the process may have installed a faster escape in slixmpp's serialiser
        text = _XMLSTREAM.tostring(stanza.xml, xmlns=client.default_ns, stream=client, top_level=True)
        client.send_raw(text)
    except Exception:  # as slixmpp's send task: logged, the agent and its stream go on
        log.error("Exception raised while sending a stanza:", exc_info=True)
