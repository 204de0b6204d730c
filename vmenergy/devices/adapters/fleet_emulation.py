"""A scenario's prosumers on emulated Modbus devices (``hardware = "modbus-tcp"`` or
``"modbus-rtu"`` in a ``[[prosumers]]`` group).

Each prosumer's device models still make its offers (the fleet predicts), but its schedules are
carried out by a :class:`~.executor.HardwareExecutor` over Modbus: every device of the fleet is
an emulated device (map ``power_setpoint``, one unit id per device) on a Modbus server of its
own box (TCP on loopback, or RTU over a pty pair), whose physics is a twin of the device model:
the energy the set-points ask for goes through the model's step (a full car takes no more), and
while the box leaves the device alone the model's own programme runs. So the whole chain a real
box has (set-points, corrections, meter counters in float32 registers, faults) is exercised at
scenario scale, on the same offers as a run without hardware.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from vmenergy.flexoffer import FlexOffer, Schedule

from .config import read_hardware
from .emulator import EmulatedDevice, ModbusEmulator
from .executor import HardwareDevice, HardwareExecutor
from .registers import load_map

__all__ = ["EmulatedFleetExecutor", "HARDWARE_OPTIONS"]

#: The values of a [[prosumers]] group's ``hardware`` key.
HARDWARE_OPTIONS = ("none", "modbus-tcp", "modbus-rtu")
MAP = "power_setpoint"


class _Twin:
    """The physics of a fleet device, apart from the fleet's own prediction copy: its state is
    its own, its runs (decisions, normal programmes) are the fleet device's."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.physics = device.fork()

    @property
    def t(self) -> int:
        return self.physics.t

    @t.setter
    def t(self, value: int) -> None:
        self.physics.t = value

    def command(self, k: int) -> Optional[float]:
        self.physics.runs = self.device.runs  # the fleet may have replaced its list (forget)
        return self.physics.command(k)

    def step(self, k: int, command: Optional[float]) -> float:
        out = self.physics.step(k, command)
        self.physics.t = k + 1
        return out


class EmulatedFleetExecutor(HardwareExecutor):
    """The executor of a prosumer whose fleet's devices are emulated Modbus devices; the server
    starts at the first schedule (inside the event loop) and stops with the agent. The request
    timeout is long: the emulator runs on the same event loop, so an answer is only ever late
    because the machine is busy, and a timeout would make a run's results depend on its load."""

    def __init__(self, fleet: Any, clock: Any, transport: str = "modbus-tcp", timeout: float = 60.0) -> None:
        if transport not in HARDWARE_OPTIONS[1:]:
            raise ValueError(f"hardware: one of {', '.join(HARDWARE_OPTIONS)} (got {transport!r})")
        super().__init__([], fleet=fleet)
        regmap = load_map(MAP)
        res = fleet.ctx.resolution
        self.emulated = {d.id: EmulatedDevice(regmap, clock, resolution=res, model=_Twin(d), rated_kw=0.0)
                         for d in fleet.devices}
        self.transport = transport
        self.timeout = timeout
        self._emulator: Optional[ModbusEmulator] = None
        self._starting: Optional[asyncio.Lock] = None  # made in the event loop, at the first schedule

    async def _ready(self) -> None:
        # the box's schedules start together (three devices assigned in one message): one
        # server for them all. Without the lock each started its own while the first was still
        # starting, and all but the last were never stopped
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._emulator is None:
                await self._start()

    async def _start(self) -> None:
        units = {i + 1: dev for i, dev in enumerate(self.emulated.values())}
        emu = ModbusEmulator(units, transport="tcp" if self.transport == "modbus-tcp" else "rtu", baudrate=115200)
        await emu.start()
        self._emulator = emu
        link: dict = ({"transport": "tcp", "host": "127.0.0.1", "port": emu.port} if emu.transport == "tcp" else
                      {"transport": "rtu", "serial_port": emu.serial_port, "baudrate": 115200})
        entries = [{"id": device_id, "drives": device_id, "map": MAP, "unit": i + 1, "timeout": self.timeout, **link}
                   for i, device_id in enumerate(self.emulated)]
        self.devices = {c.id: HardwareDevice.build(c) for c in read_hardware(entries)}

    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Any) -> tuple[int, list[float]]:
        await self._ready()
        return await super().execute(offer, schedule, clock)

    async def run_default(self, offer: FlexOffer, clock: Any) -> tuple[int, list[float]]:
        await self._ready()
        return await super().run_default(offer, clock)

    async def close(self) -> None:
        await super().close()
        if self._emulator is not None:
            await self._emulator.stop()
            self._emulator = None
