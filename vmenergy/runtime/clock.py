"""Clocks for the shell. The core never reads time; agents ask a clock and pass ``now`` in.

:class:`SimClock` runs scenario time faster than real time. It is anchored to the wall clock
(not a process-local monotonic clock) so that agents in several processes, or an agent restarted
mid-run, agree on the simulated time: sim = sim_anchor + (wall - wall_anchor) * speed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Clock", "RealClock", "SimClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds (UTC) of the clock's time."""

    async def sleep_until(self, t: float) -> None:
        """Return once the clock's time has reached ``t``."""


class RealClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def describe(self) -> dict:
        return {"kind": "real"}


@dataclass(frozen=True)
class SimClock:
    """Scenario time starting at ``sim_anchor`` when the wall clock read ``wall_anchor``."""

    sim_anchor: float
    wall_anchor: float
    speed: float = 60.0

    @classmethod
    def starting(cls, sim_start: float, speed: float) -> "SimClock":
        return cls(sim_start, time.time(), speed)

    def now(self) -> float:
        # frozen at sim_anchor until the wall anchor: a swarm starts all agents first
        return self.sim_anchor + max(0.0, time.time() - self.wall_anchor) * self.speed

    async def sleep_until(self, t: float) -> None:
        while True:
            delay = (t - self.now()) / self.speed + max(0.0, self.wall_anchor - time.time())
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, 1.0))

    def describe(self) -> dict:
        return {"kind": "sim", "sim_anchor": self.sim_anchor, "wall_anchor": self.wall_anchor, "speed": self.speed}

    @classmethod
    def from_description(cls, d: dict) -> "SimClock":
        return cls(float(d["sim_anchor"]), float(d["wall_anchor"]), float(d["speed"]))


def clock_from(d: dict | None) -> "Clock":
    if not d or d.get("mode", "real") == "real":
        return RealClock()
    return SimClock(float(d["start"]), float(d["wall_anchor"]), float(d["speed"]))
