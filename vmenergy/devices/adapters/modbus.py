"""Modbus TCP and Modbus RTU (over a serial line, through pyserial) on pymodbus 3.16.

One :class:`ModbusAdapter` per device: a register map, a link (``tcp`` host/port, or ``rtu``
serial port and line settings) and a unit id. pymodbus's own reconnect loop is off: the adapter
opens the link when asked and again after a failure, so the executor's backoff (not a library
timer) decides when a dead device is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional, Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from .adapter import Adapter, Point, Value
from .faults import EXCEPTION_CODES, DeviceFault
from .registers import BIT_TABLES, MapError, Register, RegisterMap
from .sunspec import Layout, discover, relocate

__all__ = ["ModbusAdapter", "TRANSPORTS"]

log = logging.getLogger("vmenergy.devices.modbus")
# every failure comes back as a DeviceFault that the executor logs once, in its words; pymodbus
# would log it again with a dump of the last frames (still there at DEBUG for whoever asks)
if logging.getLogger("pymodbus.logging").level == logging.NOTSET:
    logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
TRANSPORTS = ("tcp", "rtu")


class ModbusAdapter(Adapter):
    """A device on Modbus TCP (``host``, ``port``) or RTU (``serial_port``, ``baudrate``,
    ``parity``, ``stopbits``), addressed by ``unit``; ``timeout``: seconds per request."""

    def __init__(self, name: str, regmap: RegisterMap, *, transport: str = "tcp", host: Optional[str] = None,
                 port: int = 502, serial_port: Optional[str] = None, baudrate: int = 9600, parity: str = "N",
                 stopbits: int = 1, unit: int = 1, timeout: float = 1.0) -> None:
        if transport not in TRANSPORTS:
            raise MapError("transport", f"one of {', '.join(TRANSPORTS)} (got {transport!r})")
        if transport == "tcp" and not host:
            raise MapError("host", "required for Modbus TCP")
        if transport == "rtu" and not serial_port:
            raise MapError("serial_port", "required for Modbus RTU")
        self.name = name
        self.map = regmap
        self.transport = transport
        self.host, self.port = host, port
        self.serial_port, self.baudrate, self.parity, self.stopbits = serial_port, baudrate, parity, stopbits
        self.unit = unit
        self.timeout = timeout
        # devices on one RTU bus share its port (a serial port opens once); on TCP each has its own
        self._link = _Link() if transport == "tcp" else _BUSES.setdefault(serial_port or "", _Link())
        self._link.users.add(self)
        #: the device's SunSpec model list, once read (a map with ``sunspec = true`` is moved to it)
        self.layout: Optional[Layout] = None

    @property
    def _client(self) -> Optional[AsyncModbusTcpClient | AsyncModbusSerialClient]:
        return self._link.client

    @property
    def _lock(self) -> asyncio.Lock:
        return self._link.lock

    @property
    def where(self) -> str:
        """The link in words, for errors: ``modbus tcp 127.0.0.1:5020 unit 1``."""
        link = f"{self.host}:{self.port}" if self.transport == "tcp" else f"{self.serial_port} {self.baudrate} baud"
        return f"modbus {self.transport} {link} unit {self.unit}"

    def points(self) -> Sequence[Point]:
        return [Point(r.name, r.unit, r.writable, r.doc) for r in self.map.registers]

    async def connect(self) -> None:
        if self._client is not None and self._client.connected:
            return
        self._link.reset()
        if self.transport == "tcp":
            client: AsyncModbusTcpClient | AsyncModbusSerialClient = AsyncModbusTcpClient(
                self.host or "", port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0)
        else:
            client = AsyncModbusSerialClient(self.serial_port or "", framer=FramerType.RTU, baudrate=self.baudrate,
                                             parity=self.parity, stopbits=self.stopbits, timeout=self.timeout,
                                             retries=0, reconnect_delay=0)
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout + 1)
        except (OSError, asyncio.TimeoutError, ModbusException) as exc:
            ok, why = False, str(exc) or type(exc).__name__
        else:
            why = "connection refused or no such port"
        if not ok:
            client.close()
            raise DeviceFault(self.name, f"cannot reach {self.where}: {why}", "unreachable")
        self._link.client = client

    async def close(self) -> None:
        """This device is done with the link (a shared bus closes when its last device is)."""
        self._link.users.discard(self)
        if not self._link.users:
            self._link.reset()
            if self.transport == "rtu" and _BUSES.get(self.serial_port or "") is self._link:
                del _BUSES[self.serial_port or ""]

    async def locate(self) -> None:
        """Read the device's SunSpec model list and move the map's registers to it (once; a
        failed walk is tried again at the next request). Maps without ``sunspec`` stay as written."""
        if not self.map.sunspec:  # not a SunSpec map, or moved to this device already
            return
        self._link.users.add(self)

        async def words(address: int, count: int) -> list[int]:
            reg = Register("sunspec_model_list", address, "holding", "uint32" if count == 2 else "uint16")
            async with self._lock:
                return await self._request(reg, "read", None)

        layout = await discover(words, f"{self.name} ({self.where})")
        try:
            self.map = relocate(self.map, layout)
        except MapError as exc:  # the device is not what the map is for: a fault of this device
            raise DeviceFault(self.name, f"{exc.reason} ({self.where}, map {self.map.name}; {layout.describe()})",
                              "bad-reply") from None
        self.layout = layout
        log.info("%s: %s", self.name, layout.describe())

    async def read(self, point: str) -> Value:
        await self.locate()
        reg = self.map[point]
        self._link.users.add(self)  # used again after close()
        exponent = await self._exponent(reg)
        async with self._lock:
            raw = await self._request(reg, "read", None)
        return reg.decode(raw, exponent)

    async def _exponent(self, reg: Register) -> int:
        """The power of ten a SunSpec-style scale-factor register gives ``reg`` (0 without one)."""
        if reg.scale_register is None:
            return 0
        return int(await self.read(reg.scale_register))

    async def write(self, point: str, value: Value) -> None:
        await self.locate()
        reg = self.map[point]
        if not reg.writable:
            raise MapError(f"{self.name}.{point}", "is read-only in the map")
        self._link.users.add(self)
        words = reg.encode(value, await self._exponent(reg))
        async with self._lock:
            await self._request(reg, "write", words)

    async def _request(self, reg: Register, op: str, words):
        await self.connect()
        client = self._client
        assert client is not None  # connect() raised otherwise
        at = f"{self.name}.{reg.name}"
        try:
            if op == "read":
                call = {"input": client.read_input_registers, "holding": client.read_holding_registers,
                        "coil": client.read_coils, "discrete": client.read_discrete_inputs}[reg.table]
                rr = await call(reg.address, count=reg.words, device_id=self.unit)
            elif reg.table in BIT_TABLES:
                rr = await client.write_coil(reg.address, bool(words[0]), device_id=self.unit)
            elif reg.words == 1:
                rr = await client.write_register(reg.address, int(words[0]), device_id=self.unit)
            else:
                rr = await client.write_registers(reg.address, [int(w) for w in words], device_id=self.unit)
        except ModbusIOException as exc:
            # no answer in time: the link may still be up (a wrong unit id on a bus), but a late
            # answer would be taken for the next request's, so the link starts afresh
            self._link.reset()
            raise DeviceFault(at, f"no answer from {self.where} within {self.timeout:g} s ({op} of "
                                  f"{reg.table} register {reg.address}): {exc}", "timeout") from None
        except (ConnectionException, OSError) as exc:
            self._link.reset()
            raise DeviceFault(at, f"link to {self.where} lost: {exc}", "gone") from None
        except ModbusException as exc:
            self._link.reset()
            raise DeviceFault(at, f"bad reply from {self.where}: {exc}", "bad-reply") from None
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0))
            meaning = EXCEPTION_CODES.get(code, "unknown exception code")
            raise DeviceFault(at, f"{self.where} answered exception code {code}: {meaning} ({op} of {reg.table} "
                                  f"register {reg.address})", "exception")
        if op == "write":
            return None
        values = list(rr.bits[:reg.words]) if reg.table in BIT_TABLES else list(rr.registers)
        if len(values) != reg.words:
            raise DeviceFault(at, f"{self.where} sent {len(values)} value(s) for {reg.words}", "bad-reply")
        return values


class _Link:
    """A Modbus client and the lock that keeps one request at a time on it (an RTU bus is half
    duplex), with the adapters that use it."""

    def __init__(self) -> None:
        self.client: Optional[AsyncModbusTcpClient | AsyncModbusSerialClient] = None
        self.lock = asyncio.Lock()
        self.users: set = set()

    def reset(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a dead link must not hide why it died
                log.debug("close of a modbus link failed", exc_info=True)


#: The RTU buses open in this process, by serial port.
_BUSES: dict[str, _Link] = {}
