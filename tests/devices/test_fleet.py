"""A device fleet as an FOA uses it: daily offers on a rolling horizon, offers when events
happen, updates when the owner changes plans, schedules followed, rejections falling back to
the normal programme, and the same results for the same seed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Callable, Optional

import numpy as np
import pytest

from vmenergy.devices.fleet import DeviceFleet, FoaSettings
from vmenergy.devices.models import EV, BaseLoad, HeatPump, HomeBattery, Washer
from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.runtime.clock import VirtualClock

from .helpers import baseline_schedule, context

START = parse_utc("2026-11-22T18:00:00Z", "-")
DAY = 86400


def fleet(*devices, until: Optional[int] = START + 3 * DAY, seed: str = "7", deviation: float = 0.0,
          **settings) -> DeviceFleet:
    ctx = context(seed=seed)
    made = [cls(f"h-{cls.kind}", cls.Params(**params), ctx, START // 900) for cls, params in devices]
    return DeviceFleet(made, ctx, FoaSettings(deviation=deviation, **settings), start=START, until=until)


PENDING = ...  # a decision that never comes


def drive(f: DeviceFleet, decide: Callable[[FlexOffer], object]) -> dict:
    """Run the fleet in virtual time to its end: each offer gets ``decide(offer)``, a schedule,
    None (rejected) or PENDING. Returns offer id -> [offer, release, changes, what the meter saw
    while it ran its schedule or its normal programme (None while pending)]."""
    clock = VirtualClock(START)
    seen: dict = {}
    tasks = []

    async def main() -> None:
        now = START
        while True:
            due = f.next_due(now)
            if due is None:
                break
            clock.advance(due)
            now = due
            clock.wake()
            await clock.wait_idle()
            for release, fo in f.offers(now):
                seen[fo.id] = [fo, release, [], None]
                s = decide(fo)
                if s is PENDING:
                    continue
                job = f.execute(fo, s, clock) if s is not None else f.run_default(fo, clock)  # type: ignore[arg-type]
                tasks.append((fo.id, clock.spawn(job)))
            for change in f.changes(now):
                seen[change.offer_id][2].append(change.offer)
            await clock.wait_idle()
        while clock.next_timer() is not None:
            clock.advance(clock.next_timer())
            clock.wake()
            await clock.wait_idle()
        for oid, task in tasks:
            seen[oid][3] = task.result()

    asyncio.run(main())
    return seen


def test_offers_come_every_day_at_the_owners_time_for_the_next_day_until_the_end():
    f = fleet((HeatPump, {}), (BaseLoad, {}))
    seen = drive(f, baseline_schedule)
    hp = sorted((fo for fo, *_ in seen.values() if fo.label == "heat_pump"), key=lambda fo: fo.start_after)
    releases = [seen[fo.id][1] for fo in hp]
    assert releases[0] == START  # the scenario's first offers when it starts
    assert [f.ctx.local(r // 900).hour for r in releases[1:]] == [12, 12]  # then at noon local, daily
    for a, b in zip(hp, hp[1:]):  # the horizons follow each other without gap or overlap
        assert a.start_after + a.profiles[0].duration == b.start_after
    assert all(fo.start_after * 900 == seen[fo.id][1] + 3600 for fo in hp)  # an hour's lead
    assert (hp[-1].start_after + hp[-1].profiles[0].duration) * 900 <= START + 3 * DAY
    assert not f.open


def test_a_followed_schedule_is_metered_and_a_rejection_runs_the_baseline():
    f = fleet((HeatPump, {}), (HomeBattery, {}))
    first_day = {}

    def decide(fo):
        if fo.label == "battery":
            return None  # rejected: its normal programme runs
        first_day.setdefault(fo.label, fo)
        return baseline_schedule(fo)

    seen = drive(f, decide)
    for fo, release, changes, (start, metered) in seen.values():
        assert start == fo.start_after
        # the baseline is what the device does (per slice: inside one the device keeps its own pace)
        starts = np.cumsum([0] + [s.duration for s in fo.profiles[0].slices[:-1]])
        assert np.allclose(np.add.reduceat(metered, starts), fo.baseline.energy, atol=1e-8), fo.id


def test_the_state_a_schedule_leaves_is_where_the_next_days_offer_starts():
    """A battery charged full by yesterday's schedule offers today from a full battery."""
    f = fleet((HomeBattery, {"capacity": 10.0, "initial_soc": 0.5}))

    def decide(fo):
        p = fo.profiles[0]
        if fo.id.endswith("-0"):  # day 0: charge in every charging slice
            return Schedule(fo.id, fo.start_after, tuple(s.max for s in p.slices), "full", 0, 0, 900)
        return baseline_schedule(fo)

    seen = drive(f, decide)
    day1 = seen["h-battery-1"][0]
    # charging all the cheap slices of day 0 filled it: day 1's offer cannot charge more than it can hold
    rows = day1.profiles[0].polytope
    assert rows.b[0] == pytest.approx(0.0, abs=1e-6) or min(rows.b[: day1.profiles[0].n_slices]) < 1e-6


def test_an_ev_leaving_early_updates_its_offer_while_it_waits_for_a_schedule():
    f = fleet((EV, {"home_probability": 1.0, "early_probability": 1.0}))
    seen = drive(f, lambda fo: PENDING)  # nothing is decided: every change finds its offer open
    changed = [(fo, changes) for fo, _, changes, _ in seen.values() if changes]
    assert changed, "the owner announced an early departure: the offer must change"
    for fo, changes in changed:
        new = changes[-1]
        if new is not None:
            assert new.id == fo.id
            assert new.latest_start() + new.profiles[0].duration <= fo.latest_start() + fo.profiles[0].duration


def test_an_event_device_offers_when_its_event_happens():
    f = fleet((Washer, {"cycles_per_day": 1.0}))
    seen = drive(f, baseline_schedule)
    for fo, release, _, (start, metered) in seen.values():
        assert release == fo.start_after * 900  # offered when loaded: it may start at once
        assert sum(metered) == pytest.approx(sum(fo.baseline.energy))


def test_meter_noise_stays_within_the_deviation():
    f = fleet((BaseLoad, {"noise": 0.0}), deviation=0.05)
    seen = drive(f, baseline_schedule)
    for fo, _, _, (start, metered) in seen.values():
        expected = fo.profiles[0].spread(fo.baseline.energy)
        assert np.all(np.abs(np.asarray(metered) - expected) <= 0.05 * expected + 1e-12)
        assert not np.allclose(metered, expected)


def test_the_same_seed_gives_the_same_offers_and_readings():
    def once(seed):
        seen = drive(fleet((EV, {}), (Washer, {}), (HeatPump, {}), seed=seed, deviation=0.02), baseline_schedule)
        return sorted((oid, fo.to_json(), tuple(res[1])) for oid, (fo, _, _, res) in seen.items())

    assert once("3") == once("3")
    assert once("3") != once("4")


def test_a_box_without_an_end_keeps_offering():
    f = fleet((BaseLoad, {}), until=None)
    assert f.next_due(START) == START
    f.offers(START)
    assert f.next_due(START) is not None and f.open


class _CountedBaseLoad(BaseLoad):
    """A base load that counts how often each device's clock (``t``) is read: the fleet reads it
    each time it visits a device to simulate it forward."""

    reads: Counter = Counter()

    @property  # type: ignore[override]
    def t(self) -> int:
        _CountedBaseLoad.reads[id(self)] += 1
        return self._t

    @t.setter
    def t(self, value: int) -> None:
        self._t = value


def _visits_per_device(n: int) -> int:
    _CountedBaseLoad.reads.clear()
    ctx = context()
    devices = [_CountedBaseLoad(f"h{i}-base", BaseLoad.Params(), ctx, START // 900) for i in range(n)]
    f = DeviceFleet(devices, ctx, FoaSettings(), start=START, until=START + 3 * DAY)
    now = START
    while now is not None and now < START + DAY:  # a day of events: every device releases its offer at the same interval
        assert len(f.offers(now)) in (0, n)
        now = f.next_due(now)
    return max(_CountedBaseLoad.reads[id(d)] for d in devices)


def test_offers_released_at_one_interval_visit_each_device_once_not_once_per_offer():
    # an FOA of 1,000 households releases thousands of offers at noon; each release used to
    # simulate every device "up to now" again, visiting all of them per offer
    assert _visits_per_device(40) == _visits_per_device(5)
