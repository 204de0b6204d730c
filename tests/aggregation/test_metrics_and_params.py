"""Hand-computed flexibility-loss metrics, and refusals of bad parameters."""

from __future__ import annotations

import pytest

from tests.aggregation.helpers import offer, prof
from vmenergy.aggregation import AggregationParams, aggregate, flexibility_loss
from vmenergy.flexoffer import FlexOfferError, State

WIDE = dict(est_tolerance=4, tf_tolerance=8)


def test_time_flexibility_loss_counts_what_each_member_gives_up():
    offers = [offer(f"o{i}", 0, tf) for i, tf in enumerate([4, 0, 4, 0])]
    start = flexibility_loss(aggregate(offers, AggregationParams(method="start", max_offers=2, **WIDE)))
    assert (start.n_members, start.n_aggregates, start.compression_ratio) == (4, 2, 2.0)
    assert (start.time_before, start.time_after, start.time_loss) == (8, 0, 8)
    assert (start.time_loss_per_offer, start.time_loss_ratio) == (2.0, 1.0)
    assert (start.energy_before, start.energy_after, start.energy_loss) == (4.0, 4.0, 0.0)
    assert (start.product_before, start.product_after, start.product_loss_ratio) == (8.0, 0.0, 1.0)
    flex = flexibility_loss(aggregate(offers, AggregationParams(method="flex", max_offers=2, **WIDE)))
    assert (flex.time_after, flex.time_loss, flex.product_loss_ratio) == (8, 0, 0.0)
    assert flex.compression_ratio == start.compression_ratio


def test_energy_flexibility_loss_counts_boxes_shrunk_to_constraints_and_dropped_profiles():
    t = offer("t", 0, 2, profiles=[prof([(1, 0.0, 2.0), (1, 0.0, 2.0)], total=(3.0, 3.5))])
    m = flexibility_loss(aggregate([t], AggregationParams(**WIDE)))
    assert (m.energy_before, m.energy_after, m.energy_loss, m.energy_loss_ratio) == (4.0, 0.5, 3.5, 0.875)
    assert m.time_loss == 0
    two = offer("two", 0, 4, profiles=[prof([(1, 0.0, 1.0)]), prof([(1, 0.0, 3.0)])])
    assert flexibility_loss(aggregate([two], AggregationParams(**WIDE))).energy_loss == 0.0
    assert flexibility_loss(aggregate([two], AggregationParams(xor="first", **WIDE))).energy_loss == 2.0


def test_excluded_offers_are_counted_apart():
    offers = [offer("a", 0, 2), offer("r", 0, 5, state=State.REJECTED)]
    m = flexibility_loss(aggregate(offers, AggregationParams(**WIDE)))
    assert (m.n_offers, m.n_members, m.n_excluded) == (2, 1, 1)
    assert (m.excluded_time, m.excluded_energy) == (5.0, 1.0)
    assert m.time_before == 2 and "1 excluded" in str(m)


def test_metrics_of_an_empty_run_are_zero_and_plain_offers_are_refused():
    m = flexibility_loss(aggregate([], AggregationParams()))
    assert m.n_aggregates == 0 and m.compression_ratio == 0.0 and m.time_loss_ratio == 0.0
    with pytest.raises(FlexOfferError) as e:
        flexibility_loss([offer("a", 0, 0)])
    assert e.value.path == "aggregates"


@pytest.mark.parametrize(
    "kw, path",
    [
        ({"method": "balance"}, "params.method"),
        ({"est_tolerance": 0}, "params.est_tolerance"),
        ({"tf_tolerance": 1.5}, "params.tf_tolerance"),
        ({"max_offers": 0}, "params.max_offers"),
        ({"max_energy": -1.0}, "params.max_energy"),
        ({"max_energy": float("inf")}, "params.max_energy"),
        ({"max_length": 10_001}, "params.max_length"),
        ({"xor": "all"}, "params.xor"),
        ({"discrete": "round"}, "params.discrete"),
        ({"constrained": "sum"}, "params.constrained"),
        ({"now": "12:00"}, "params.now"),
        ({"states": {"nonsense"}}, "params.states"),
        ({"id_prefix": "has space"}, "params.id_prefix"),
        ({"issuer": "a b"}, "params.issuer"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(kw, path):
    with pytest.raises(FlexOfferError) as e:
        AggregationParams(**kw)
    assert e.value.path == path and e.value.reason


def test_default_parameters():
    p = AggregationParams()
    assert (p.method, p.est_tolerance, p.tf_tolerance, p.max_offers, p.max_energy) == ("flex", 4, 4, 1000, None)
    assert p.states == {State.INITIAL, State.OFFERED, State.ACCEPTED}
    assert AggregationParams(states={"accepted"}).states == {State.ACCEPTED}
