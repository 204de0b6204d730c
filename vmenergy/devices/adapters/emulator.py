"""Emulated devices: Modbus servers on loopback (TCP, or RTU over a pseudo-terminal pair) that
answer like the devices of the shipped maps, with physics.

An :class:`EmulatedDevice` holds a map's registers and integrates its power over scenario time
(any :class:`~vmenergy.runtime.clock.Clock`): what it draws follows what was written to it
(a current limit, SG-Ready relays, a relay, a power set-point). With a device model
(:mod:`vmenergy.devices.models`) the model's physics decides each interval's energy from that
command (a heat pump's thermostat when its relays are in the normal state, a car that is full);
without one, a device draws its commanded power and a meter (``control = "none"``) sums the
devices it ``watches`` plus a base load. Energy registers are counters in kWh, as on a real meter.

Faults can be injected per device (:meth:`EmulatedDevice.inject`): no answer (``timeout``), a
Modbus exception code (``exception``), and for a whole server :meth:`ModbusEmulator.unplug` (the
link goes away) and :meth:`ModbusEmulator.plug`.

These are test and scenario tools, not production servers: they listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import tty
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .registers import BIT_TABLES, Register, RegisterMap

__all__ = ["EmulatedDevice", "ModbusEmulator", "LineEmulator", "PtyPair"]

#: Modbus function code -> the table it reads or writes.
_TABLE_OF = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
             22: "holding", 23: "holding", 4: "input"}
_WRITES = {5, 6, 15, 16, 22, 23}


@dataclass
class _Interval:
    """The interval being integrated: its number, kWh so far, whether the device ran its own
    (normal) behaviour throughout."""

    k: int
    kwh: float = 0.0
    normal: bool = True


class EmulatedDevice:
    """One emulated device (see the module docstring). ``settings``: the map's ``[defaults]``
    merged with the box's entry (``control``, ``setpoint``, ``enable``, ``relays``, ``normal``,
    ``voltage``, ``phases``); ``rated_kw``: what it draws when on (or forced); ``base_kw``: a
    meter's own load; ``model``: a device model whose physics decides each interval."""

    def __init__(self, regmap: RegisterMap, clock: Any, *, resolution: int = 900, settings: Optional[dict] = None,
                 rated_kw: float = 3.0, base_kw: float = 0.0, model: Any = None,
                 watches: Iterable["EmulatedDevice"] = ()) -> None:
        self.map = regmap
        self.clock = clock
        self.resolution = resolution
        self.settings = {**regmap.defaults, **(settings or {})}
        self.control = self.settings.get("control", "none")
        self.rated_kw = float(self.settings.get("rated_kw", rated_kw))
        self.base_kw = base_kw
        self.model = model
        self.watches = list(watches)
        self.values: dict[str, Any] = {r.name: (False if r.type == "bool" else (r.fixed or 0.0))
                                       for r in regmap.registers}
        self.values.update(self.settings.get("normal", {}))
        if "voltage" in self.settings:
            for name in ("voltage_l1", "voltage_l2", "voltage_l3"):
                self.values[name] = float(self.settings["voltage"])
        self.counter = 0.0  # kWh imported (production counts on the export counter)
        self.exported = 0.0
        now = float(clock.now())
        self._t = now
        self._iv = _Interval(int(now // resolution))
        if model is not None:
            model.t = self._iv.k
        self.fault: Optional[tuple[str, int]] = None
        self.writes: list[tuple[float, str, Any]] = []  # (time, register, value): what the box did

    # -- faults -----------------------------------------------------------------------------
    def inject(self, kind: Optional[str], code: int = 4) -> None:
        """``timeout`` (the device stays silent), ``exception`` (it answers exception ``code``),
        or None (healthy again)."""
        if kind not in (None, "timeout", "exception"):
            raise ValueError(f"fault kind: timeout, exception or None (got {kind!r})")
        self.fault = None if kind is None else (kind, code)

    # -- physics ----------------------------------------------------------------------------
    def is_normal(self) -> bool:
        """Whether its writable registers are in the normal state (the device's own control)."""
        normal = self.settings.get("normal", {})
        return all(self.values.get(k) == v for k, v in normal.items()) if normal else self.control == "none"

    def power_kw(self) -> float:
        """What it draws now under its registers (+ consumption), before the model's say."""
        c, v = self.control, self.values
        if c == "current":
            enable = self.settings.get("enable")
            if enable and not v.get(enable, True):
                return 0.0
            amps = float(v.get(self.settings.get("setpoint", ""), 0.0))
            return amps * float(self.settings.get("voltage", 230.0)) * int(self.settings.get("phases", 1)) / 1000.0
        if c == "power":
            enable = self.settings.get("enable")
            if enable and not v.get(enable, True):
                return 0.0
            return float(v.get(self.settings.get("setpoint", ""), 0.0))
        if c == "switch":
            return self.rated_kw if v.get(self.settings.get("setpoint", "")) else 0.0
        if c == "storage":  # SunSpec storage control: bit 0 limits charging, bit 1 discharging
            mode = int(v.get(self.settings.get("enable", ""), 0))
            if mode & 1:
                return self.rated_kw * float(v.get(self.settings.get("setpoint", ""), 0.0)) / 100.0
            if mode & 2:
                return -self.rated_kw * float(v.get(self.settings.get("discharge", ""), 0.0)) / 100.0
            return 0.0
        if c == "sg_ready":
            r1, r2 = (bool(v.get(r)) for r in self.settings.get("relays", ("relay_1", "relay_2")))
            if r1 and not r2:
                return 0.0  # blocked
            if not r1 and not r2:
                return 0.5 * self.rated_kw  # normal: the thermostat's average (the model knows better)
            return self.rated_kw  # boost or forced
        return self.base_kw + sum(d.power_kw_now() for d in self.watches)

    def power_kw_now(self) -> float:
        self.advance()
        return self._last_kw

    _last_kw = 0.0

    def advance(self) -> None:
        """Integrate up to the clock's now, closing each finished interval through the model."""
        now = float(self.clock.now())
        res = self.resolution
        while self._t < now:
            end = min(now, (self._iv.k + 1) * res)
            normal = self.is_normal()
            kw = self.power_kw()
            self._iv.kwh += kw * (end - self._t) / 3600.0
            self._iv.normal &= normal
            self._last_kw = kw
            self._t = end
            if end >= (self._iv.k + 1) * res:
                self._close_interval()
        self._refresh()

    def _close_interval(self) -> None:
        iv = self._iv
        kwh = iv.kwh
        if self.model is not None:
            # its own behaviour: the model's command for the interval (a normal programme it runs,
            # a thermostat when None); under the box's set-points: the energy they asked for
            own = getattr(self.model, "command", None)
            command = (own(iv.k) if own is not None else None) if iv.normal else iv.kwh
            kwh = float(self.model.step(iv.k, command))
            self.model.t = iv.k + 1
        if kwh >= 0:
            self.counter += kwh
        else:
            self.exported -= kwh
        self._iv = _Interval(iv.k + 1)

    def _refresh(self) -> None:
        """The measured registers from the state (what a meter would show now)."""
        s, v = self.settings, self.values
        partial = self._iv.kwh if self.model is None else 0.0
        counters = (("meter", self.counter + max(partial, 0.0)), ("export", self.exported + max(-partial, 0.0)))
        for key, amount in counters:
            name = s.get(key)
            if isinstance(name, str) and name in v and "." not in name:
                v[name] = amount
        kw = self._last_kw
        name = s.get("power")
        if isinstance(name, str) and name in v:
            v[name] = kw * 1000.0
        volts = float(s.get("voltage", 230.0))
        for i in (1, 2, 3):
            if f"power_l{i}" in v:
                v[f"power_l{i}"] = kw * 1000.0 / 3
            if f"current_l{i}" in v:
                v[f"current_l{i}"] = abs(kw) * 1000.0 / 3 / volts
        if "frequency" in v:
            v["frequency"] = 50.0
        if "state" in v:  # IEC 61851: C charging, B connected
            v["state"] = 3 if kw > 0 else 2

    # -- the register store -----------------------------------------------------------------
    def _cells(self, table: str) -> dict[int, tuple[Register, int]]:
        cells = getattr(self, "_cell_cache", None)
        if cells is None:
            cells = {}
            for r in self.map.registers:
                for i in range(r.words):
                    cells[(r.table, r.address + i)] = (r, i)
            self._cell_cache = cells
        return cells

    def get(self, table: str, address: int, count: int) -> list | ExcCodes:
        self.advance()
        cells = self._cells(table)
        out: list = []
        for a in range(address, address + count):
            found = cells.get((table, a))
            if found is None:
                return ExcCodes.ILLEGAL_ADDRESS
            reg, i = found
            out.append(reg.encode(self.values[reg.name])[i] if reg.type == "bool" else self._words(reg)[i])
        return out

    def _exponent(self, reg: Register) -> int:
        return 0 if reg.scale_register is None else int(self.values[reg.scale_register])

    def _words(self, reg: Register) -> list[int]:
        value = self.values[reg.name]
        exponent = self._exponent(reg)
        try:
            return [int(w) for w in reg.encode(value, exponent)]
        except Exception:  # a measured value beyond the register's bounds reads as its bound
            bound = reg.max if reg.max is not None and value > reg.max else reg.min
            return [int(w) for w in reg.encode(bound if bound is not None else 0, exponent)]

    def set(self, table: str, address: int, values: list) -> Optional[ExcCodes]:
        self.advance()  # what ran until now ran under the old values
        cells = self._cells(table)
        pending: dict[str, list] = {}
        for offset, raw in enumerate(values):
            found = cells.get((table, address + offset))
            if found is None or not found[0].writable:
                return ExcCodes.ILLEGAL_ADDRESS
            reg, i = found
            pending.setdefault(reg.name, [None] * reg.words)[i] = raw
        for name, words in pending.items():
            reg = self.map[name]
            if any(w is None for w in words):  # half of a 32-bit value: refused, as devices do
                return ExcCodes.ILLEGAL_ADDRESS
            value = bool(words[0]) if reg.type == "bool" else reg.decode(words, self._exponent(reg))
            if reg.type != "bool" and ((reg.min is not None and value < reg.min - 1e-9)
                                       or (reg.max is not None and value > reg.max + 1e-9)):
                return ExcCodes.ILLEGAL_VALUE
            self.write_value(name, value)
        return None

    def read_value(self, name: str) -> Any:
        """A point's value now (the serial boards' answers)."""
        self.advance()
        return self.values[name]

    def write_value(self, name: str, value: Any) -> None:
        """Set a writable point (checked by the caller) from now on."""
        self.advance()
        self.values[name] = value
        self.writes.append((float(self.clock.now()), name, value))
        self._refresh()


class _Context:
    """What pymodbus's request handler asks for values: the emulated devices by unit id."""

    def __init__(self, devices: dict[int, EmulatedDevice], silent_unknown: bool) -> None:
        self.devices = devices
        self.silent_unknown = silent_unknown

    def _device(self, unit: int) -> Optional[EmulatedDevice]:
        dev = self.devices.get(unit)
        if dev is None:
            if self.silent_unknown:  # a serial bus: nobody answers a unit id that is not there
                raise NoSuchIdException(f"no device {unit}")
            return None
        if dev.fault is not None and dev.fault[0] == "timeout":
            raise NoSuchIdException(f"device {unit} silent")  # the server ignores it: no answer
        return dev

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        dev = self._device(device_id)
        if dev is None:
            return ExcCodes.GATEWAY_NO_RESPONSE  # a TCP gateway with nothing behind that unit id
        if dev.fault is not None:
            return ExcCodes(dev.fault[1])
        return dev.get(_TABLE_OF.get(func_code, "holding"), address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):
        dev = self._device(device_id)
        if dev is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        if dev.fault is not None:
            return ExcCodes(dev.fault[1])
        if func_code not in _WRITES:
            return ExcCodes.ILLEGAL_FUNCTION
        return dev.set(_TABLE_OF[func_code], address, list(values))

    def device_ids(self) -> list[int]:
        return list(self.devices)


class PtyPair:
    """Two pseudo-terminals joined like a null-modem cable: what is written to one's port comes
    out of the other's. ``a`` and ``b`` are device paths (``/dev/pts/N``) any serial program
    opens, pyserial and pymodbus included."""

    def __init__(self, link: Optional[str] = None) -> None:
        self._fds: list[int] = []
        self.link = link
        ends = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: bytes pass as they are
            self._fds += [master, slave]
            ends.append((master, os.ttyname(slave)))
        (self._ma, self.a), (self._mb, self.b) = ends
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        if link is not None:  # the box's config names a fixed path: point it at our end
            if os.path.lexists(link) and not os.path.islink(link):
                self.close()
                raise FileExistsError(f"{link} exists and is not a link: not replacing a real port")
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(self.b, link)

    def start(self) -> None:
        """Copy bytes both ways from the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._ma, self._pump, self._ma, self._mb)
        self._loop.add_reader(self._mb, self._pump, self._mb, self._ma)

    @staticmethod
    def _pump(src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:  # the other end closed its port: nothing to copy
            return
        if data:
            os.write(dst, data)

    def close(self) -> None:
        if self._loop is not None:
            for fd in (self._ma, self._mb):
                self._loop.remove_reader(fd)
            self._loop = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self.link is not None and os.path.islink(self.link) and os.readlink(self.link) == self.b:
            os.unlink(self.link)


@dataclass
class ModbusEmulator:
    """A Modbus server with emulated devices by unit id: ``tcp`` on 127.0.0.1 (``port`` 0: any
    free port, see :attr:`port` once started) or ``rtu`` behind a :class:`PtyPair` (the box opens
    :attr:`serial_port`)."""

    devices: dict[int, EmulatedDevice]
    transport: str = "tcp"
    port: int = 0
    baudrate: int = 19200
    serial_port: Optional[str] = None
    #: RTU: a fixed path (a symlink to the pty) for configs that name their port
    link: Optional[str] = None
    _server: Any = field(default=None, repr=False)
    _task: Optional[asyncio.Task] = field(default=None, repr=False)
    _pty: Optional[PtyPair] = field(default=None, repr=False)

    async def start(self) -> "ModbusEmulator":
        placeholder = SimDevice(1, simdata=[SimData(0, count=1, values=0, datatype=DataType.REGISTERS)])
        if self.transport == "tcp":
            if not self.port:
                self.port = _free_port()
            server = ModbusTcpServer(placeholder, address=("127.0.0.1", self.port), ignore_missing_devices=True)
        elif self.transport == "rtu":
            if self._pty is None:
                self._pty = PtyPair(self.link)
                self._pty.start()
                self.serial_port = self.link or self._pty.b
            server = ModbusSerialServer(placeholder, port=self._pty.a, baudrate=self.baudrate,
                                        ignore_missing_devices=True)
        else:
            raise ValueError(f"transport: tcp or rtu (got {self.transport!r})")
        # pymodbus asks its context for values: ours answers from the emulated devices
        server.context = _Context(self.devices, silent_unknown=self.transport == "rtu")
        await server.serve_forever(background=True)
        self._server = server
        return self

    async def unplug(self) -> None:
        """The device goes away: its server stops (TCP: connections refused; RTU: silence)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def plug(self) -> None:
        """Back again, on the same port."""
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        await self.unplug()
        if self._pty is not None:
            self._pty.close()
            self._pty = None


class LineEmulator:
    """A serial board speaking a line protocol (:mod:`.serial_line`) on one end of a
    :class:`PtyPair`; the box opens :attr:`serial_port`. Unknown commands get the protocol's
    error line; an injected ``timeout`` makes it silent, ``exception`` answers an error line."""

    def __init__(self, device: EmulatedDevice, protocol: Any, link: Optional[str] = None) -> None:
        self.device = device
        self.protocol = protocol
        self.link = link
        self.serial_port: Optional[str] = None
        self._pty: Optional[PtyPair] = None
        self._fd: Optional[int] = None
        self._buf = b""

    async def start(self) -> "LineEmulator":
        self._pty = PtyPair(self.link)
        self._pty.start()
        self.serial_port = self.link or self._pty.b
        self._fd = os.open(self._pty.a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return self

    def _readable(self) -> None:
        try:
            self._buf += os.read(self._fd, 4096)  # type: ignore[arg-type]
        except OSError:
            return
        eol = self.protocol.eol.encode()
        while eol in self._buf:
            line, self._buf = self._buf.split(eol, 1)
            answer = self.answer(line.decode("ascii", "replace"))
            if answer is not None:
                os.write(self._fd, answer.encode("ascii") + eol)  # type: ignore[arg-type]

    def answer(self, line: str) -> Optional[str]:
        """The board's answer to one command line (None: it stays silent)."""
        import re

        from .serial_line import reply_for

        fault = self.device.fault
        if fault is not None:
            return None if fault[0] == "timeout" else f"ERR device failure {fault[1]}"
        for p in self.protocol.points:
            if p.read is not None and line == p.read:
                return reply_for(p, self.device.read_value(p.name))
            if p.write is not None:
                pattern = "^" + re.escape(p.write).replace(re.escape("{value}"), "(.+)") + "$"
                m = re.match(pattern, line)
                if m is not None:
                    text = m.group(1)
                    try:
                        value: Any = text in ("1", "on", "true") if p.type == "bool" else float(text) * p.scale
                    except ValueError:
                        return f"ERR bad value {text}"
                    self.device.write_value(p.name, value)
                    return "OK"
        return f"ERR unknown command {line}"

    async def stop(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._pty is not None:
            self._pty.close()
            self._pty = None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
