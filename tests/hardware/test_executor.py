"""HardwareExecutor on emulated devices under a virtual clock: set-points written at the
intervals' starts and corrected within them, the meter's counters turned into kWh per interval,
the normal state written back at the end or on withdrawal, and faults retried, reported, put in
the safe state, never raised past a measurement that can still be made."""

from __future__ import annotations

import asyncio

import pytest

from vmenergy.devices.adapters.config import read_hardware
from vmenergy.devices.adapters.executor import setpoint_values
from vmenergy.devices.adapters.faults import DeviceFault
from vmenergy.devices.adapters.registers import load_map
from vmenergy.flexoffer import FlexOffer, Profile, Schedule, Slice
from vmenergy.runtime.clock import VirtualClock

from .helpers import T0, Box, drive

START = T0 // 900 + 4  # the schedules start an hour after T0


def offer(label: str, kwh: float, n: int = 4) -> tuple[FlexOffer, Schedule]:
    fo = FlexOffer(id=f"fo-{label}", label=label, resolution=900, start_after=START, start_before=START,
                   profiles=(Profile((Slice(n, 0.0, 2 * kwh * n),)),))
    return fo, Schedule(fo.id, START, (kwh * n,), "s-1", 0, 0, 900)


@pytest.fixture
async def box():
    clock = VirtualClock(T0)
    b = await Box(clock).start()
    yield b
    await b.stop()


def test_setpoints_per_control_kind():
    ev = load_map("ev_charger")
    (wallbox,) = read_hardware([{"id": "w", "map": "ev_charger", "host": "h"}])
    assert setpoint_values(wallbox, ev, 11.04) == {"current_limit": pytest.approx(16.0), "charging_enabled": True}
    assert setpoint_values(wallbox, ev, 100.0)["current_limit"] == 32  # capped at the register's max
    assert setpoint_values(wallbox, ev, 2.0) == {"charging_enabled": False, "current_limit": 6}  # < 6 A: paused
    (hp,) = read_hardware([{"id": "hp", "map": "sg_ready", "host": "h", "rated_kw": 3.0}])
    sg = load_map("sg_ready")
    assert setpoint_values(hp, sg, 2.0) == {"relay_1": True, "relay_2": True}  # forced on
    assert setpoint_values(hp, sg, 1.0) == {"relay_1": True, "relay_2": False}  # blocked
    (meter,) = read_hardware([{"id": "m", "map": "sdm630", "host": "h"}])
    with pytest.raises(Exception, match="cannot follow a schedule"):
        setpoint_values(meter, load_map("sdm630"), 1.0)


async def test_an_ev_charger_follows_a_schedule_interval_by_interval_and_returns_to_normal(box):
    clock = box.clock
    ex = box.executor()
    fo, s = offer("wallbox", 2.5)  # 10 kW for an hour
    start, metered = await drive(clock, clock.spawn(ex.execute(fo, s, clock)))
    await ex.close()
    assert start == START and len(metered) == 4
    # whole amps: 14.49 A asked, the register holds 14; the corrections make up most of it
    assert all(abs(e - 2.5) < 0.1 for e in metered), metered
    writes = [(t, name, v) for t, name, v in box.wallbox.writes if name == "current_limit"]
    # a set-point at the start of each interval, corrected twice within it, none before the schedule
    firsts = [t for t, _, _ in writes if (t - START * 900) % 900 == 0]
    assert [t - START * 900 for t in firsts[:4]] == [0, 900, 1800, 2700]
    assert min(t for t, _, _ in writes) == START * 900
    assert len([t for t, _, _ in writes if t < (START + 4) * 900]) == 12
    # at the end: the normal state (full current, enabled)
    assert box.wallbox.values["current_limit"] == 32 and box.wallbox.values["charging_enabled"] is True
    assert box.wallbox.writes[-1][0] == (START + 4) * 900


async def test_a_relay_load_is_duty_cycled_against_its_own_meter(box):
    clock = box.clock
    ex = box.executor()
    fo, s = offer("boiler", 0.25)  # 0.25 kWh per 15 min from a 2 kW element: on about half the time
    start, metered = await drive(clock, clock.spawn(ex.execute(fo, s, clock)))
    await ex.close()
    # on or off for a third of an interval at a time: within half a third's energy (1/12 kWh)
    assert all(abs(e - 0.25) <= 2.0 / 12 / 2 + 1e-9 for e in metered), metered
    switches = [v for _, name, v in box.relay.writes if name == "relay_1"]
    assert True in switches and False in switches


async def test_an_sg_ready_heat_pump_on_modbus_rtu_and_a_serial_board_follow_their_schedules(box):
    clock = box.clock
    ex = box.executor()
    hp_offer, hp_s = offer("heatpump", 0.75)  # 3 kW pump: forced on
    board_offer, board_s = offer("board", 0.0)  # blocked: nothing
    a = clock.spawn(ex.execute(hp_offer, hp_s, clock))
    b = clock.spawn(ex.execute(board_offer, board_s, clock))
    await drive(clock, asyncio.ensure_future(asyncio.gather(a, b)))
    await ex.close()
    _, hp = a.result()
    _, board = b.result()
    assert hp == pytest.approx([0.75] * 4, rel=1e-3)
    assert board == pytest.approx([0.0] * 4, abs=1e-6)
    assert ("relay_1", True) in [(n, v) for _, n, v in box.heatpump.writes]
    assert box.heatpump.values == {**box.heatpump.values, "relay_1": False, "relay_2": False}  # normal again
    assert box.board.values["relay_1"] is True


async def test_an_overlapping_schedule_takes_the_device_over_and_gives_it_back(box):
    """Two schedules on one device (a revised offer assigned while the first still runs): the
    newer sets the device while it runs, its end does not write the normal state under the older
    one, which then sets the device again; the normal state comes back when the last one ends."""
    clock = box.clock
    ex = box.executor()
    a, a_s = offer("wallbox", 2.5)  # 10 kW for four intervals
    b = FlexOffer(id="fo-b", label="wallbox", resolution=900, start_after=START + 1, start_before=START + 1,
                  profiles=(Profile((Slice(2, 0.0, 6.0),)),))
    b_s = Schedule(b.id, START + 1, (3.0,), "s-2", 0, 0, 900)  # 6 kW for the middle two
    ta, tb = clock.spawn(ex.execute(a, a_s, clock)), clock.spawn(ex.execute(b, b_s, clock))
    await drive(clock, asyncio.ensure_future(asyncio.gather(ta, tb)))
    await ex.close()
    _, b_metered = tb.result()
    assert b_metered == pytest.approx([1.5, 1.5], abs=0.1)
    limits = [(t - START * 900, v) for t, name, v in box.wallbox.writes if name == "current_limit"]
    during_b = {v for t, v in limits if 900 <= t < 2700}
    assert during_b and max(during_b) < 10  # 6 kW: about 8.7 A, never the first schedule's 14 A
    assert [v for t, v in limits if t < 4 * 900 and v == 32] == []  # no normal state under a live schedule
    assert max(v for t, v in limits if 2700 <= t < 3600) >= 13  # the first one sets it again
    assert box.wallbox.values["current_limit"] == 32 and box.wallbox.values["charging_enabled"] is True


async def test_a_withdrawn_schedule_puts_the_device_back_in_its_normal_state(box):
    clock = box.clock
    ex = box.executor()
    fo, s = offer("wallbox", 1.0)
    task = clock.spawn(ex.execute(fo, s, clock))
    while clock.now() < (START + 1) * 900:
        await clock.wait_idle()
        clock.advance(clock.next_timer())
        clock.wake()
    await clock.wait_idle()
    assert box.wallbox.values["current_limit"] < 32
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)  # the restore runs shielded from the cancellation
    await ex.close()
    assert box.wallbox.values["current_limit"] == 32 and box.wallbox.values["charging_enabled"] is True


async def test_a_meter_that_misses_a_bound_still_gives_every_interval_and_the_fault_is_reported(box):
    clock = box.clock
    faults = []
    ex = box.executor(on_fault=lambda offer_id, device, fault: faults.append((offer_id, device, fault.kind)))
    fo, s = offer("heatpump", 0.75)

    async def glitch():  # the pump's meter stops answering for the second interval
        await clock.sleep_until((START + 1) * 900 - 1)
        box.heatpump.inject("timeout")
        await clock.sleep_until((START + 2) * 900 + 1)
        box.heatpump.inject(None)

    g = clock.spawn(glitch())
    start, metered = await drive(clock, clock.spawn(ex.execute(fo, s, clock)))
    await g
    await ex.close()
    assert (start, len(metered)) == (START, 4)
    # the pump stayed forced on (the silent device took no write): every kWh is accounted for
    assert sum(metered) == pytest.approx(0.75 * 4, rel=1e-3)
    assert ("fo-heatpump", "heatpump", "timeout") in faults
    # the energy between the good readings is shared by the intervals between them
    assert metered[1] == pytest.approx(metered[2])


async def test_a_device_that_is_gone_for_good_raises_after_reporting_and_never_hangs(box):
    clock = box.clock
    faults = []
    ex = box.executor(on_fault=lambda offer_id, device, fault: faults.append((device, fault.kind)))
    ex._sleep = lambda s: asyncio.sleep(0)  # the retries' real-time waits, shortened
    fo, s = offer("wallbox", 2.5)

    async def pull_the_plug():
        await clock.sleep_until((START + 2) * 900 + 10)
        await box.tcp.unplug()

    g = clock.spawn(pull_the_plug())
    task = clock.spawn(ex.execute(fo, s, clock))
    with pytest.raises(DeviceFault) as err:
        await drive(clock, task)
    await g
    await ex.close()
    assert err.value.kind == "gone" and "no measurement" in err.value.reason
    assert ("wallbox", "gone") in faults
    assert {kind for _, kind in faults} <= {"timeout", "gone", "unreachable"}


async def test_an_offer_no_hardware_drives_is_a_fault_not_a_crash(box):
    clock = box.clock
    faults = []
    ex = box.executor(on_fault=lambda offer_id, device, fault: faults.append(offer_id))
    fo, s = offer("dishwasher", 1.0)
    with pytest.raises(DeviceFault, match="no hardware entry drives offer fo-dishwasher"):
        await ex.execute(fo, s, clock)
    await ex.close()
    assert faults == ["fo-dishwasher"]


async def test_a_sunspec_battery_charges_and_discharges_as_scheduled_against_its_meter():
    from vmenergy.devices.adapters.emulator import EmulatedDevice, ModbusEmulator
    from vmenergy.devices.adapters.executor import HardwareDevice, HardwareExecutor

    clock = VirtualClock(T0)
    battery = EmulatedDevice(load_map("sunspec_storage"), clock, rated_kw=5.0)
    meter = EmulatedDevice(load_map("sdm630"), clock, watches=[battery])
    emu = await ModbusEmulator({1: battery, 2: meter}).start()
    link = {"host": "127.0.0.1", "port": emu.port, "timeout": 0.3}
    configs = read_hardware([
        {"id": "battery", "map": "sunspec_storage", "unit": 1, "rated_kw": 5.0, "meter": "meter.import_kwh",
         "export": "meter.export_kwh", **link},
        {"id": "meter", "map": "sdm630", "unit": 2, **link}])
    ex = HardwareExecutor([HardwareDevice.build(c) for c in configs])
    fo = FlexOffer(id="fo-bat", label="battery", resolution=900, start_after=START, start_before=START,
                   profiles=(Profile((Slice(2, -2.5, 2.5), Slice(2, -2.5, 2.5))),))
    s = Schedule(fo.id, START, (2.0, -1.5), "s-1", 0, 0, 900)  # charge 1 kWh/interval, then discharge 0.75
    try:
        start, metered = await drive(clock, clock.spawn(ex.execute(fo, s, clock)))
    finally:
        await ex.close()
        await emu.stop()
    assert start == START
    assert metered == pytest.approx([1.0, 1.0, -0.75, -0.75], abs=1e-3)
    modes = [v for _, n, v in battery.writes if n == "StorCtl_Mod"]
    assert 1 in modes and 2 in modes and modes[-1] == 0  # charge, discharge, then its own control


async def test_a_fault_that_stays_is_told_once_per_schedule_and_kind(box):
    clock = box.clock
    told = []
    ex = box.executor(on_fault=lambda offer_id, device, fault: told.append((offer_id, device, fault.kind)))
    ex._sleep = lambda s: asyncio.sleep(0)
    fo, s = offer("board", 0.375)
    box.board.inject("exception")  # every request refused, the whole schedule long
    with pytest.raises(DeviceFault):
        await drive(clock, clock.spawn(ex.execute(fo, s, clock)))
    await ex.close()
    assert told.count(("fo-board", "board", "exception")) == 1
    assert len(told) == len(set(told))
