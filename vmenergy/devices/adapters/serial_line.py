"""A plain serial line-protocol adapter (ASCII command and response) on pyserial, for the simple
relay and metering boards that speak no Modbus.

The protocol is described in TOML, like a register map (shipped ones in ``maps/``)::

    [protocol]
    name = "ascii_relay"
    eol = "\\r\\n"               # line ending, both ways
    ok = "^OK$"                 # a write's answer (a regular expression)
    error = "^ERR (?P<reason>.*)$"

    [[point]]
    name = "relay_1"
    type = "bool"               # bool | number
    access = "rw"
    read = "R1?"                # the command that asks for it
    reply = "^R1=(?P<value>[01])$"
    write = "R1={value}"        # the command that sets it ({value}: 1/0 for bool, the number)

    [[point]]
    name = "energy"
    read = "E?"
    reply = "^E=(?P<value>-?[0-9.]+)$"
    scale = 0.001               # value = number in the reply * scale (Wh -> kWh)
    unit = "kWh"

Blocking pyserial calls run in a worker thread, one command at a time per port.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import serial

from .adapter import Adapter, Point, Value
from .faults import DeviceFault
from .registers import DEFAULT_KEYS, MapError, Register, RegisterMap, check, load_shipped

__all__ = ["LinePoint", "LineProtocol", "SerialLineAdapter", "load_protocol", "PROTOCOLS_DIR", "shipped_protocols"]

PROTOCOLS_DIR = Path(__file__).resolve().parent / "protocols"


@dataclass(frozen=True)
class LinePoint:
    """One value of a line protocol (see the module docstring)."""

    name: str
    read: Optional[str] = None
    reply: Optional[str] = None
    write: Optional[str] = None
    type: str = "number"
    access: str = "r"
    scale: float = 1.0
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        check.identifier(self.name, "name")
        check.choice(self.type, "type", ("number", "bool"))
        check.choice(self.access, "access", ("r", "rw"))
        if check.number(self.scale, "scale") == 0:
            raise MapError("scale", "must not be 0")
        if (self.read is None) != (self.reply is None):
            raise MapError("reply", "read and reply go together")
        if self.reply is not None:
            try:
                pattern = re.compile(self.reply)
            except re.error as exc:
                raise MapError("reply", f"not a regular expression: {exc}") from None
            if "value" not in pattern.groupindex:
                raise MapError("reply", "needs a group named value: (?P<value>...)")
        if self.access == "rw" and not self.write:
            raise MapError("write", "a writable point needs its write command")
        if self.write is not None and "{value}" not in self.write:
            raise MapError("write", "must contain {value}")

    @property
    def writable(self) -> bool:
        return self.access == "rw"


@dataclass(frozen=True)
class LineProtocol:
    """A line protocol's framing, answers and points."""

    name: str
    points: tuple[LinePoint, ...]
    eol: str = "\r\n"
    ok: str = "^OK$"
    error: str = "^ERR ?(?P<reason>.*)$"
    defaults: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check.identifier(self.name, "protocol.name")
        if not self.points:
            raise MapError("point", "a protocol needs at least one [[point]]")
        if len({p.name for p in self.points}) != len(self.points):
            raise MapError("point", "point names must be unique")
        for key in ("ok", "error"):
            try:
                re.compile(getattr(self, key))
            except re.error as exc:
                raise MapError(f"protocol.{key}", f"not a regular expression: {exc}") from None

    def __getitem__(self, name: str) -> LinePoint:
        for p in self.points:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.points)
        raise MapError(name, f"not a point of protocol {self.name!r} (it has: {names})")

    def as_map(self) -> RegisterMap:
        """The same points as a register map (what the emulated devices keep their values in)."""
        regs = tuple(Register(p.name, 2 * i, "coil" if p.type == "bool" else "holding",
                              "bool" if p.type == "bool" else "float32", 1.0, p.unit,
                              "rw" if p.writable else "r") for i, p in enumerate(self.points))
        return RegisterMap(self.name, regs, "", dict(self.defaults))

    @classmethod
    def from_dict(cls, data: Any, default_name: str = "protocol") -> "LineProtocol":
        table = check.table(data, "", ("protocol", "point", "defaults"), noun="a line protocol")
        head = check.table(table.get("protocol", {}), "protocol", ("name", "eol", "ok", "error", "description"))
        known = tuple(f for f in LinePoint.__dataclass_fields__)
        points = []
        for i, entry in enumerate(check.items(table.get("point", []), "point", "tables")):
            entry = check.table(entry, f"point[{i}]", known)
            points.append(check.build(f"point[{i}]", lambda e=entry: LinePoint(**e)))
        kw = {k: head[k] for k in ("eol", "ok", "error") if k in head}
        return check.build("", lambda: cls(head.get("name", default_name), tuple(points),
                                           defaults=check.table(table.get("defaults", {}), "defaults", DEFAULT_KEYS),
                                           **kw))


def load_protocol(name_or_path: str | Path, base: Optional[Path] = None) -> LineProtocol:
    """A shipped line protocol by name (``ascii_relay``) or a protocol file (relative to ``base``)."""
    return load_shipped(name_or_path, base, PROTOCOLS_DIR, "line protocol", LineProtocol.from_dict)


def shipped_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOLS_DIR.glob("*.toml"))


def reply_for(p: LinePoint, value: Value) -> str:
    """The reply line a device sends for ``value`` (the reply pattern with the value in its group:
    enough for the plain patterns line protocols use; the emulated boards answer with it)."""
    text = ("1" if value else "0") if p.type == "bool" else f"{float(value) / p.scale:.6g}"
    line = re.sub(r"\(\?P<value>[^)]*\)", lambda _: text, p.reply or "")
    return re.sub(r"\\(.)", r"\1", line.removeprefix("^").removesuffix("$"))


class SerialLineAdapter(Adapter):
    """A device speaking a :class:`LineProtocol` on ``serial_port`` (a path, or any pyserial URL
    such as ``socket://host:port`` or ``loop://``)."""

    def __init__(self, name: str, protocol: LineProtocol, *, serial_port: str, baudrate: int = 9600,
                 timeout: float = 1.0) -> None:
        self.name = name
        self.protocol = protocol
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.timeout = timeout
        self._port: Optional[serial.SerialBase] = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return f"serial {self.serial_port} {self.baudrate} baud"

    def points(self) -> Sequence[Point]:
        return [Point(p.name, p.unit, p.writable, p.doc) for p in self.protocol.points if p.read is not None]

    async def connect(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = await asyncio.to_thread(serial.serial_for_url, self.serial_port, baudrate=self.baudrate,
                                                 timeout=self.timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceFault(self.name, f"cannot open {self.where}: {exc}", "unreachable") from None

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:
                pass

    async def read(self, point: str) -> Value:
        p = self.protocol[point]
        if p.read is None:
            raise MapError(f"{self.name}.{point}", "has no read command")
        line = await self._ask(p, p.read)
        m = re.search(p.reply or "", line)
        if m is None:
            raise DeviceFault(f"{self.name}.{point}", f"{self.where} answered {line!r} to {p.read!r}, which does "
                                                      f"not match {p.reply!r}", "bad-reply")
        text = m.group("value")
        if p.type == "bool":
            if text.strip().lower() not in ("0", "1", "on", "off", "true", "false"):
                raise DeviceFault(f"{self.name}.{point}", f"{text!r} is not on/off", "bad-reply")
            return text.strip().lower() in ("1", "on", "true")
        try:
            return float(text) * p.scale
        except ValueError:
            raise DeviceFault(f"{self.name}.{point}", f"{text!r} is not a number", "bad-reply") from None

    async def write(self, point: str, value: Value) -> None:
        p = self.protocol[point]
        if not p.writable or p.write is None:
            raise MapError(f"{self.name}.{point}", "is read-only in the protocol")
        if p.type == "bool":
            text = "1" if value else "0"
        else:
            text = f"{check.number(value, point) / p.scale:g}"
        line = await self._ask(p, p.write.replace("{value}", text))
        if not re.search(self.protocol.ok, line):
            raise DeviceFault(f"{self.name}.{point}", f"{self.where} answered {line!r} to a write, not "
                                                      f"{self.protocol.ok!r}", "bad-reply")

    async def _ask(self, p: LinePoint, command: str) -> str:
        await self.connect()
        async with self._lock:
            try:
                line = await asyncio.to_thread(self._exchange, command)
            except (serial.SerialException, OSError) as exc:
                await self.close()
                raise DeviceFault(f"{self.name}.{p.name}", f"link to {self.where} lost: {exc}", "gone") from None
        if line is None:
            await self.close()  # a late answer must not be taken for the next command's
            raise DeviceFault(f"{self.name}.{p.name}", f"no answer from {self.where} within {self.timeout:g} s to "
                                                       f"{command!r}", "timeout")
        err = re.search(self.protocol.error, line)
        if err is not None:
            reason = err.groupdict().get("reason") or line
            raise DeviceFault(f"{self.name}.{p.name}", f"{self.where} refused {command!r}: {reason}", "exception")
        return line

    def _exchange(self, command: str) -> Optional[str]:
        port = self._port
        if port is None:
            raise serial.SerialException("port closed")
        eol = self.protocol.eol.encode()
        port.reset_input_buffer()
        port.write(command.encode("ascii") + eol)
        port.flush()
        raw = port.read_until(eol)
        if not raw.endswith(eol):
            return None
        return raw[:-len(eol)].decode("ascii", "replace")
