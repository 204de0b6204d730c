"""SunSpec discovery: a device's model list walked over Modbus, and the shipped SunSpec map moved
to it (another base, other models in between, a model missing or too short)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.hardware.helpers import T0
from vmenergy.devices.adapters.emulator import EmulatedDevice, ModbusEmulator
from vmenergy.devices.adapters.faults import DeviceFault
from vmenergy.devices.adapters.modbus import ModbusAdapter
from vmenergy.devices.adapters.registers import MAPS_DIR, MapError, Register, RegisterMap, load_map
from vmenergy.devices.adapters.sunspec import Layout, Model, discover, map_layout, relocate
from vmenergy.runtime.clock import VirtualClock

SHIPPED = load_map("sunspec_storage")
SHIPPED_FILE = MAPS_DIR / "sunspec_storage.toml"


def device_map(base: int = 40000, insert_after: int | None = 103, insert: tuple[int, int] = (120, 26),
               storage_length: int = 24) -> RegisterMap:
    """The layout a real device might have: the shipped map's registers with the marker at
    ``base`` and a model ``insert`` = (id, length) after model ``insert_after`` (as a device with
    a nameplate model between inverter and storage), built independently of :func:`relocate`
    (plain address arithmetic over the shipped addresses)."""
    shift_all = base - 40000
    extra = insert[1] + 2 if insert_after is not None else 0
    after = {1: 40070, 103: 40122, 124: 40148}.get(insert_after or 0, 1 << 20)
    regs = []
    for r in SHIPPED.registers:
        address = r.address + shift_all + (extra if r.address >= after else 0)
        new = replace(r, address=address)
        if r.name == "storage_length":
            new = replace(new, fixed=storage_length)
        regs.append(new)
    if insert_after is not None:
        at = after + shift_all
        regs += [Register("extra_id", at, "holding", "uint16", fixed=insert[0]),
                 Register("extra_length", at + 1, "holding", "uint16", fixed=insert[1])]
    return RegisterMap("device", tuple(regs))


def test_the_shipped_map_spells_out_its_model_list():
    layout = map_layout(SHIPPED)
    assert layout.base == 40000 and layout.end == 40148
    assert [(m.id, m.address, m.length) for m in layout.models] == [(1, 40002, 66), (103, 40070, 50), (124, 40122, 24)]


def test_relocate_moves_every_register_by_its_models_offset():
    device = Layout(50000, (Model(1, 50002, 66), Model(103, 50070, 50), Model(120, 50122, 26), Model(124, 50150, 24)))
    moved = relocate(SHIPPED, device)
    assert moved["sunspec_id"].address == 50000
    assert moved["common_id"].address == 50002 and moved["W"].address == 40084 + 10000
    assert moved["storage_id"].address == 50150 and moved["InWRte"].address == 40135 - 40122 + 50150
    assert moved["end_id"].address == 50176
    assert not moved.sunspec and [r.name for r in moved.registers] == [r.name for r in SHIPPED.registers]


def test_a_model_the_device_lacks_or_has_too_short_is_named():
    no_storage = Layout(40000, (Model(1, 40002, 66), Model(103, 40070, 50)))
    with pytest.raises(MapError, match=r"no SunSpec model 124 \(it has: 1, 103\)"):
        relocate(SHIPPED, no_storage)
    short = Layout(40000, (Model(1, 40002, 66), Model(103, 40070, 50), Model(124, 40122, 10)))
    with pytest.raises(MapError, match="model 124 on the device is 10 registers long; the map reads 24"):
        relocate(SHIPPED, short)


def test_a_sunspec_map_without_its_model_list_is_refused_when_a_box_takes_it(tmp_path):
    import tomllib

    from vmenergy.devices.adapters.config import read_hardware

    text = (SHIPPED_FILE.read_text().replace("name = \"inverter_length\"\naddress = 40071\ntable = \"holding\"\n"
                                             "type = \"uint16\"\nfixed = 50", "name = \"inverter_length\"\n"
                                             "address = 40071\ntable = \"holding\"\ntype = \"uint16\""))
    assert "fixed = 50" not in text
    (tmp_path / "broken.toml").write_text(text)
    entry = {"id": "battery", "map": "broken.toml", "host": "127.0.0.1", "rated_kw": 5.0}
    with pytest.raises(MapError, match=r"hardware\[0\].*no fixed length register at 40071 for model 103"):
        read_hardware([entry], tmp_path)
    assert tomllib.loads(text)  # the file itself is good TOML: only the model list is missing
    with pytest.raises(MapError, match="map.sunspec: must be true or false"):
        RegisterMap.from_dict({"map": {"sunspec": "yes"}, "register": [{"name": "a", "address": 0}]})


async def test_discover_walks_a_list_and_refuses_a_broken_one():
    cells = {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 2, 40006: 124, 40007: 2, 40010: 0xFFFF}

    async def read(address, count):
        if any(address + i not in cells for i in range(count)):
            raise DeviceFault("x", "illegal data address", "exception")
        return [cells[address + i] for i in range(count)]

    layout = await discover(read, "dev")
    assert layout == Layout(40000, (Model(1, 40002, 2), Model(124, 40006, 2)))  # the end without L = 0
    cells[40007] = 0xFFF0  # a length that runs past the register space
    with pytest.raises(DeviceFault, match="past register 65535") as err:
        await discover(read, "dev")
    assert err.value.kind == "bad-reply"
    cells.clear()
    with pytest.raises(DeviceFault, match="not a SunSpec device"):
        await discover(read, "dev")


@pytest.mark.parametrize("base, insert_after", [(40000, 103), (50000, 1), (0, None)])
async def test_the_shipped_map_drives_a_device_with_another_layout(base, insert_after):
    """An emulated inverter whose models are not where the shipped map says (another base, a
    model in between) is read and driven through the shipped map: the adapter walks the list."""
    clock = VirtualClock(T0)
    battery = EmulatedDevice(device_map(base, insert_after), clock, rated_kw=5.0,
                             settings={"control": "storage", "setpoint": "InWRte", "enable": "StorCtl_Mod",
                                       "discharge": "OutWRte"})
    battery.values["WChaMax"] = 5000
    emu = await ModbusEmulator({1: battery}).start()
    a = ModbusAdapter("battery", SHIPPED, host="127.0.0.1", port=emu.port, unit=1, timeout=0.5)
    try:
        assert await a.read("storage_id") == 124 and await a.read("end_id") == 0xFFFF
        assert await a.read("WChaMax") == 5000
        await a.write("InWRte", 37.5)
        await a.write("StorCtl_Mod", 1)
        assert battery.values["InWRte"] == pytest.approx(37.5) and battery.values["StorCtl_Mod"] == 1
        clock.advance(T0 + 3600)
        assert battery.power_kw() == pytest.approx(5.0 * 0.375)
        assert a.layout is not None and a.layout.base == base
        assert [m.id for m in a.layout.models] == ([1, 103, 120, 124] if insert_after == 103 else
                                                   [1, 120, 103, 124] if insert_after == 1 else [1, 103, 124])
    finally:
        await a.close()
        await emu.stop()


async def test_a_device_without_the_storage_model_is_a_fault_naming_it():
    clock = VirtualClock(T0)
    regs = tuple(r for r in SHIPPED.registers if not 40122 <= r.address < 40148)
    regs = tuple(replace(r, address=40122) if r.name == "end_id" else r for r in regs)
    inverter = EmulatedDevice(RegisterMap("inverter-only", regs), clock)
    emu = await ModbusEmulator({1: inverter}).start()
    a = ModbusAdapter("battery", SHIPPED, host="127.0.0.1", port=emu.port, unit=1, timeout=0.5)
    try:
        with pytest.raises(DeviceFault, match=r"no SunSpec model 124 \(it has: 1, 103\)") as err:
            await a.read("InWRte")
        assert err.value.kind == "bad-reply" and "models 1 at 40002" in err.value.reason
    finally:
        await a.close()
        await emu.stop()
