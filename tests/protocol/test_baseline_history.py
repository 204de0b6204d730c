"""Baselines from metering history through the aggregator: an X-of-Y contract settles by the
offers' default while the history is too short (said once, never raising), and from the
aggregator's own metering history once it has enough days."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, execute_all, offer
from vmenergy.flexoffer import FlexOffer
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.billing import metering_history
from vmenergy.protocol.engine import Note
from vmenergy.protocol.messages import Measurement
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.protocol.records import AggOffer

DAY = 86400
CONTRACT = {"baseline": {"method": "x_of_y", "x": 1, "y": 2}, "tolerance": {"absolute_kwh": 0.01},
            "reward": {"per_kwh_energy_flexibility": 0.02}}


def later(fo: FlexOffer, days: int, i: int) -> FlexOffer:
    per = DAY // fo.resolution
    return replace(fo, id=f"{fo.id}-d{days}", creation_time=fo.creation_time + days * DAY,
                   acceptance_before=fo.acceptance_before + days * DAY,
                   assignment_before=fo.assignment_before + days * DAY,
                   start_after=fo.start_after + days * per, start_before=fo.start_before + days * per,
                   baseline=replace(fo.baseline, start=fo.baseline.start + days * per))


def test_x_of_y_without_enough_history_settles_by_the_offers_default_says_so_once_then_uses_history():
    agg = AggregatorEngine(AGG, AggregatorConfig(contract=CONTRACT))
    p = ProsumerEngine("p0@localhost", AGG)
    net = Net(agg, p)
    notes: list[Note] = []
    real_take = net.take

    def take(sender, effects):
        effects = list(effects)
        notes.extend(e for e in effects if isinstance(e, Note) and sender == AGG)
        real_take(sender, effects)

    net.take = take  # type: ignore[method-assign]
    base = offer("ev-overnight", 0)
    for day in range(4):
        now = NOW + day * DAY
        net.take(p.jid, p.add_offer(later(base, day, 0), now, now))
        net.run(now)
        for t in range(now, now + DAY, 900):  # a day of ticks: plan, execute, settle
            net.tick(t)
            if net.executions:
                execute_all(net, t)
    assert agg.counts() == {"settled": 4}
    said = [n for n in notes if n.event == "baseline"]
    assert len(said) == 1 and "needs 2 days of metering history, the aggregator has 0" in said[0].fields["why"]
    settled = [n for n in notes if n.event == "settled"]
    # days 0 and 1 have less than 2 days of history before them; days 2 and 3 have it
    assert [n.fields["baseline_used"] for n in settled] == ["offer", "offer", "x_of_y", "x_of_y"]


def rec(owner: str, start: int, energy) -> AggOffer:
    fo = offer("ev-overnight", 0)
    return AggOffer(fo, owner, 0, measurement=Measurement(f"m-{owner}-{start}", fo.id, start, tuple(energy)))


def test_metering_history_is_the_same_intervals_on_previous_days_oldest_first():
    per = 96
    recs = [rec("a", 1000 - 2 * per, [1.0, 2.0]), rec("a", 1000 - per + 1, [5.0]), rec("b", 1000 - 2 * per - 3, [0.5])]
    hist, have = metering_history(["a", "b"], 1000, 1002, 900, 2, recs)
    assert have == 2
    assert hist.shape == (2, 2, 2)
    assert hist[0].tolist() == [[1.0, 2.0], [0.0, 5.0]]
    assert hist[1].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # b metered before the window: idle in it
    none, have = metering_history(["a", "b"], 1000, 1002, 900, 3, recs)
    assert none is None and have == 2
