"""Helpers of the hardware tests: a virtual clock driven until a task is done, and a box of
emulated devices (Modbus TCP, Modbus RTU on a pty pair, a serial line board on a pty pair)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from vmenergy.devices.adapters.config import read_hardware
from vmenergy.devices.adapters.emulator import EmulatedDevice, LineEmulator, ModbusEmulator
from vmenergy.devices.adapters.executor import HardwareDevice, HardwareExecutor
from vmenergy.devices.adapters.registers import load_map
from vmenergy.devices.adapters.serial_line import load_protocol
from vmenergy.runtime.clock import VirtualClock

T0 = 1_796_000_400  # an interval bound (15 min) in 2026


async def drive(clock: VirtualClock, task: asyncio.Task) -> Any:
    """Move virtual time from timer to timer until ``task`` is done (as a coordinator would: only
    when every task is waiting for a time, never while one talks to a device)."""
    while not task.done():
        await clock.wait_idle()
        if task.done():
            break
        t = clock.next_timer()
        if t is None:  # the task waits for something else (a reply); it will be working again
            await asyncio.sleep(0)
            continue
        clock.advance(t)
        clock.wake()
    return task.result()


class Box:
    """Emulated devices on loopback and the hardware entries a box would write for them:
    ``wallbox`` (EV charger, Modbus TCP), ``meter`` (SDM630 on the same server, metering the
    ``boiler`` relay), ``boiler`` (relay board relay 1, 2 kW), ``heatpump`` (SG-Ready on Modbus
    RTU over a pty pair), ``board`` (a serial ASCII relay board, 1.5 kW, on a pty pair)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.wallbox = EmulatedDevice(load_map("ev_charger"), clock)
        self.relay = EmulatedDevice(load_map("relay_board"), clock, rated_kw=2.0)
        self.meter = EmulatedDevice(load_map("sdm630"), clock, watches=[self.relay], settings={"voltage": 230.0})
        self.heatpump = EmulatedDevice(load_map("sg_ready"), clock, rated_kw=3.0)
        proto = load_protocol("ascii_relay")
        self.board = EmulatedDevice(proto.as_map(), clock, rated_kw=1.5)
        self.tcp = ModbusEmulator({1: self.wallbox, 2: self.meter, 3: self.relay})
        self.rtu = ModbusEmulator({5: self.heatpump}, transport="rtu")
        self.line = LineEmulator(self.board, proto)

    async def start(self) -> "Box":
        await self.tcp.start()
        await self.rtu.start()
        await self.line.start()
        return self

    async def stop(self) -> None:
        await self.tcp.stop()
        await self.rtu.stop()
        await self.line.stop()

    def entries(self, timeout: float = 0.15) -> list[dict]:
        tcp = {"transport": "tcp", "host": "127.0.0.1", "port": self.tcp.port, "timeout": timeout, "backoff": 0.01}
        return [
            {"id": "wallbox", **tcp, "map": "ev_charger", "unit": 1},
            {"id": "meter", **tcp, "map": "sdm630", "unit": 2},
            {"id": "boiler", **tcp, "map": "relay_board", "unit": 3, "meter": "meter.import_kwh", "rated_kw": 2.0},
            {"id": "heatpump", "transport": "rtu", "serial_port": self.rtu.serial_port, "baudrate": 19200,
             "map": "sg_ready", "unit": 5, "rated_kw": 3.0, "timeout": timeout, "backoff": 0.01},
            {"id": "board", "transport": "serial", "serial_port": self.line.serial_port, "protocol": "ascii_relay",
             "rated_kw": 1.5, "timeout": timeout, "backoff": 0.01},
        ]

    def executor(self, on_fault: Optional[Any] = None, timeout: float = 0.15) -> HardwareExecutor:
        devices = [HardwareDevice.build(c) for c in read_hardware(self.entries(timeout))]
        return HardwareExecutor(devices, on_fault=on_fault)
