"""A prosumer's devices as one: the offer source and the executor of an FOA agent.

A :class:`DeviceFleet` fronts any number of device models (a house, a building, a community
energy system). It keeps their physics on one time line and moves it only when asked (an offer
is due, a schedule ends, a decision arrives), simulating the intervals in between in one go: no
timer per interval, however many devices. On that time line, in order:

- every day at the owner's ``offer_time`` (local) the FOA opens a **horizon** from ``lead``
  later to the next one (about 24 h; the first starts with the scenario) and each device plans
  its runs in it: continuous devices (heat pump, boiler, freezer, battery, PV, base load) offer
  the whole horizon at once, event devices offer when their event happens (an EV plugs in, the
  owner loads the dishwasher);
- an offer is built from the device's state *predicted* at its start: the state now, simulated
  forward under what is already decided (a schedule being executed, its normal programme);
- an owner's announced change (an EV leaving early) updates the offer, or withdraws it, while it
  is not yet scheduled (:meth:`changes`);
- a schedule (:meth:`execute`) or a rejection (:meth:`run_default`) is a decision the device
  follows from that interval on; when the schedule (or the normal programme) is over, the meter
  reading over its span is what the agent reports, with the meter's noise.

The fleet implements :class:`~vmenergy.protocol.strategies.OfferSource` and the executor
interface of :mod:`vmenergy.devices.executor`. Determinism: the physics depends only on the
inputs, the decisions and the times they arrive; every random draw is seeded by the scenario's
seed and the device's id.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.protocol.strategies import OfferChange, OfferSource
from vmenergy.runtime.clock import Clock

from .models.base import Context, Device, DeviceError, Horizon, Run, meter_noise, param, validate_params

__all__ = ["FoaSettings", "DeviceFleet"]

log = logging.getLogger("vmenergy.devices")

#: Meter readings older than this many days are forgotten (a box runs for months).
KEEP_DAYS = 4
#: A second horizon starts at least this long (hours) after the first one's offers were made.
MIN_FIRST_HORIZON_H = 6.0


@dataclass(frozen=True)
class FoaSettings:
    """How the FOA offers: when, how far ahead, in what slices, and its meter's noise."""

    offer_time: float = param(12.0, unit="h", ge=0, lt=24, doc="local time of the daily offers")
    offer_lead: int = param(3600, unit="s", ge=0, doc="an offer starts this long after it is made")
    slice_minutes: int = param(60, unit="min", ge=1, doc="slice length of the offers of continuous devices "
                                                          "(15 min to 1 h in the GOFLEX FOA)")
    deviation: float = param(0.02, ge=0, lt=1, doc="relative metering noise")

    def __post_init__(self) -> None:
        validate_params(self)


@dataclass
class _Log:
    """A device's metered kWh per interval from ``start``."""

    start: int
    energy: list[float] = field(default_factory=list)

    def read(self, a: int, b: int) -> list[float]:
        if a < self.start or b > self.start + len(self.energy):
            raise DeviceError("meter", f"no readings for intervals {a} to {b} (have {self.start} to "
                                       f"{self.start + len(self.energy)})")
        return self.energy[a - self.start:b - self.start]

    def forget(self, before: int) -> None:
        if before > self.start:
            cut = min(before - self.start, len(self.energy))
            del self.energy[:cut]
            self.start += cut


class DeviceFleet(OfferSource):
    """The devices of one FOA (see the module docstring). ``start``/``until``: epoch seconds of
    the scenario (``until`` None: a box that runs on); horizons that would end after ``until``
    are not opened."""

    def __init__(self, devices: Iterable[Device], ctx: Context, settings: FoaSettings = FoaSettings(), *,
                 start: int, until: Optional[int] = None) -> None:
        self.devices = list(devices)
        if len({d.id for d in self.devices}) != len(self.devices):
            raise DeviceError("devices", "device ids must be unique")
        self.ctx = ctx
        self.settings = settings
        res = ctx.resolution
        if (settings.slice_minutes * 60) % res:
            raise DeviceError("slice_minutes", f"must be a whole number of {res} s intervals")
        self.start = start
        self.until = until
        self.t = -(-start // res)  # every device is simulated up to this interval
        for d in self.devices:
            d.t = self.t
        self.logs = {d.id: _Log(self.t) for d in self.devices}
        self._horizons: list[Horizon] = []
        self._next_horizon = 0
        self._events: list[tuple[int, int, int, str, str]] = []  # (interval, order, seq, device id, run id)
        self._seq = 0
        self._new: list[tuple[int, FlexOffer]] = []
        self._changes: list[OfferChange] = []
        self._by_offer: dict[str, tuple[Device, Run]] = {}
        self._device = {d.id: d for d in self.devices}

    # -- horizons -------------------------------------------------------------------------------
    def horizon(self, k: int) -> Optional[Horizon]:
        """Horizon ``k``, or None when it would end after ``until``."""
        while len(self._horizons) <= k + 1:
            self._horizons.append(self._make_horizon(len(self._horizons)))
        h, nxt = self._horizons[k], self._horizons[k + 1]
        h = Horizon(h.index, h.release, h.start, nxt.start)
        if self.until is not None and h.end * self.ctx.resolution > self.until:
            return None
        return h

    def _make_horizon(self, k: int) -> Horizon:
        ctx, res = self.ctx, self.ctx.resolution
        step = max(1, self.settings.slice_minutes * 60 // res)  # horizon bounds fall on slice bounds
        if k == 0:
            release = self.t
        else:
            prev = self._horizons[k - 1].release
            release = ctx.next_local(prev + 1, self.settings.offer_time)
            if k == 1 and (release - prev) * ctx.hours < MIN_FIRST_HORIZON_H:
                release = ctx.next_local(release + 1, self.settings.offer_time)
        begin = release + -(-self.settings.offer_lead // res)
        begin = -(-begin // step) * step
        return Horizon(k, release, begin, begin)

    # -- time ------------------------------------------------------------------------------------
    def _advance(self, to: int) -> None:
        """Simulate every device up to interval ``to`` (exclusive) under its commands."""
        if to <= self.t:
            # every device is at ``self.t`` (they are stepped only here), so there is nothing to
            # do; without this each event visited every device: an FOA of 1,000 households
            # releasing its ~2,700 day-ahead offers at noon made ~12 million empty visits
            return
        for d in self.devices:
            logbook = self.logs[d.id].energy
            for t in range(d.t, to):
                logbook.append(d.step(t, d.command(t)))
        self.t = max(self.t, to)

    def _push(self, at: int, order: int, device: Device, run: Run) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, order, self._seq, device.id, run.id))

    def _next_event(self) -> Optional[int]:
        times = [self._events[0][0]] if self._events else []
        h = self.horizon(self._next_horizon)
        if h is not None:
            times.append(h.release)
        return min(times) if times else None

    def catch_up(self, now: int) -> None:
        """Bring the devices to ``now`` (epoch seconds), handling every event due by then in
        time order: horizons opening, offers to make, announced changes."""
        k = now // self.ctx.resolution
        while True:
            h = self.horizon(self._next_horizon)
            at_event = self._events[0][0] if self._events else None
            if h is not None and h.release <= k and (at_event is None or h.release <= at_event):
                self._advance(h.release)
                self._open(h)
                continue
            if at_event is not None and at_event <= k:
                at, order, _, device_id, run_id = heapq.heappop(self._events)
                self._advance(at)
                device = self._device[device_id]
                run = device.run_of(run_id)
                if run is not None:
                    (self._release if order == 0 else self._change)(device, run, at)
                continue
            break
        self._advance(k)
        if k % 96 == 0:
            self._forget(k - KEEP_DAYS * 86400 // self.ctx.resolution)

    def _open(self, h: Horizon) -> None:
        self._next_horizon = h.index + 1
        refresh = getattr(self.ctx.inputs, "refresh", None)
        if refresh is not None:  # a box's cron job may have rewritten the forecasts since yesterday
            refresh()
        for d in self.devices:
            for run in d.plan(h):
                d.runs.append(run)
                self._by_offer[run.id] = (d, run)
                self._push(run.release, 0, d, run)
                if run.change_at is not None:
                    self._push(run.change_at, 1, d, run)

    def _release(self, device: Device, run: Run, at: int) -> None:
        """Make ``run``'s offer from the device's state predicted at the run's start."""
        twin = device.fork()
        for t in range(twin.t, run.start):
            twin.step(t, twin.command(t))
        twin.t = max(twin.t, run.start)
        offer = twin.offer(run, at)
        if offer is None:
            device.decide(run, "cancelled", at)
            return
        run.offer, run.offered = offer, True
        self._new.append((at * self.ctx.resolution, offer))

    def _change(self, device: Device, run: Run, at: int) -> None:
        if run.decided is not None or not run.offered:
            run.changed = True  # scheduled already: the device just does what it can
            return
        offer = device.revise(run, at)
        run.changed = True
        if offer is None:
            device.decide(run, "cancelled", at)
        else:
            run.offer = offer
        self._changes.append(OfferChange(run.id, offer))

    def _forget(self, before: int) -> None:
        for d in self.devices:
            d.forget(before)
            self.logs[d.id].forget(before)
        self._by_offer = {k: v for k, v in self._by_offer.items() if v[1] in v[0].runs}

    # -- the offer source ---------------------------------------------------------------------------
    def offers(self, now: Optional[int]) -> list[tuple[int, FlexOffer]]:
        if now is None:
            return []
        self.catch_up(now)
        out, self._new = self._new, []
        return out

    def changes(self, now: int) -> list[OfferChange]:
        self.catch_up(now)
        out, self._changes = self._changes, []
        return out

    def next_due(self, now: int) -> Optional[int]:
        if self._new or self._changes:
            return now
        at = self._next_event()
        return None if at is None else max(now, at * self.ctx.resolution)

    # -- the executor -------------------------------------------------------------------------------
    def _lookup(self, offer_id: str) -> Optional[tuple[Device, Run]]:
        return self._by_offer.get(offer_id)

    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Clock) -> tuple[int, list[float]]:
        """Follow ``schedule`` from now on; when it ends, what the meter saw over its span."""
        self.catch_up(int(clock.now()))
        energy = offer.profiles[schedule.profile].spread(schedule.energy)
        start, end = schedule.start, schedule.start + len(energy)
        found = self._lookup(offer.id)
        if found is None:  # not one of ours (a restarted box, a template offer): meter the schedule
            log.warning("event=execute-unknown-offer offer=%s", offer.id)
            await clock.sleep_until(end * schedule.resolution)
            return start, meter_noise(energy, self.settings.deviation, self.ctx.seed, offer.id, schedule.update_id)
        device, run = found
        self.follow(offer, schedule, int(clock.now()))
        await clock.sleep_until(end * schedule.resolution)
        self.catch_up(int(clock.now()))
        read = self.logs[device.id].read(start, end)
        return start, meter_noise(read, self.settings.deviation, self.ctx.seed, offer.id, schedule.update_id)

    def follow(self, offer: FlexOffer, schedule: Schedule, now: int) -> bool:
        """Record that ``schedule`` is being carried out (by the models here, or by hardware that
        :class:`~vmenergy.devices.adapters.executor.HardwareExecutor` drives while the models
        keep predicting for the next offers); False if the offer is not one of this fleet's."""
        self.catch_up(now)
        found = self._lookup(offer.id)
        if found is None:
            return False
        energy = offer.profiles[schedule.profile].spread(schedule.energy)
        found[0].decide(found[1], "schedule", self.t, schedule.start, energy)
        return True

    def follow_default(self, offer: FlexOffer, now: int) -> Optional[tuple[int, int]]:
        """Record that ``offer``'s device runs its normal programme; its span (first interval,
        end interval), or None if the offer is not one of this fleet's."""
        self.catch_up(now)
        found = self._lookup(offer.id)
        if found is None:
            return None
        device, run = found
        if run.decided not in ("default", "cancelled"):
            device.decide(run, "default", self.t)
        start = max(run.decided_at if run.decided_at is not None else self.t, run.start)
        return start, max(run.end, run.plan_end or 0)

    async def run_default(self, offer: FlexOffer, clock: Clock) -> tuple[int, list[float]]:
        """The offer will not be scheduled: its device runs its normal programme from now; when
        the run's span is over, what the meter saw from then on."""
        span = self.follow_default(offer, int(clock.now()))
        if span is None:
            raise DeviceError("offer", f"{offer.id} is not an offer of this fleet's devices")
        start, end = span
        device = self._by_offer[offer.id][0]
        await clock.sleep_until(end * self.ctx.resolution)
        self.catch_up(int(clock.now()))
        read = self.logs[device.id].read(start, end)
        return start, meter_noise(read, self.settings.deviation, self.ctx.seed, offer.id, "default")

    # -- reporting ------------------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        """Whether the fleet will still make offers (another horizon, or events to come)."""
        return self._next_event() is not None or bool(self._new or self._changes)

    def device_of(self, offer_id: str) -> Optional[Device]:
        found = self._lookup(offer_id)
        return None if found is None else found[0]

    def meter(self, device_id: str, start: int, end: int) -> np.ndarray:
        """The device's true energy (before the meter's noise) over intervals [start, end)."""
        return np.asarray(self.logs[device_id].read(start, end))
