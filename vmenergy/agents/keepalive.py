"""Whether an agent's link to its server is alive: any stanza received proves it; a ping is
sent only after a silence, and the link is cut only when that ping goes unanswered.

Why not slixmpp's XEP-0199 keepalive (which SPADE turns on): it pings every 55 s whatever the
traffic and, when the answer is late by 30 s, calls slixmpp's own ``reconnect()``. An aggregator
busy with the presence of 500 subscribing prosumers reads its stream far behind the server, so
the answer was late although the link was fine (the stream dropped exactly 85 s after each
connect), and slixmpp's reconnect then raced VME's reconnect loop on the same client: two
connection attempts interleaved, which the server saw as TLS "wrong version number" and the
client as a parse error. Here a late answer on a link that keeps delivering is no failure, and a
dead link is only cut: reconnecting stays with the agent's one reconnect loop.

:class:`LinkPolicy` is the decision (events in, an action out; no clock, no I/O);
:class:`Keepalive` runs it on a client in real time (a link is wall-clock business, not
scenario time).
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from vmenergy.errors import VmeError

__all__ = ["Action", "LinkPolicy", "Keepalive"]

#: Seconds of silence before a ping, and seconds of further silence after it before the link is
#: cut. SPADE's interval; the time-out is longer than slixmpp's 30 s because only silence counts.
PING_AFTER = 55.0
CUT_AFTER = 60.0
#: A watch that wakes this many seconds after its due time found its own event loop busy: the
#: time it was late is not counted as the link's silence (:meth:`LinkPolicy.stalled`).
STALL_AFTER = 1.0


class Action(enum.Enum):
    NOTHING = "nothing"
    PING = "ping"
    CUT = "cut"


@dataclass
class LinkPolicy:
    """When to ping and when to give a link up, from the times stanzas arrived (seconds on any
    monotonic clock)."""

    ping_after: float = PING_AFTER
    cut_after: float = CUT_AFTER
    last_heard: float = 0.0
    ping_sent: Optional[float] = None  # when the ping still unanswered by any stanza went out

    def __post_init__(self) -> None:
        for name in ("ping_after", "cut_after"):
            value = getattr(self, name)
            if not value > 0:
                raise VmeError(name, f"must be a positive number of seconds, got {value!r}")

    def connected(self, now: float) -> None:
        """A session started (or resumed): a fresh start, nothing owed."""
        self.last_heard = now
        self.ping_sent = None

    def heard(self, now: float) -> None:
        """A stanza arrived: the link works, whatever was asked of it before."""
        self.last_heard = max(self.last_heard, now)
        self.ping_sent = None

    def pinged(self, now: float) -> None:
        self.ping_sent = now

    def stalled(self, gap: float) -> None:
        """The agent's own event loop ran no I/O for ``gap`` seconds (a long synchronous step:
        a swarm process's first round plans the devices of thousands of prosumers at once).
        Whatever the server sent meanwhile is still unread, and the watch's timer runs before
        the loop reads its sockets (uvloop), so that time is not silence: the watch moves
        forward by ``gap``. (Written for the 5,000 and 10,000 rungs of round 4, whose links were
        all cut; it did not prevent that, the server had stopped serving: bench/RESULTS.md.)"""
        if gap > 0:
            self.last_heard += gap
            if self.ping_sent is not None:
                self.ping_sent += gap

    def check(self, now: float) -> Action:
        """What to do at ``now``: cut a link silent since a ping went out ``cut_after`` ago, ping
        one silent for ``ping_after``, otherwise nothing."""
        if self.ping_sent is not None:
            return Action.CUT if now - self.ping_sent >= self.cut_after else Action.NOTHING
        return Action.PING if now - self.last_heard >= self.ping_after else Action.NOTHING

    def next_check(self, now: float) -> float:
        """Seconds until :meth:`check` can answer something else than it does at ``now``."""
        if self.ping_sent is not None:
            return max(0.0, self.ping_sent + self.cut_after - now)
        return max(0.0, self.last_heard + self.ping_after - now)


class Keepalive:
    """:class:`LinkPolicy` on a slixmpp client: incoming stanzas are noted by an ``in`` filter
    (one float stored per stanza), a task wakes when the policy's next decision is due, pings
    the server when told to, and calls ``cut`` (which aborts the transport; the agent's
    ``disconnected`` handler then reconnects) when told to."""

    def __init__(self, client: Any, cut: Callable[[], None], policy: Optional[LinkPolicy] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cut = cut
        self.policy = policy or LinkPolicy()
        self.clock = clock
        self._task: Optional[asyncio.Task] = None
        self._wake = asyncio.Event()
        client.add_filter("in", self._heard)

    def _heard(self, stanza: Any) -> Any:
        self.policy.heard(self.clock())
        return stanza

    def start(self) -> None:
        """The session is up: watch it (again)."""
        self.policy.connected(self.clock())
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            due = self.clock() + self.policy.next_check(self.clock()) + 0.01
            try:
                await asyncio.wait_for(self._wake.wait(), due - self.clock())
            except asyncio.TimeoutError:
                pass
            late = self.clock() - due
            if late > STALL_AFTER:
                # the loop was busy past the due time, and timers run before the loop reads its
                # sockets (uvloop): give the time back, read what waits, then decide
                self.policy.stalled(late)
                continue
            action = self.policy.check(self.clock())
            if action is Action.PING:
                self.policy.pinged(self.clock())
                # no answer is awaited here: any stanza, the answer included, is proof of life
                answer = self.client.plugin["xep_0199"].send_ping(self.client.boundjid.host,
                                                                  timeout=self.policy.cut_after)
                answer.add_done_callback(_forget)
            elif action is Action.CUT:
                self.policy.connected(self.clock())  # one cut per silence
                self.cut()


def _forget(answer: "asyncio.Future[Any]") -> None:
    """A ping's answer (or its time-out, or its cancellation by a disconnect) is of no further
    interest: the policy judged the link by the stanzas themselves."""
    if not answer.cancelled():
        answer.exception()
