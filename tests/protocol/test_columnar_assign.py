"""A round's aggregates are disaggregated all at once, as columns (``split_many``), and the
assignments sent are the same as splitting one aggregate at a time."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer
from vmenergy.aggregation import AggregatedFlexOffer, disaggregate
from vmenergy.flexoffer import Schedule
from vmenergy.protocol import strategies
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.messages import AssignmentMessage
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.protocol.strategies import AggregatorStrategies, Disaggregation


class OneByOne(Disaggregation):
    """The reference: a disaggregation step without ``split_many`` (as a user's class would be)."""

    def split(self, aggregate: AggregatedFlexOffer, schedule: Schedule) -> Mapping[str, Schedule]:
        return disaggregate(aggregate, schedule)


KINDS = ("ev-overnight", "dishwasher-xor", "ev-overnight", "heatpump-polytope")


def run_round(disaggregation=None) -> list[AssignmentMessage]:
    config = AggregatorConfig()
    strat = AggregatorStrategies.from_config(config, AGG)
    if disaggregation is not None:
        strat = replace(strat, disaggregation=disaggregation)
    agg = AggregatorEngine(AGG, config, strategies=strat)
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(24)]
    net = Net(agg, *pros)
    for i, p in enumerate(pros):
        for j in range(2):
            fo = offer(KINDS[(i + j) % len(KINDS)], i)
            net.take(p.jid, p.add_offer(replace(fo, id=f"{fo.id}-{j}"), NOW, NOW))
    net.run(NOW)
    net.tick(NOW)
    assert len(agg.ledger.table("aggregates")) >= 2  # several aggregates in one round
    return [m for _, _, m in net.delivered if isinstance(m, AssignmentMessage)]


def test_columnar_assignments_equal_one_aggregate_at_a_time(monkeypatch):
    reference = run_round(OneByOne())
    calls = []
    original = strategies.disaggregate
    monkeypatch.setattr(strategies, "disaggregate", lambda *a, **kw: calls.append(a) or original(*a, **kw))
    columnar = run_round()
    assert calls == []  # the default step took the columnar path for the whole round
    assert len(columnar) == len(reference) >= 24
    key = lambda m: m.schedule.offer_id  # noqa: E731
    assert sorted(columnar, key=key) == sorted(reference, key=key)
    for m in columnar:  # what of_columns built is what the constructor accepts, field for field
        s = m.schedule
        assert Schedule(s.offer_id, s.start, s.energy, s.schedule_id, s.update_id, s.profile, s.resolution) == s
        assert all(type(e) is float for e in s.energy) and type(s.start) is int
