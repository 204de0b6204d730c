"""A prosumer box whose devices are emulated Modbus TCP (an EV charger), Modbus RTU on a pty pair
(an SG-Ready heat pump) and a serial line board (a relay), through whole schedules on a real
Prosody with its aggregator: set-points written at the scheduled intervals, measurements
reported and settled; the board falls silent during its schedule, and the box tells the
aggregator and carries on."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.hardware.helpers import Box
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.flexoffer import FlexOffer, Profile, Slice, State
from vmenergy.protocol.aggregator import AGG_OFFERS, DEVICE_FAULTS, AggregatorConfig
from vmenergy.protocol.prosumer import PROSUMER_BILLS, PROSUMER_OFFERS
from vmenergy.runtime.clock import AcceleratedClock

pytestmark = pytest.mark.integration

RES = 900
# a 15-minute interval in 9 s: room for a busy machine (the schedules are assigned a whole
# interval before they start, and a late wake-up moves little energy between intervals)
SPEED = 100.0


async def eventually(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def fixed_offer(label: str, issuer: str, start: int, kwh_per_interval: float, created: int) -> FlexOffer:
    """Two intervals at a fixed start, energy free between 0 and twice the wish; the baseline
    is the wish, so a peak-shaving aggregator has something to move but keeps it feasible."""
    return FlexOffer(id=f"hw-{label}", issuer=issuer, label=label, resolution=RES, creation_time=created,
                     start_after=start, start_before=start,
                     profiles=(Profile((Slice(2, kwh_per_interval * 2, kwh_per_interval * 2),)),))


async def test_a_box_of_modbus_tcp_rtu_and_serial_devices_executes_schedules_that_are_settled(prosody_server,
                                                                                               tmp_path):
    start = (int(time.time()) // RES + 1) * RES
    clock = AcceleratedClock(start, SPEED)  # stands at `start` until anchored
    box = await Box(clock).start()
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid, box_jid = prosody_server.jid("hw-agg"), prosody_server.jid("hw-box")
    first = start // RES + 4
    offers = [fixed_offer("wallbox", box_jid, first, 2.0, start), fixed_offer("heatpump", box_jid, first, 0.75, start),
              fixed_offer("board", box_jid, first, 0.375, start)]
    executor = box.executor(timeout=0.2)
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(enrolment=(box_jid,), cycle=RES, lead=RES,
                                                                     settle_after=RES),
                          server=addr, clock=clock, tick=0.2, store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(box_jid, "pw-box", aggregator=agg_jid, offers=[(start, fo) for fo in offers],
                         executor=executor, server=addr, clock=clock, tick=0.2, store_path=tmp_path / "box.sqlite")
    assert executor.on_fault is not None  # the agent listens to its devices' faults
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        await asyncio.wait_for(home.wait_ready(), 30)
        clock.anchor(time.time())
        await agg.start_time()
        await home.start_time()

        async def board_goes_silent():  # from the middle of its schedule's first interval on
            await clock.sleep_until(first * RES + RES // 2)
            box.board.inject("timeout")

        silent = asyncio.ensure_future(board_goes_silent())
        ledger = home.engine.ledger
        await eventually(lambda: all(ledger[PROSUMER_OFFERS].get(f"hw-{d}").state is State.SETTLED
                                     for d in ("wallbox", "heatpump")), 300, "the schedules settled")
        await eventually(lambda: len(agg.engine.ledger[DEVICE_FAULTS].values()) >= 1, 120, "the fault reported")
        await silent

        # the schedules' energies were kept by the devices and measured by their meters
        for label, kwh in (("wallbox", 2.0), ("heatpump", 0.75)):
            rec = agg.engine.ledger[AGG_OFFERS].get(f"hw-{label}")
            assert rec.measurement is not None and rec.measurement.start == first
            assert len(rec.measurement.energy) == 2
            assert rec.measurement.energy == pytest.approx([kwh, kwh], rel=0.25), label
        assert ledger[PROSUMER_BILLS].values(), "a bill for the settled offers"
        # set-points reached the devices in the scheduled intervals, and none before
        ev_writes = [t for t, name, _ in box.wallbox.writes if name == "current_limit"]
        assert ev_writes and min(ev_writes) >= first * RES - 5 * SPEED  # within a few real seconds of it
        assert any(first * RES <= t < (first + 2) * RES for t in ev_writes)
        assert box.wallbox.values["current_limit"] == 32  # normal again after the schedule
        assert any(name == "relay_1" and v is True for _, name, v in box.heatpump.writes)
        # the silent board: reported, the box still alive and connected
        (sender, report), *_ = agg.engine.ledger[DEVICE_FAULTS].values()
        assert sender == box_jid and report.device == "board" and report.offer_id == "hw-board"
        assert report.kind in ("timeout", "gone")
        assert home.is_alive() and home.link_up
    finally:
        await home.stop()
        await agg.stop()
        await box.stop()
