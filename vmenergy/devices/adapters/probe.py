"""``vmenergy device probe CONFIG``: read every mapped point of a box's devices once and print
name, value and unit; the first thing an installer runs after wiring a box.

CONFIG is the box's agent config (its ``[[prosumer.hardware]]`` entries) or a file of
``[[hardware]]`` entries. A device that cannot be reached, does not answer (a wrong unit id on a
serial bus) or answers with exception codes is named with its link and what to check; the exit
code is 1 when any point could not be read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional, TextIO

from .adapter import Reading
from .config import read_hardware
from .executor import HardwareDevice
from .registers import MapError, read_toml

__all__ = ["probe_file", "format_readings", "hardware_entries"]

#: What to check, by fault kind.
HINTS = {
    "unreachable": "check the address, port or serial device, and that the device is powered",
    "timeout": "check the unit id, the baud rate and parity, and the wiring (A/B swapped?)",
    "exception": "check the unit id, and the map against the device's manual (addresses, register table)",
    "bad-reply": "check the protocol or map (word order, framing)",
    "gone": "the link dropped: check the cable and the device's power",
}


def hardware_entries(path: Path) -> tuple[list, str]:
    data = read_toml(path, "config")
    prosumer = data.get("prosumer")
    if isinstance(prosumer, dict) and "hardware" in prosumer:
        return prosumer["hardware"], "prosumer.hardware"
    if "hardware" in data:
        return data["hardware"], "hardware"
    raise MapError(str(path), "no [[prosumer.hardware]] (or [[hardware]]) entries to probe")


def format_readings(dev: HardwareDevice, readings: list[Reading], out: TextIO) -> int:
    """Print one device's readings; the number of points that failed."""
    where = getattr(dev.adapter, "where", dev.cfg.transport)
    print(f"{dev.cfg.id}: {where}, map {dev.regmap.name}", file=out)
    layout = getattr(dev.adapter, "layout", None)
    if layout is not None:  # where the map's registers were found (a SunSpec model list)
        print(f"  {layout.describe()}", file=out)
    faults = [r for r in readings if r.fault is not None]
    if readings and len(faults) == len(readings) and len({r.fault.kind for r in faults if r.fault}) == 1:
        fault = faults[0].fault
        assert fault is not None
        print(f"  FAULT ({fault.kind}): {fault.reason}", file=out)
        print(f"  hint: {HINTS.get(fault.kind, '')}", file=out)
        return len(faults)
    width = max([len(r.point.name) for r in readings] + [4])
    print(f"  {'name':<{width}}  {'value':>14}  unit", file=out)
    for r in readings:
        if r.fault is not None:
            print(f"  {r.point.name:<{width}}  {'FAULT':>14}  {r.fault.kind}: {r.fault.reason}", file=out)
            continue
        value = r.value
        text = ("on" if value else "off") if isinstance(value, bool) else f"{value:.6g}"
        print(f"  {r.point.name:<{width}}  {text:>14}  {r.point.unit}{'  (rw)' if r.point.writable else ''}",
              file=out)
    return len(faults)


async def _probe(devices: list[HardwareDevice], out: TextIO) -> int:
    failed = 0
    for dev in devices:
        try:
            failed += format_readings(dev, await dev.adapter.read_all(), out)
        finally:
            await dev.adapter.close()
    return failed


def probe_file(path: Path, out: TextIO, device: Optional[str] = None, timeout: Optional[float] = None) -> int:
    """Probe the devices of a config file; the exit code (0 all read, 1 otherwise)."""
    try:
        entries, at = hardware_entries(path)
        if timeout is not None:
            entries = [{**e, "timeout": timeout} if isinstance(e, dict) else e for e in entries]
        configs = read_hardware(entries, path.parent, at=at)
    except MapError as exc:
        print(f"INVALID {path}: {exc}", file=out)
        return 1
    if device is not None:
        configs = [c for c in configs if c.id == device]
        if not configs:
            print(f"no device {device!r} in {path}", file=out)
            return 1
    devices = [HardwareDevice.build(c, path.parent) for c in configs]
    failed = asyncio.run(_probe(devices, out))
    print(f"{failed} point(s) could not be read" if failed else f"all points of {len(devices)} device(s) read",
          file=out)
    return 1 if failed else 0
