"""Clocks for the shell. The core never reads time; agents ask a clock and pass ``now`` in.

Three modes, one interface (:class:`Clock`):

- :class:`RealClock`: the wall clock, for live boxes and servers.
- :class:`AcceleratedClock`: scenario time running ``speed`` times faster than the wall clock,
  anchored to the wall clock (not a process-local monotonic clock) so that agents in several
  processes agree on it. For demos that should feel live; results depend on the machine's speed.
- :class:`VirtualClock`: coordinated scenario time. It moves only when the process's driver sets
  it (see :mod:`vmenergy.runtime.coordinator`), and it knows which tasks are waiting for a time
  and which are still working, so the driver can tell when the process is idle. Same scenario and
  seed give the same results on any machine.

Code that waits for scenario time uses :meth:`Clock.sleep_until`; code that starts a task that
will wait for scenario time uses :meth:`Clock.spawn`, so a virtual clock counts the task as busy
from its first step (otherwise a driver could see the process idle before the task had even
registered the time it waits for).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Coroutine, Optional, Protocol

__all__ = ["Clock", "RealClock", "AcceleratedClock", "VirtualClock", "clock_from"]


class Clock(Protocol):
    mode: str
    running: bool  # whether an agent may start its own timed work (no driver decides for it)

    def now(self) -> float:
        """Epoch seconds (UTC) of the clock's time."""

    async def sleep_until(self, t: float) -> None:
        """Return once the clock's time has reached ``t``."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        """Start a task that may wait on this clock."""


class RealClock:
    mode = "real"
    speed = 1.0
    running = True

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        return asyncio.get_running_loop().create_task(coro)


class AcceleratedClock:
    """Scenario time ``start`` at wall time ``wall_anchor``, then ``speed`` times the wall clock.

    Before the anchor the clock stands at ``start``; the anchor is set when every agent of the
    run reported ready (:meth:`anchor`), so start-up does not eat scenario time."""

    mode = "accelerated"

    def __init__(self, start: float, speed: float, wall_anchor: Optional[float] = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.start = float(start)
        self.speed = float(speed)
        self.wall_anchor = wall_anchor
        self._anchored = asyncio.Event() if wall_anchor is None else None

    @property
    def running(self) -> bool:
        """Whether scenario time has started."""
        return self.wall_anchor is not None

    def anchor(self, wall_anchor: float) -> None:
        self.wall_anchor = float(wall_anchor)
        if self._anchored is not None:
            self._anchored.set()

    def now(self) -> float:
        if self.wall_anchor is None:
            return self.start
        return self.start + max(0.0, time.time() - self.wall_anchor) * self.speed

    async def sleep_until(self, t: float) -> None:
        if self.wall_anchor is None and self._anchored is not None:
            await self._anchored.wait()
        while True:
            delay = (t - self.now()) / self.speed + max(0.0, (self.wall_anchor or 0.0) - time.time())
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, 1.0))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        return asyncio.get_running_loop().create_task(coro)


class VirtualClock:
    """Scenario time that stands still until :meth:`advance` moves it.

    It keeps the tasks waiting for a time in a heap and counts the tasks that are working (woken
    by :meth:`advance`, or started by :meth:`spawn`, and not yet waiting again or finished), so
    :attr:`busy` together with the driver's own counts says exactly whether the process has work
    left at the current time. Not thread-safe: use it from the event loop only."""

    mode = "virtual"
    speed = None
    running = False  # its driver decides when anything happens

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, asyncio.Future, Optional[asyncio.Task]]] = []
        self._seq = itertools.count()
        self._working: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def now(self) -> float:
        return self._now

    # -- tasks ------------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        """Tasks that were woken or spawned and have not yet waited again or finished."""
        return len(self._working)

    def next_timer(self) -> Optional[float]:
        """The earliest time a task waits for (cancelled waits are dropped)."""
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            return
        task = asyncio.current_task()
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (float(t), next(self._seq), fut, task))
        self._release(task)
        await fut

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        task = asyncio.get_running_loop().create_task(coro)
        self._hold(task)
        return task

    def _hold(self, task: asyncio.Task) -> None:
        if task not in self._working:
            self._working.add(task)
            self._idle.clear()
            task.add_done_callback(self._release)

    def _release(self, task: Optional[asyncio.Task]) -> None:
        if task is not None and task in self._working:
            self._working.discard(task)
            if not self._working:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until no woken or spawned task is working."""
        await self._idle.wait()

    # -- time -------------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Set the time to ``t`` (never backwards). Waiting tasks wake only at :meth:`wake`, so
        the driver can first hand the agents what arrived and then let devices run."""
        if t < self._now:
            raise ValueError(f"virtual time cannot go back from {self._now} to {t}")
        self._now = float(t)

    def wake(self) -> int:
        """Wake every task waiting for a time <= now, in the order of their times (then of their
        waits); they count as working from now on. Returns how many were woken."""
        woken = 0
        while self._timers and self._timers[0][0] <= self._now:
            _, _, fut, task = heapq.heappop(self._timers)
            if not fut.done():
                if task is not None:
                    self._hold(task)
                fut.set_result(None)
                woken += 1
        return woken


def clock_from(d: Optional[dict]) -> Clock:
    """The clock a swarm process runs on, from ``Plan.clock``."""
    mode = (d or {}).get("mode", "real")
    if mode == "real":
        return RealClock()
    if mode == "accelerated":
        anchor = d.get("wall_anchor") if d else None
        return AcceleratedClock(float(d["start"]), float(d["speed"]), None if anchor is None else float(anchor))
    if mode == "virtual":
        return VirtualClock(float(d["start"]))  # type: ignore[index]
    raise ValueError(f"unknown clock mode {mode!r}")
