"""The server killed and restarted under connected agents (the server-kill drill, on two agents):
it knows none of their streams, so every resumption is refused and each agent starts a new
session; what an agent sent while the server was away arrives there, once.

With agents/unsent.py installed and nothing else changed, this froze the agents' process: the
ack request BurstAcks sent right after ``<resume/>`` made Prosody close the new, unbound stream,
and the resource binding that died with it went round slixmpp's send loop for ever
(tests/test_unsent.py, tests/test_stream_acks.py; docs/scaling.md, "Stream resumption"). A
watch turns such a freeze into a failure instead of a test that never ends.

The prosumer's resend timer is turned off: only what the agent kept for the stream may deliver
the offers it made while the server was down.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import threading
import time

import pytest

from tests.integration.test_presence import eventually, future_offer
from tests.integration.test_resume_dead_link import agent_pair
from tests.integration.test_stream_resumption import Sessions
from vmenergy.runtime.servers import start_server, stop_server

pytestmark = pytest.mark.integration

#: Offers the prosumer makes while the server is down.
WHILE_DOWN = 3
#: Real seconds without a turn of the event loop taken for a freeze (a turn takes milliseconds;
#: the freeze this watches for never ends).
STOOD_STILL = 30.0


class LoopStood(BaseException):
    """Raised into the event loop's thread when it stopped turning (not an ``Exception``:
    slixmpp's send loop catches and logs those, and would go on spinning)."""


class _LoopWatch:
    """A thread that raises :class:`LoopStood` into the loop's thread whenever the loop has not
    run its heartbeat for :data:`STOOD_STILL` seconds; the task spinning then ends with it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.beat = time.monotonic()
        self.stood = False
        self._done = threading.Event()
        self._heartbeat()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        self.beat = time.monotonic()
        if not self._done.is_set():
            self.loop.call_later(0.5, self._heartbeat)

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            if time.monotonic() - self.beat > STOOD_STILL:
                # again while it stands still: each agent's client has a send loop of its own
                self.stood = True
                self.beat = time.monotonic()
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(LoopStood))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


async def test_agents_start_new_sessions_on_a_restarted_server_and_what_was_sent_meanwhile_arrives(
        fresh_xmpp_server, tmp_path):
    info = fresh_xmpp_server("prosody")
    agg, home = agent_pair(info, tmp_path, "restart")
    home.engine.resend_after = home.engine.max_backoff = 3600  # see the module docstring
    watch = _LoopWatch()
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="the first offer accepted")
        sessions = {a: Sessions(a) for a in (agg, home)}
        os.killpg(info.pid, signal.SIGKILL)  # as the drill does: the server's whole process group
        await eventually(lambda: not agg.link_up and not home.link_up, what="both links down")
        jid = str(home.jid)
        for i in range(1, 1 + WHILE_DOWN):
            await home.handle(lambda now, i=i: home.engine.add_offer(future_offer(f"restart-{i}", jid), now, now))
        stop_server(info.run_dir)  # what the run's supervisor does: the same server on its port
        start_server(info.kind, info.run_dir, domain=info.domain, port=info.port, registration=info.registration)
        total = 1 + WHILE_DOWN
        await eventually(lambda: agg.link_up and home.link_up, timeout=60, what="both agents back")
        await eventually(lambda: agg.engine.counts().get("accepted") == total, timeout=60,
                         what="every offer made while the server was down held by the aggregator")
        await eventually(lambda: home.engine.counts().get("accepted") == total, timeout=30,
                         what="every acknowledgement back at the prosumer")
        for agent, seen in sessions.items():
            assert (seen.started, seen.resumed) == (1, 0), f"{agent.jid}: one new session, nothing resumed"
            assert seen.stream_errors == 0, f"{agent.jid}: the server closed a new stream"
        assert [n for n in agg.events if n.event == "duplicate"] == [], "an offer reached the aggregator twice"
    finally:
        watch.stop()
        await home.stop()
        await agg.stop()
    assert not watch.stood, f"the event loop stood still for {STOOD_STILL:g} s"
