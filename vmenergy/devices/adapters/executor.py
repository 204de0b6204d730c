"""``HardwareExecutor``: a prosumer box's schedules carried out on real (or emulated) devices.

For each interval of a schedule it turns the interval's kWh into a set-point, reads the meter
``corrections`` times in the interval and sets what is still missing over the time left (so a
device that draws less than asked, or a current limit rounded to whole amps, is corrected within
the slice), and meters the interval at its end from the energy counter. When the schedule ends,
or is withdrawn (its task cancelled), the device's normal state is written back, unless another
schedule still runs on the device: the newest live schedule sets a device, and gives it back to
the one before it when it ends.

Set-points by ``control`` (:func:`setpoint_values`): ``power`` kW as is; ``current`` amps
``kW * 1000 / (voltage * phases)`` within the register's bounds, and the enable switch off below
the lowest current (a car cannot charge at less than 6 A); ``switch`` and ``sg_ready`` are on/off
(forced / blocked): on while the energy still missing needs at least half the device's power
until the next correction, which duty-cycles the slice's energy.

Faults (:class:`~.faults.DeviceFault`) are retried ``retries`` times with doubling waits; a
fault that stays is logged, told to ``on_fault`` (the agent tells the aggregator) and the
device is put in its safe state (its normal behaviour by default). A meter that misses some
boundaries but answers later still gives every interval: the energy between two good readings
is spread evenly over the intervals between them. A meter that never answers again leaves the
schedule without a measurement (the executor raises the fault; the agent reports it and lives).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional, Sequence

from vmenergy.devices.executor import default_schedule
from vmenergy.flexoffer import FlexOffer, Schedule

from .adapter import Adapter, Value
from .config import HardwareConfig, make_adapter
from .faults import DeviceFault
from .registers import MapError, RegisterMap

__all__ = ["HardwareDevice", "HardwareExecutor", "setpoint_values"]

log = logging.getLogger("vmenergy.devices.hardware")

FaultListener = Callable[[str, str, DeviceFault], None]


def setpoint_values(cfg: HardwareConfig, regmap: RegisterMap, kw: float, *, rated_kw: Optional[float] = None
                    ) -> dict[str, Value]:
    """The register values that make the device draw ``kw`` (see the module docstring)."""
    c = cfg.control
    if c == "power":
        reg = regmap[cfg.setpoint or ""]
        lo = reg.min if reg.min is not None else kw
        hi = reg.max if reg.max is not None else kw
        power: dict[str, Value] = {reg.name: min(max(kw, lo), hi)}
        if cfg.enable:
            power[cfg.enable] = True
        return power
    if c == "current":
        reg = regmap[cfg.setpoint or ""]
        amps = max(kw, 0.0) * 1000.0 / (cfg.voltage * cfg.phases)
        lo = reg.min if reg.min is not None else 0.0
        hi = reg.max if reg.max is not None else amps
        if amps < lo - 1e-9:
            if cfg.enable:
                return {cfg.enable: False, reg.name: lo}
            return {reg.name: lo}
        out: dict[str, Value] = {reg.name: min(amps, hi)}
        if cfg.enable:
            out[cfg.enable] = True
        return out
    rated = cfg.rated_kw if rated_kw is None else rated_kw
    if c == "storage" and rated:  # percent of the rated charge or discharge power, by the mode bits
        pct = min(100.0, abs(kw) / rated * 100.0)
        if kw >= 0:
            return {cfg.enable or "": 1, cfg.setpoint or "": pct}
        return {cfg.enable or "": 2, cfg.discharge or "": pct}
    on = rated is not None and rated > 0 and kw >= rated / 2
    if c == "switch":
        return {cfg.setpoint or "": on}
    if c == "sg_ready":
        r1, r2 = cfg.relays
        return {r1: True, r2: True} if on else {r1: True, r2: False}  # forced on / blocked
    raise MapError("control", f"{cfg.id} has control = {c!r}: it cannot follow a schedule")


@dataclass
class HardwareDevice:
    """One ``[[prosumer.hardware]]`` entry at run time: its settings, map and adapter."""

    cfg: HardwareConfig
    regmap: RegisterMap
    adapter: Adapter

    @classmethod
    def build(cls, cfg: HardwareConfig, base: Optional[Path] = None) -> "HardwareDevice":
        from .config import resolve_map

        return cls(cfg, resolve_map(cfg, base), make_adapter(cfg, base))


class HardwareExecutor:
    """The executor of a box whose devices are real (see the module docstring). ``devices``: the
    box's hardware by id; ``fleet``: its device models (the offer source), told about every
    decision so their predictions follow the devices; ``on_fault(offer_id, device_id, fault)``
    hears faults that stayed after the retries."""

    def __init__(self, devices: Sequence[HardwareDevice], *, fleet: Any = None,
                 on_fault: Optional[FaultListener] = None, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
                 ) -> None:
        self.devices = {d.cfg.id: d for d in devices}
        self.fleet = fleet
        self.on_fault = on_fault
        self._sleep = sleep  # real-time waits between retries (a link, not scenario time)
        self._told: set[tuple[str, str, str]] = set()  # (offer, device, kind) the aggregator heard of
        # the schedules running on each device, oldest first: the newest one sets the device (a
        # schedule that overlaps an earlier one, or a normal programme's tail, takes over), and
        # the normal state is written back only when the last one ends, never under a live one
        self._running: dict[str, list[str]] = {}

    # -- which device runs an offer -----------------------------------------------------------
    def device_for(self, offer: FlexOffer) -> HardwareDevice:
        """The controllable device that carries out ``offer``: the one that ``drives`` the
        offer's device model, or the one named by the offer's label, or the only one."""
        controllable = [d for d in self.devices.values() if d.cfg.control != "none"]
        model = self.fleet.device_of(offer.id) if self.fleet is not None else None
        if model is not None:
            for d in controllable:
                if model.id == d.cfg.model_id or model.id.endswith("-" + d.cfg.model_id):
                    return d
        for d in controllable:
            if offer.label is not None and offer.label in (d.cfg.id, d.cfg.model_id):
                return d
        if len(controllable) == 1 and model is None:
            return controllable[0]
        raise DeviceFault("offer", f"no hardware entry drives offer {offer.id} (device "
                                   f"{model.id if model is not None else offer.label!r}); set drives = ... on "
                                   "one of: " + ", ".join(d.cfg.id for d in controllable), "unreachable")

    # -- the executor interface -------------------------------------------------------------------
    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Any) -> tuple[int, list[float]]:
        dev = self._device(offer)
        if self.fleet is not None:
            self.fleet.follow(offer, schedule, int(clock.now()))
        targets = offer.profiles[schedule.profile].spread(schedule.energy).tolist()
        log.info("event=hardware-schedule device=%s offer=%s link=%r intervals=%d", dev.cfg.id, offer.id,
                 getattr(dev.adapter, "where", dev.cfg.transport), len(targets))
        try:
            return await self._run(dev, offer.id, schedule.start, schedule.resolution, targets, clock)
        except DeviceFault as exc:  # no measurement: the aggregator hears why
            self._fault(offer.id, dev, exc)
            raise

    def _device(self, offer: FlexOffer) -> HardwareDevice:
        try:
            return self.device_for(offer)
        except DeviceFault as exc:
            log.error("event=device-fault offer=%s kind=%s reason=%r", offer.id, exc.kind, exc.reason)
            if self.on_fault is not None:
                self.on_fault(offer.id, "none", exc)
            raise

    async def run_default(self, offer: FlexOffer, clock: Any) -> tuple[int, list[float]]:
        """No schedule: the device's normal state from now, metered over the offer's span (the
        fleet's, or the offer's baseline)."""
        dev = self._device(offer)
        try:
            return await self._run_default(dev, offer, clock)
        except DeviceFault as exc:
            self._fault(offer.id, dev, exc)
            raise

    async def _run_default(self, dev: HardwareDevice, offer: FlexOffer, clock: Any) -> tuple[int, list[float]]:
        now = int(clock.now())
        span = self.fleet.follow_default(offer, now) if self.fleet is not None else None
        if span is None:
            d = default_schedule(offer, now)
            span = d.start, d.start + offer.profiles[d.profile].duration
        start, end = span
        if not self._running.get(dev.cfg.id):  # a live schedule keeps the device
            await self._restore(dev, offer.id)
        return await self._run(dev, offer.id, start, offer.resolution, [None] * (end - start), clock)

    # -- carrying out ------------------------------------------------------------------------------
    async def _run(self, dev: HardwareDevice, offer_id: str, start: int, res: int, targets: list, clock: Any
                   ) -> tuple[int, list[float]]:
        cfg = dev.cfg
        await clock.sleep_until(start * res)
        controls = any(t is not None for t in targets)
        running = self._running.setdefault(cfg.id, [])
        if controls:
            running.append(offer_id)
        counters: list[Optional[float]] = [await self._meter(dev, offer_id)]
        try:
            for i, target in enumerate(targets):
                t0 = (start + i) * res
                if target is not None:
                    for j in range(cfg.corrections):
                        at = t0 + (j * res) // cfg.corrections
                        await clock.sleep_until(at)
                        nxt = min(t0 + ((j + 1) * res) // cfg.corrections, t0 + res)
                        await self._correct(dev, offer_id, target, counters[-1], at, t0 + res, nxt)
                await clock.sleep_until(t0 + res)
                counters.append(await self._meter(dev, offer_id))
        finally:
            if controls:
                running.remove(offer_id)
                if not running:
                    await asyncio.shield(self._restore(dev, offer_id))
        if counters[-1] is None:
            counters[-1] = await self._meter(dev, offer_id, persist=True)
        skipped, energy = _intervals(counters)
        return start + skipped, energy

    async def _correct(self, dev: HardwareDevice, offer_id: str, target: float, base: Optional[float], at: int,
                       end: int, nxt: int) -> None:
        """Set what the interval still needs over the time left in it (an on/off device: over the
        time to the next correction, so it is on while that would not overshoot by more than half).
        Nothing while a newer schedule holds the device."""
        if self._running.get(dev.cfg.id, [offer_id])[-1] != offer_id:
            return
        done = 0.0
        if base is not None:
            now = await self._meter(dev, offer_id)
            done = 0.0 if now is None else now - base
        until = nxt if dev.cfg.control in ("switch", "sg_ready") else end
        hours = max(until - at, 1) / 3600.0
        kw = (target - done) / hours
        try:
            values = setpoint_values(dev.cfg, dev.regmap, kw, rated_kw=dev.cfg.rated_kw)
        except MapError as exc:
            self._fault(offer_id, dev, DeviceFault(exc.path, exc.reason, "exception"))
            return
        for name, value in values.items():
            await self._call(dev, offer_id, lambda n=name, v=value: dev.adapter.write(n, v))

    async def _restore(self, dev: HardwareDevice, offer_id: str) -> None:
        """The device back to its own behaviour (its ``normal`` register values)."""
        for name, value in dev.cfg.normal.items():
            await self._call(dev, offer_id, lambda n=name, v=value: dev.adapter.write(n, v))

    async def _meter(self, dev: HardwareDevice, offer_id: str, persist: bool = False) -> Optional[float]:
        """The energy counter (import - export, kWh), or None if it cannot be read. ``persist``:
        keep trying (doubling waits up to a minute, ten times) before giving up with the fault."""
        cfg = dev.cfg
        if cfg.meter is None:
            raise DeviceFault(cfg.id, "no meter: set meter = \"REGISTER\" or \"ENTRY.REGISTER\"", "unreachable")
        parts = []
        for key in ("meter", "export"):
            name = getattr(cfg, key)
            if name is None:
                continue
            owner, _, reg = name.rpartition(".")
            src = self.devices[owner] if owner else dev
            parts.append((src, reg, 1.0 if key == "meter" else -1.0))
        tries = 10 if persist else 1
        delay = cfg.backoff
        for attempt in range(tries):
            total = 0.0
            try:
                for src, reg, sign in parts:
                    value = await self._call(src, offer_id, lambda s=src, r=reg: s.adapter.read(r), report=not persist)
                    if value is None:
                        raise _Missing()
                    total += sign * float(value)
                return total
            except _Missing:
                if attempt + 1 < tries:
                    await self._sleep(delay)
                    delay = min(60.0, delay * 2)
        if persist:
            raise DeviceFault(cfg.id, "the meter did not answer at the end of the schedule: no measurement",
                              "gone")
        return None

    async def _call(self, dev: HardwareDevice, offer_id: str, op: Callable[[], Awaitable[Any]], report: bool = True
                    ) -> Any:
        """``op`` with retries and doubling waits; on a fault that stays: the safe state, the
        fault reported, and None."""
        delay = dev.cfg.backoff
        for attempt in range(dev.cfg.retries):
            try:
                return await op()
            except DeviceFault as exc:
                fault = exc
                if attempt + 1 < dev.cfg.retries:
                    await self._sleep(delay)
                    delay *= 2
        if report:
            self._fault(offer_id, dev, fault)
            await self._safe(dev)
        return None

    async def _safe(self, dev: HardwareDevice) -> None:
        """Best effort: the device's safe state (it may be the device that is gone)."""
        for name, value in (dev.cfg.safe if dev.cfg.safe is not None else dev.cfg.normal).items():
            try:
                await dev.adapter.write(name, value)
            except DeviceFault:
                return

    def _fault(self, offer_id: str, dev: HardwareDevice, fault: DeviceFault) -> None:
        # a device that stays gone fails every correction of every interval: the log has each
        # failure, the aggregator hears once per schedule and kind of fault
        key = (offer_id, dev.cfg.id, fault.kind)
        log.log(logging.WARNING if key in self._told else logging.ERROR,
                "event=device-fault device=%s offer=%s kind=%s reason=%r", dev.cfg.id, offer_id, fault.kind,
                fault.reason)
        if self.on_fault is not None and key not in self._told:
            self._told.add(key)
            self.on_fault(offer_id, dev.cfg.id, fault)

    async def close(self) -> None:
        for d in self.devices.values():
            await d.adapter.close()


class _Missing(Exception):
    """A meter reading that could not be had (internal to :meth:`HardwareExecutor._meter`)."""


def _intervals(counters: list[Optional[float]]) -> tuple[int, list[float]]:
    """(intervals skipped, kWh per interval after them) from counter readings at the interval
    bounds; a stretch of missing readings shares the energy between the good readings around it
    evenly. Before the first good reading nothing is known, so the measurement starts there."""
    first = next((i for i, c in enumerate(counters) if c is not None), None)
    if first is None or first == len(counters) - 1:
        raise DeviceFault("meter", "not read at two interval bounds: no measurement", "gone")
    out: list[float] = []
    last_i, last = first, counters[first]
    for i in range(last_i + 1, len(counters)):
        c = counters[i]
        if c is None:
            continue
        share = (c - last) / (i - last_i)  # type: ignore[operator]
        out.extend([share] * (i - last_i))
        last_i, last = i, c
    return first, out
