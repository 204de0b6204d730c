"""The adapters against emulated devices: Modbus TCP on loopback, Modbus RTU and a serial line
board on pseudo-terminal pairs. Values read and written in their units; every failure a
DeviceFault whose kind and words say what to check."""

from __future__ import annotations

import pytest

from vmenergy.devices.adapters.emulator import EmulatedDevice, LineEmulator, ModbusEmulator
from vmenergy.devices.adapters.faults import DeviceFault
from vmenergy.devices.adapters.modbus import ModbusAdapter
from vmenergy.devices.adapters.registers import MapError, load_map
from vmenergy.devices.adapters.serial_line import SerialLineAdapter, load_protocol
from vmenergy.runtime.clock import VirtualClock

from .helpers import T0


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_modbus_reads_a_meter_and_writes_a_current_limit_the_device_then_draws(clock, transport):
    charger = EmulatedDevice(load_map("ev_charger"), clock)
    emu = await ModbusEmulator({4: charger}, transport=transport).start()
    link = (dict(host="127.0.0.1", port=emu.port) if transport == "tcp"
            else dict(serial_port=emu.serial_port, baudrate=19200))
    a = ModbusAdapter("wallbox", load_map("ev_charger"), transport=transport, unit=4, timeout=0.5, **link)
    try:
        assert await a.read("current_limit") == 32  # its normal state: full current
        await a.write("current_limit", 10)
        assert charger.values["current_limit"] == 10 and charger.writes[-1] == (T0, "current_limit", 10)
        clock.advance(T0 + 900)
        assert await a.read("power") == pytest.approx(10 * 230 * 3)
        assert await a.read("energy") == pytest.approx(10 * 230 * 3 / 1000 / 4, rel=1e-6)  # kWh in 15 min
        await a.write("charging_enabled", False)
        clock.advance(T0 + 1800)
        assert await a.read("power") == 0.0
        with pytest.raises(MapError, match="current_limit: must be <= 32 A"):
            await a.write("current_limit", 40)
        with pytest.raises(MapError, match="read-only"):
            await a.write("energy", 1.0)
    finally:
        await a.close()
        await emu.stop()


async def test_an_sdm630_meter_sums_the_loads_it_watches(clock):
    relay = EmulatedDevice(load_map("relay_board"), clock, rated_kw=2.0)
    meter = EmulatedDevice(load_map("sdm630"), clock, watches=[relay], base_kw=0.5, settings={"voltage": 230.0})
    emu = await ModbusEmulator({1: meter, 2: relay}).start()
    m = ModbusAdapter("meter", load_map("sdm630"), host="127.0.0.1", port=emu.port, unit=1, timeout=0.5)
    try:
        clock.advance(T0 + 3600)
        assert await m.read("import_kwh") == pytest.approx(2.5, rel=1e-6)
        assert await m.read("power_total") == pytest.approx(2500)
        assert await m.read("voltage_l2") == 230
    finally:
        await m.close()
        await emu.stop()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_exception_codes_timeouts_and_unplugging_become_device_faults(clock, transport):
    dev = EmulatedDevice(load_map("sdm630"), clock)
    emu = await ModbusEmulator({1: dev}, transport=transport).start()
    link = (dict(host="127.0.0.1", port=emu.port) if transport == "tcp"
            else dict(serial_port=emu.serial_port, baudrate=19200))
    a = ModbusAdapter("meter", load_map("sdm630"), transport=transport, unit=1, timeout=0.3, **link)
    try:
        dev.inject("exception", 2)
        with pytest.raises(DeviceFault) as err:
            await a.read("import_kwh")
        assert err.value.kind == "exception" and "exception code 2: illegal data address" in err.value.reason
        assert err.value.path == "meter.import_kwh"
        dev.inject("timeout")
        with pytest.raises(DeviceFault) as err:
            await a.read("import_kwh")
        assert err.value.kind == "timeout" and "within 0.3 s" in err.value.reason
        dev.inject(None)
        assert await a.read("import_kwh") == 0.0  # healthy again: the adapter reconnects
        wrong = ModbusAdapter("meter", load_map("sdm630"), transport=transport, unit=9, timeout=0.3, **link)
        with pytest.raises(DeviceFault) as err:
            await wrong.read("import_kwh")
        await wrong.close()
        # a TCP gateway answers for a unit id it does not have; on a serial bus nobody answers
        assert err.value.kind == ("exception" if transport == "tcp" else "timeout")
        await emu.unplug()
        # the request on the link that was up goes unanswered (as when a cable is pulled); the
        # next one finds no device: TCP is refused, a serial bus stays silent
        with pytest.raises(DeviceFault) as err:
            await a.read("import_kwh")
        assert err.value.kind in ("timeout", "gone", "unreachable")
        with pytest.raises(DeviceFault) as err:
            await a.read("import_kwh")
        assert err.value.kind == ("unreachable" if transport == "tcp" else "timeout")
    finally:
        await a.close()
        await emu.stop()


async def test_an_unreachable_tcp_device_names_host_port_and_unit():
    a = ModbusAdapter("meter", load_map("sdm630"), host="127.0.0.1", port=1, unit=3, timeout=0.3)
    with pytest.raises(DeviceFault) as err:
        await a.read("import_kwh")
    assert err.value.kind == "unreachable"
    assert "cannot reach modbus tcp 127.0.0.1:1 unit 3" in str(err.value)


async def test_a_serial_line_board_is_read_and_switched_and_its_faults_are_named(clock):
    proto = load_protocol("ascii_relay")
    board = EmulatedDevice(proto.as_map(), clock, rated_kw=1.5)
    emu = await LineEmulator(board, proto).start()
    a = SerialLineAdapter("board", proto, serial_port=emu.serial_port or "", timeout=0.3)
    try:
        assert await a.read("relay_1") is True
        clock.advance(T0 + 3600)
        assert await a.read("energy") == pytest.approx(1.5)
        assert await a.read("power") == 1500
        await a.write("relay_1", False)
        assert board.values["relay_1"] is False
        clock.advance(T0 + 7200)
        assert await a.read("energy") == pytest.approx(1.5)
        board.inject("exception")
        with pytest.raises(DeviceFault) as err:
            await a.read("energy")
        assert err.value.kind == "exception" and "refused 'E?': device failure" in err.value.reason
        board.inject("timeout")
        with pytest.raises(DeviceFault) as err:
            await a.read("energy")
        assert err.value.kind == "timeout"
        board.inject(None)
        assert await a.read("relay_1") is False
    finally:
        await a.close()
        await emu.stop()


async def test_a_reply_that_does_not_match_is_a_bad_reply(clock):
    proto = load_protocol("ascii_relay")
    board = EmulatedDevice(proto.as_map(), clock)
    emu = await LineEmulator(board, proto).start()
    emu.answer = lambda line: "E=lots"  # a board that speaks another dialect
    a = SerialLineAdapter("board", proto, serial_port=emu.serial_port or "", timeout=0.3)
    try:
        with pytest.raises(DeviceFault) as err:
            await a.read("energy")
        assert err.value.kind == "bad-reply" and "does not match" in err.value.reason
    finally:
        await a.close()
        await emu.stop()


async def test_a_missing_serial_port_is_unreachable_and_named():
    a = SerialLineAdapter("board", load_protocol("ascii_relay"), serial_port="/dev/ttyVME-none", timeout=0.3)
    with pytest.raises(DeviceFault) as err:
        await a.read("energy")
    assert err.value.kind == "unreachable" and "/dev/ttyVME-none" in err.value.reason


async def test_a_sunspec_storage_inverter_is_read_and_driven_through_its_scale_factors(clock):
    regmap = load_map("sunspec_storage")
    battery = EmulatedDevice(regmap, clock, rated_kw=5.0)
    battery.values["WChaMax"] = 5000
    emu = await ModbusEmulator({1: battery}).start()
    a = ModbusAdapter("battery", regmap, host="127.0.0.1", port=emu.port, unit=1, timeout=0.5)
    try:
        assert await a.read("sunspec_id") == 0x53756E53  # "SunS"
        assert [await a.read(n) for n in ("common_id", "inverter_id", "storage_id", "end_id")] == [1, 103, 124, 0xFFFF]
        assert await a.read("WChaMax") == 5000
        await a.write("InWRte", 37.5)  # InOutWRte_SF = -1: 375 on the bus
        assert battery.values["InWRte"] == pytest.approx(37.5)
        raw = battery.get("holding", regmap["InWRte"].address, 1)
        assert raw == [375]
        await a.write("StorCtl_Mod", 1)  # limit charging to InWRte
        clock.advance(T0 + 3600)
        assert battery.power_kw() == pytest.approx(5.0 * 0.375)
        with pytest.raises(MapError, match="InWRte: must be <= 100 %"):
            await a.write("InWRte", 120)
    finally:
        await a.close()
        await emu.stop()


def test_a_scale_register_must_be_an_int16_of_the_map():
    from vmenergy.devices.adapters.registers import RegisterMap

    with pytest.raises(MapError, match=r"register\[0\].scale_register: 'W_SF' must be an int16 register"):
        RegisterMap.from_dict({"register": [{"name": "W", "address": 0, "type": "int16", "scale_register": "W_SF"}]})
