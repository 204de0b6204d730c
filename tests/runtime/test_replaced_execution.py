"""A schedule that replaces a running one (a new assignment for the same offer): the cancelled
execution gives its device back (a hardware executor writes the device's normal state on the way
out) before the new one starts, and a virtual clock counts that as work, so scenario time cannot
move on while the write is in flight. Before, the cancelled task wrote while the clock thought
everything was idle, and the new set-points could be overwritten by it: the emulated device
integrated under whichever write landed last, in real time."""

from __future__ import annotations

import asyncio

from tests.integration.test_presence import future_offer
from vmenergy.agents import ProsumerAgent
from vmenergy.flexoffer import Schedule
from vmenergy.protocol.engine import Execute
from vmenergy.runtime.clock import VirtualClock


class _Device:
    """An executor whose device takes a (real-time) moment to be given back when a schedule
    ends or is cancelled, as a Modbus write does."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.log: list[str] = []

    async def execute(self, offer, schedule, clock):
        self.log.append(f"start {schedule.schedule_id}")
        try:
            await clock.sleep_until(clock.now() + 3600)
            return schedule.start, list(schedule.energy)
        finally:
            await asyncio.shield(self._give_back(schedule.schedule_id))

    async def _give_back(self, schedule_id: str) -> None:
        await asyncio.sleep(0.05)  # the write on the wire
        self.log.append(f"restored {schedule_id}")


async def test_a_replaced_execution_gives_its_device_back_first_while_the_clock_waits():
    clock = VirtualClock(0)
    device = _Device(clock)
    home = ProsumerAgent("home@localhost", "pw", aggregator="agg@localhost", clock=clock, executor=device)
    offer = future_offer("o-1", "home@localhost")
    first = Schedule(offer_id="o-1", schedule_id="s-1", start=offer.start_after, energy=(1.0, 1.0))
    second = Schedule(offer_id="o-1", schedule_id="s-2", update_id=1, start=offer.start_after, energy=(0.5, 1.0))

    home.on_execute(Execute(offer, first))
    await clock.wait_idle()
    assert device.log == ["start s-1"]

    home.on_execute(Execute(offer, second))  # the aggregator's new assignment for the same offer
    await clock.wait_idle()  # what a driver does before it reports the round done
    assert device.log == ["start s-1", "restored s-1", "start s-2"]
    await home.stop()
