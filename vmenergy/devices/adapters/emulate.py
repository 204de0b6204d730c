"""``vmenergy device emulate CONFIG``: emulated devices for a box's hardware entries, so a box
can be tried (probe, agent, schedules) before anything is wired.

Modbus TCP entries must point at this machine (``host = "127.0.0.1"``): one server per port,
the entries' unit ids on it. Modbus RTU and serial entries get a pseudo-terminal whose device
path is linked at the entry's ``serial_port`` (use a path you own, e.g. ``/tmp/vme-rtu0``;
an existing real port is never replaced). Each device draws what its registers say (a current
limit, relays) up to its ``rated_kw``; a meter that another entry names in ``meter`` measures
that entry's device. Runs until interrupted.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any, TextIO

from .config import HardwareConfig, read_hardware, resolve_map
from .emulator import EmulatedDevice, LineEmulator, ModbusEmulator
from .probe import hardware_entries
from .registers import MapError

__all__ = ["build_emulators", "emulate_file"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_emulators(configs: list[HardwareConfig], clock: Any, base: Path) -> tuple[list, dict[str, EmulatedDevice]]:
    """The emulators (not started) and the emulated devices by entry id."""
    devices: dict[str, EmulatedDevice] = {}
    for c in configs:
        if c.transport == "tcp" and c.host not in LOOPBACK:
            raise MapError(f"{c.id}.host", f"emulated devices listen on this machine: set host = \"127.0.0.1\" "
                                           f"(got {c.host!r})")
        settings = {k: getattr(c, k) for k in ("control", "setpoint", "enable", "relays", "meter", "export",
                                               "power", "voltage", "phases") if getattr(c, k) not in (None, ())}
        settings["normal"] = dict(c.normal)
        devices[c.id] = EmulatedDevice(resolve_map(c, base), clock, settings=settings,
                                       rated_kw=c.rated_kw if c.rated_kw is not None else 3.0)
    for c in configs:  # a meter named by another entry measures that entry's device
        owner = (c.meter or "").rpartition(".")[0]
        if owner:
            devices[owner].watches.append(devices[c.id])
    emulators: list = []
    tcp: dict[int, ModbusEmulator] = {}
    for c in configs:
        dev = devices[c.id]
        if c.transport == "tcp":
            emu = tcp.setdefault(c.port, ModbusEmulator({}, port=c.port))
            emu.devices[c.unit] = dev
        elif c.transport == "rtu":
            same = [e for e in emulators if isinstance(e, ModbusEmulator) and e.link == c.serial_port]
            if same:
                same[0].devices[c.unit] = dev
            else:
                emulators.append(ModbusEmulator({c.unit: dev}, transport="rtu", baudrate=c.baudrate,
                                                link=c.serial_port))
        else:
            from .serial_line import load_protocol

            emulators.append(LineEmulator(dev, load_protocol(c.protocol or "", base), link=c.serial_port))
    return list(tcp.values()) + emulators, devices


async def _serve(configs: list[HardwareConfig], base: Path, out: TextIO) -> None:
    from vmenergy.runtime.clock import RealClock

    emulators, _ = build_emulators(configs, RealClock(), base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = []
    try:
        for emu in emulators:
            await emu.start()
            started.append(emu)
        for c in configs:
            where = f"127.0.0.1:{c.port} unit {c.unit}" if c.transport == "tcp" else f"{c.serial_port}"
            print(f"emulating {c.id} ({c.map or c.protocol}) on {c.transport} {where}", file=out, flush=True)
        print("ready (Ctrl-C stops)", file=out, flush=True)
        await stop.wait()
    finally:
        for emu in started:
            await emu.stop()


def emulate_file(path: Path, out: TextIO) -> int:
    try:
        entries, at = hardware_entries(path)
        configs = read_hardware(entries, path.parent, at=at)
        build_emulators(configs, _Still(), path.parent)  # refuse what cannot be emulated before serving
    except MapError as exc:
        print(f"INVALID {path}: {exc}", file=out)
        return 1
    try:
        asyncio.run(_serve(configs, path.parent, out))
    except OSError as exc:
        print(f"cannot emulate: {exc}", file=out)
        return 1
    return 0


class _Still:
    """A clock that stands still (for checking a config without serving it)."""

    def now(self) -> float:
        return 0.0
