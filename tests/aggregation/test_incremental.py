"""Incremental aggregation: hand-computed streams, refusals, and the property that it always
equals a from-scratch run over the current offers, touching only the changed cells."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregation.helpers import offer
from tests.aggregation.strategies import close_offer, params
from vmenergy.aggregation import AggregationParams, IncrementalAggregator, aggregate, flexibility_loss
from vmenergy.flexoffer import FlexOfferError, State

P = AggregationParams(method="flex", est_tolerance=4, tf_tolerance=4, max_offers=2)


def _view(aggs):
    """Everything that must agree, except the version (a from-scratch run starts at 0)."""
    out = []
    for a in aggs:
        members = [(m.offer_id, m.profile, m.offset, m.lo, m.hi) for m in a.members]
        out.append((dataclasses.replace(a.plain(), version=0), members))
    return out


def test_a_stream_reports_added_updated_and_removed_aggregates():
    inc = IncrementalAggregator(P)
    c = inc.insert(offer("a", 0, 1))
    assert [x.id for x in c.added] == ["agg-900-c-0-0-0"] and not c.updated and not c.removed
    c = inc.insert(offer("b", 1, 2))
    assert [x.id for x in c.updated] == ["agg-900-c-0-0-0"] and c.updated[0].version == 1
    c = inc.insert(offer("c", 1, 3))  # three members, max_offers 2: a second bin
    assert [x.id for x in c.added] == ["agg-900-c-0-0-1"] and not c.updated  # bin 0 keeps a and b
    other = inc.insert(offer("far", 40, 41))  # another cell: the first cell is not touched
    assert [x.id for x in other.added] == ["agg-900-c-40-0-0"] and not other.updated
    c = inc.delete("c")
    assert c.removed == ["agg-900-c-0-0-1"]
    c = inc.update(offer("b", 1, 2, [(1, 0.0, 2.0)], version=1))
    assert [x.id for x in c.updated] == ["agg-900-c-0-0-0"] and c.updated[0].version == 2
    assert c.updated[0].profiles[0].slices[1].max == 2.0
    c = inc.update(offer("b", 41, 42, version=2))  # moves to the other cell
    assert {x.id for x in c.updated} == {"agg-900-c-0-0-0", "agg-900-c-40-0-0"}
    c = inc.delete("a")
    assert c.removed == ["agg-900-c-0-0-0"]
    assert [x.member_ids for x in inc.aggregates] == [["far", "b"]]
    assert _view(inc.aggregates) == _view(aggregate(inc.offers, P))


def test_repeated_messages_change_nothing_and_bad_ones_are_refused():
    inc = IncrementalAggregator(P)
    a = offer("a", 0, 1)
    inc.insert(a)
    assert not inc.insert(a)  # the same insert again: idempotent
    assert not inc.update(a)
    with pytest.raises(FlexOfferError) as e:
        inc.insert(offer("a", 0, 2))
    assert e.value.path == "id" and "update" in e.value.reason
    with pytest.raises(FlexOfferError) as e:
        inc.update(offer("zz", 0, 2))
    assert e.value.path == "id"
    with pytest.raises(FlexOfferError) as e:
        inc.update(offer("a", 0, 2))  # content changed, version did not
    assert e.value.path == "version"
    with pytest.raises(FlexOfferError) as e:
        inc.delete("zz")
    assert e.value.path == "offer_id"
    with pytest.raises(FlexOfferError) as e:
        inc.insert({"id": "x"})
    assert e.value.path == "offer"
    with pytest.raises(FlexOfferError):
        IncrementalAggregator({"method": "flex"})


def test_offers_that_cannot_be_aggregated_are_reported_and_can_come_back():
    inc = IncrementalAggregator(P)
    c = inc.insert(offer("r", 0, 1, state=State.REJECTED))
    assert "state" in c.excluded["r"] and not inc.aggregates and "r" in inc.excluded
    c = inc.update(offer("r", 0, 1, state=State.OFFERED, version=1))
    assert [x.member_ids for x in c.added] == [["r"]] and inc.excluded == {}
    strict = IncrementalAggregator(AggregationParams(strict=True))
    with pytest.raises(FlexOfferError) as e:
        strict.insert(offer("r", 0, 1, state=State.REJECTED))
    assert e.value.path == "state" and "r" not in strict


def test_keys_keep_offers_apart_as_in_a_keyed_full_run():
    inc = IncrementalAggregator(P, keyed=True)
    inc.insert(offer("a", 0, 1), key="cp1")
    inc.insert(offer("b", 0, 1), key="cp2")
    inc.insert(offer("c", 0, 1), key="cp1")
    assert sorted(x.member_ids for x in inc.aggregates) == [["a", "c"], ["b"]]
    full = aggregate(inc.offers, P, keys=inc.keys)
    assert _view(inc.aggregates) == _view(full)
    inc.update(offer("b", 0, 1, version=1), key="cp1")  # a new key moves it
    assert _view(inc.aggregates) == _view(aggregate(inc.offers, P, keys=inc.keys))


def test_loss_metrics_of_the_incremental_aggregator_match_a_full_run():
    inc = IncrementalAggregator(P)
    offers = [offer(f"o{i}", i % 5, i % 5 + i % 7, [(1, 0.0, 1.0 + i % 3)]) for i in range(20)]
    for fo in offers:
        inc.insert(fo)
    inc.insert(offer("x", 0, 3, state=State.WITHDRAWN))
    a, b = inc.flexibility_loss(), flexibility_loss(aggregate(inc.offers, P))
    assert a == b


@st.composite
def streams(draw):
    """Operations on a pool of six ids; updates carry a higher version."""
    ops = []
    live: dict[str, int] = {}
    for step in range(draw(st.integers(1, 25))):
        oid = f"o{draw(st.integers(0, 5))}"
        key = draw(st.sampled_from([None, "cp1", "cp2"]))
        if oid in live and draw(st.integers(0, 2)) == 0:
            ops.append(("delete", oid, None))
            del live[oid]
        elif oid in live:
            live[oid] += 1
            fo = dataclasses.replace(draw(close_offer(oid)), version=live[oid])
            ops.append(("update", fo, key))
        else:
            fo = draw(close_offer(oid))
            live[oid] = fo.version
            ops.append(("insert", fo, key))
    return ops


@settings(max_examples=60)
@given(ops=streams(), p=params(), keyed=st.booleans())
def test_incremental_equals_from_scratch_and_reports_every_change(ops, p, keyed):
    inc = IncrementalAggregator(p, keyed=keyed)
    mirror: dict[str, object] = {}  # what a receiver of the changes would hold
    for op, arg, key in ops:
        before = {a.id: a for a in inc.aggregates}
        if op == "insert":
            changes = inc.insert(arg, key)
        elif op == "update":
            changes = inc.update(arg, key)
        else:
            changes = inc.delete(arg)
        for a in changes.added:
            assert a.id not in mirror
            mirror[a.id] = a
        for a in changes.updated:
            assert a.version > mirror[a.id].version
            mirror[a.id] = a
        for i in changes.removed:
            del mirror[i]
        now = {a.id: a for a in inc.aggregates}
        assert mirror == now and all(mirror[i] is now[i] for i in now)
        touched = {a.id for a in changes.added + changes.updated} | set(changes.removed)
        assert all(now[i] is before[i] for i in now if i not in touched)  # untouched cells kept
    full = aggregate(inc.offers, p, keys=inc.keys if keyed else None)
    assert _view(inc.aggregates) == _view(full)
    assert inc.excluded == full.excluded
    assert np.isclose(inc.flexibility_loss().time_loss, flexibility_loss(full).time_loss)
