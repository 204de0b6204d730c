"""Register maps: every type and word order survives the trip to words and back, values out of
range and malformed maps are refused naming the register or key, and the shipped maps load."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmenergy.devices.adapters.config import HardwareConfig, read_hardware
from vmenergy.devices.adapters.registers import MapError, Register, RegisterMap, load_map, shipped_maps
from vmenergy.devices.adapters.serial_line import LineProtocol, load_protocol, reply_for

INT_RANGES = {"uint16": (0, 2 ** 16 - 1), "int16": (-(2 ** 15), 2 ** 15 - 1), "uint32": (0, 2 ** 32 - 1),
              "int32": (-(2 ** 31), 2 ** 31 - 1)}


@given(st.sampled_from(sorted(INT_RANGES)), st.sampled_from(["big", "little"]), st.data())
def test_integers_round_trip_through_words_in_either_word_order(kind, order, data):
    lo, hi = INT_RANGES[kind]
    value = data.draw(st.integers(lo, hi))
    reg = Register("x", 10, "holding", kind, word_order=order)
    words = reg.encode(value)
    assert len(words) == reg.words and all(0 <= w <= 0xFFFF for w in words)
    assert reg.decode(words) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(["big", "little"]))
def test_float32_round_trips_exactly(value, order):
    reg = Register("x", 0, "input", "float32", word_order=order)
    assert reg.decode(reg.encode(value)) == value


def test_word_order_little_puts_the_low_word_first():
    big = Register("x", 0, "input", "float32").encode(1.0)
    little = Register("x", 0, "input", "float32", word_order="little").encode(1.0)
    assert big == [0x3F80, 0x0000] and little == [0x0000, 0x3F80]
    assert struct.unpack(">f", b"".join(w.to_bytes(2, "big") for w in big))[0] == 1.0


def test_scale_turns_raw_counts_into_units_and_back():
    reg = Register("temp", 0, "input", "int16", scale=0.1, unit="degC")
    assert reg.encode(-12.3) == [(-123) & 0xFFFF]
    assert reg.decode([(-123) & 0xFFFF]) == pytest.approx(-12.3)


def test_values_beyond_the_bounds_or_the_type_are_refused_naming_the_register():
    reg = Register("current_limit", 1000, "holding", "uint16", unit="A", access="rw", min=6, max=32)
    with pytest.raises(MapError, match=r"current_limit: must be <= 32 A \(got 40\)"):
        reg.encode(40)
    with pytest.raises(MapError, match="current_limit: must be >= 6"):
        reg.encode(5)
    with pytest.raises(MapError, match="does not fit a uint16"):
        Register("n", 0, "holding", "uint16").encode(70000)


@pytest.mark.parametrize("kw, path, reason", [
    ({"table": "holding", "type": "bool"}, "type", "a holding holds a number"),
    ({"table": "input", "access": "rw"}, "access", "read-only"),
    ({"type": "float64"}, "type", "must be one of"),
    ({"address": 65535, "type": "float32"}, "address", "runs past"),
    ({"scale": 0}, "scale", "must not be 0"),
    ({"min": 5, "max": 1}, "min", "greater than max"),
])
def test_a_malformed_register_names_its_key(kw, path, reason):
    with pytest.raises(MapError) as err:
        Register("x", kw.pop("address", 0), **kw)
    assert err.value.path == path and reason in err.value.reason


def test_a_map_refuses_overlapping_registers_and_names_both():
    data = {"map": {"name": "m"}, "register": [
        {"name": "a", "address": 0, "table": "input", "type": "float32"},
        {"name": "b", "address": 1, "table": "input", "type": "uint16"}]}
    with pytest.raises(MapError, match=r"register\[1\].address: input register 1 is also part of 'a'"):
        RegisterMap.from_dict(data)


def test_a_misspelt_key_in_a_map_is_refused():
    with pytest.raises(MapError, match=r"register\[0\].adress: unknown field"):
        RegisterMap.from_dict({"register": [{"name": "a", "adress": 0}]})


def test_the_shipped_maps_load_and_the_meter_has_the_sdm630_layout():
    assert {"sdm630", "ev_charger", "sg_ready", "relay_board"} <= set(shipped_maps())
    for name in shipped_maps():
        assert load_map(name).registers
    sdm = load_map("sdm630")
    # input registers 30001.. of the manual, as wire addresses, 32-bit floats high word first
    assert (sdm["voltage_l1"].address, sdm["power_total"].address, sdm["import_kwh"].address,
            sdm["export_kwh"].address) == (0, 52, 72, 74)
    assert all(r.table == "input" and r.type == "float32" and r.word_order == "big" for r in sdm.registers)
    ev = load_map("ev_charger")
    assert (ev["current_limit"].min, ev["current_limit"].max) == (6, 32)


def test_an_unknown_shipped_map_lists_the_shipped_ones(tmp_path):
    shipped = "ev_charger, power_setpoint, relay_board, sdm630"
    with pytest.raises(MapError, match=f"no shipped map 'sdm123' \\(shipped: {shipped}"):
        load_map("sdm123")
    bad = tmp_path / "mine.toml"
    bad.write_text("[[register]]\nname = 'a'\naddress = -1\n")
    with pytest.raises(MapError, match=r"mine.toml: register\[0\].address"):
        load_map(bad)


def test_a_line_protocol_needs_a_value_group_and_answers_with_its_reply_pattern():
    with pytest.raises(MapError, match=r"point\[0\].reply: needs a group named value"):
        LineProtocol.from_dict({"point": [{"name": "e", "read": "E?", "reply": "^E=([0-9]+)$"}]})
    proto = load_protocol("ascii_relay")
    assert reply_for(proto["energy"], 12.5) == "E=12500"
    assert reply_for(proto["relay_1"], True) == "R1=1"


def test_hardware_entries_take_their_maps_defaults_and_errors_name_the_entry_and_key():
    (wallbox,) = read_hardware([{"id": "wallbox", "map": "ev_charger", "host": "10.0.0.5"}])
    assert (wallbox.control, wallbox.setpoint, wallbox.enable, wallbox.meter, wallbox.phases) == (
        "current", "current_limit", "charging_enabled", "energy", 3)
    with pytest.raises(MapError, match=r"hardware\[0\].host: required with transport = \"tcp\""):
        read_hardware([{"id": "wallbox", "map": "ev_charger"}])
    with pytest.raises(MapError, match=r"hardware\[1\].meter: no hardware entry 'metre'"):
        read_hardware([{"id": "m", "map": "sdm630", "host": "h"},
                       {"id": "r", "map": "relay_board", "host": "h", "meter": "metre.import_kwh", "rated_kw": 1}])
    with pytest.raises(MapError, match=r"hardware\[0\].rated_kw: required with control = \"switch\""):
        read_hardware([{"id": "r", "map": "relay_board", "host": "h"}])
    with pytest.raises(MapError, match=r"hardware\[0\].setpoint: 'current' is not a point of ev_charger"):
        read_hardware([{"id": "w", "map": "ev_charger", "host": "h", "setpoint": "current"}])
    with pytest.raises(MapError, match=r"hardware\[0\].serial_port: required"):
        HardwareConfig.from_dict({"id": "b", "transport": "serial", "protocol": "ascii_relay"}, "hardware[0]")
