"""Clocks: the virtual clock stands still until its driver moves it and knows which tasks are
still working; the accelerated clock stands at its start until it is anchored."""

from __future__ import annotations

import asyncio
import time

import pytest

from vmenergy.runtime.clock import AcceleratedClock, RealClock, VirtualClock, clock_from


async def test_virtual_clock_wakes_sleepers_in_time_order_only_when_told():
    clock = VirtualClock(100)
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, t: float) -> None:
        await clock.sleep_until(t)
        order.append((name, clock.now()))

    for name, t in (("c", 300), ("a", 150), ("b", 200)):
        clock.spawn(sleeper(name, t))
    await clock.wait_idle()  # all three are waiting now
    assert clock.busy == 0 and clock.next_timer() == 150
    clock.advance(250)
    assert order == []  # time moved, nobody woke yet: the driver first hands out messages
    assert clock.wake() == 2
    assert clock.busy == 2  # working from the moment they were woken
    await clock.wait_idle()
    assert order == [("a", 250), ("b", 250)]
    assert clock.next_timer() == 300


async def test_a_spawned_task_counts_as_busy_until_it_waits():
    clock = VirtualClock(0)
    step = asyncio.Event()

    async def worker() -> None:
        await step.wait()  # work that is not waiting for scenario time
        await clock.sleep_until(60)

    clock.spawn(worker())
    assert clock.busy == 1
    await asyncio.sleep(0)
    assert clock.busy == 1  # still working (waiting on something else than the clock)
    step.set()
    await clock.wait_idle()
    assert clock.busy == 0 and clock.next_timer() == 60


async def test_a_finished_or_cancelled_task_is_not_busy():
    clock = VirtualClock(0)
    task = clock.spawn(clock.sleep_until(10))
    await clock.wait_idle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.next_timer() is None  # a cancelled wait is dropped
    done = clock.spawn(asyncio.sleep(0))
    await done
    assert clock.busy == 0


async def test_sleeping_until_now_or_earlier_returns_at_once():
    clock = VirtualClock(500)
    await asyncio.wait_for(clock.sleep_until(400), 1)
    await asyncio.wait_for(clock.sleep_until(500), 1)


def test_virtual_time_never_goes_back():
    clock = VirtualClock(100)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(99)


async def test_accelerated_clock_stands_at_its_start_until_anchored():
    clock = AcceleratedClock(1000, speed=3600)
    assert not clock.running and clock.now() == 1000
    waiter = asyncio.ensure_future(clock.sleep_until(1001))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # not before the anchor, however much wall time passes
    clock.anchor(time.time())
    await asyncio.wait_for(waiter, 5)
    assert clock.running and clock.now() > 1000


def test_clock_from_plan_descriptions():
    assert isinstance(clock_from({"mode": "real"}), RealClock)
    assert isinstance(clock_from({"mode": "virtual", "start": 5}), VirtualClock)
    acc = clock_from({"mode": "accelerated", "start": 5, "speed": 60})
    assert isinstance(acc, AcceleratedClock) and acc.speed == 60
    with pytest.raises(ValueError, match="unknown clock mode"):
        clock_from({"mode": "sundial"})
