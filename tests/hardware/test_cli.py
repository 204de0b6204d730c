"""`vmenergy device probe` and `vmenergy device emulate` as an installer runs them, and the
hardware entries in `vmenergy check` of a box config."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

from vmenergy import cli
from vmenergy.devices.adapters.emulator import EmulatedDevice, ModbusEmulator
from vmenergy.devices.adapters.registers import load_map
from vmenergy.runtime.clock import RealClock

BOX = """
[agent]
jid = "house17@localhost"
password_file = "pw"
[prosumer]
aggregator = "agg@localhost"
{hardware}
"""


async def test_probe_prints_every_point_with_its_unit_and_names_what_fails(tmp_path):
    clock = RealClock()
    emu = await ModbusEmulator({1: EmulatedDevice(load_map("sdm630"), clock, base_kw=2.3, settings={"voltage": 230.0}),
                                2: EmulatedDevice(load_map("ev_charger"), clock)}).start()
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware=f"""
[[prosumer.hardware]]
id = "meter"
map = "sdm630"
host = "127.0.0.1"
port = {emu.port}
[[prosumer.hardware]]
id = "wallbox"
map = "ev_charger"
host = "127.0.0.1"
port = {emu.port}
unit = 2
"""))
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vmenergy", "device", "probe", str(config),
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 0, text
        assert f"meter: modbus tcp 127.0.0.1:{emu.port} unit 1, map sdm630" in text
        assert any(line.split()[:3] == ["power_total", "2300", "W"] for line in text.splitlines())
        assert any(line.split()[:4] == ["current_limit", "32", "A", "(rw)"] for line in text.splitlines())
        assert "all points of 2 device(s) read" in text
        # a wrong unit id behind the TCP server: every point fails, said once with what to check
        config.write_text(config.read_text().replace("unit = 2", "unit = 9"))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vmenergy", "device", "probe", str(config),
                                                    "--device", "wallbox", "--timeout", "0.3",
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 1
        assert "wallbox: modbus tcp" in text and "FAULT (exception): " in text and "exception code 11" in text
        assert "hint: check the unit id" in text and "5 point(s) could not be read" in text
        # the device gone: unreachable, with the address
        await emu.stop()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vmenergy", "device", "probe", str(config),
                                                    "--device", "meter", "--timeout", "0.3",
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert proc.returncode == 1
        assert f"FAULT (unreachable): cannot reach modbus tcp 127.0.0.1:{emu.port} unit 1" in out.decode()
    finally:
        await emu.stop()


def test_probe_of_a_config_without_hardware_or_with_a_bad_entry_says_so(tmp_path):
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware=""))
    out = io.StringIO()
    assert cli.main(["device", "probe", str(config)], out) == 1
    assert "no [[prosumer.hardware]]" in out.getvalue()
    config.write_text(BOX.format(hardware='[[prosumer.hardware]]\nid = "w"\nmap = "ev_charger"\nhost = "h"\n'
                                          'unit = 0x1FF\n'))
    out = io.StringIO()
    assert cli.main(["device", "probe", str(config)], out) == 1
    assert "prosumer.hardware[0].unit: must be in [0, 247]" in out.getvalue()


def test_check_of_a_box_config_names_the_line_of_a_bad_hardware_key(tmp_path):
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware='[[prosumer.hardware]]\nid = "w"\nmap = "ev_charger"\nhots = "h"\n'))
    out = io.StringIO()
    assert cli.main(["check", str(config)], out) == 1
    assert "prosumer.hardware[0].hots: unknown field" in out.getvalue()
    config.write_text(BOX.format(hardware='[[prosumer.hardware]]\nid = "w"\nmap = "ev_charger"\nhost = "h"\n'))
    out = io.StringIO()
    assert cli.main(["check", str(config)], out) == 0, out.getvalue()


def test_emulate_refuses_a_device_that_is_not_on_this_machine(tmp_path):
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware='[[prosumer.hardware]]\nid = "w"\nmap = "ev_charger"\n'
                                          'host = "192.168.1.50"\n'))
    out = io.StringIO()
    assert cli.main(["device", "emulate", str(config)], out) == 1
    assert 'w.host: emulated devices listen on this machine' in out.getvalue()


def test_check_refuses_hardware_that_drives_a_device_the_box_does_not_have(tmp_path):
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware='[[prosumer.devices]]\nkind = "ev"\nid = "car"\n'
                                          '[[prosumer.hardware]]\nid = "w"\nmap = "ev_charger"\nhost = "h"\n'
                                          'drives = "cra"\n'))
    out = io.StringIO()
    assert cli.main(["check", str(config)], out) == 1
    assert "prosumer.hardware[0].drives: no device 'cra' in [[prosumer.devices]] (ids: car)" in out.getvalue()


async def test_probe_of_a_sunspec_inverter_says_where_its_models_are(tmp_path):
    from tests.hardware.test_sunspec import device_map

    clock = RealClock()
    inverter = EmulatedDevice(device_map(50000, 103), clock, rated_kw=5.0)
    emu = await ModbusEmulator({1: inverter}).start()
    config = tmp_path / "prosumer.toml"
    config.write_text(BOX.format(hardware=f"""
[[prosumer.hardware]]
id = "battery"
map = "sunspec_storage"
host = "127.0.0.1"
port = {emu.port}
rated_kw = 5.0
"""))
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vmenergy", "device", "probe", str(config),
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 0, text
        assert "SunS at 50000; models 1 at 50002 (66 registers), 103 at 50070 (50 registers), " \
               "120 at 50122 (26 registers), 124 at 50150 (24 registers)" in text
        assert any(line.split()[:2] == ["storage_id", "124"] for line in text.splitlines())
    finally:
        await emu.stop()
