"""The report holds one copy of an offer that a prosumer's store and its aggregator's both hold
(each store is decoded on its own): profiles identical to the bit are shared, nothing else is,
and the report's files are the same bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.test_engines import offer
from tests.report.test_report import DONE
from tests.report.world import full_run
from vmenergy.flexoffer import Polytope, Slice
from vmenergy.flexoffer.checked import already_checked
from vmenergy.protocol.engine import Ledger
from vmenergy.runtime.report import run_data, write_run_folder
from vmenergy.runtime.report.collect import SharedOffers
from vmenergy.store.codec import dumps, loads


@pytest.fixture(scope="module")
def world():
    return full_run()


def as_stored(ledgers: dict[str, Ledger]) -> dict[str, Ledger]:
    """Each ledger as the report reads it from its store: every record encoded and decoded on its
    own, so no two agents share an object."""
    out = {}
    for jid, led in ledgers.items():
        copy = Ledger()
        with already_checked():
            for table, rows in led.tables.items():
                for key, value in rows.items():
                    copy.load(table, key, loads(dumps(value)))
        out[jid] = copy
    return out


def test_an_offer_both_stores_hold_is_held_once_and_the_files_are_the_same_bytes(world, tmp_path):
    stored = as_stored(world.ledgers())
    run = run_data(world.plan, stored)
    pros = {r.offer.id: r.offer for p in run.prosumers for r in p.offers}
    aggs = {r.offer.id: r.offer for a in run.aggregators for r in a.offers}
    both = set(pros) & set(aggs)
    assert len(both) == 3  # the settled ones (the PV offer was refused on receipt)
    for oid in both:
        assert pros[oid].profiles is aggs[oid].profiles
        assert pros[oid] is not aggs[oid] and pros[oid].state is aggs[oid].state
    distinct = {id(fo.profiles) for fo in [*pros.values(), *aggs.values()]}
    assert len(distinct) == len(set(pros) | set(aggs))  # one tuple of profiles per offer
    # the same report as from the engines' own objects
    write_run_folder(run, tmp_path / "stored", DONE, {})
    write_run_folder(world.run(), tmp_path / "engines", DONE, {})
    for name in ("summary.json", "offers.jsonl", "schedules.jsonl", "bills.csv", "timeseries.csv"):
        assert (tmp_path / "stored" / name).read_bytes() == (tmp_path / "engines" / name).read_bytes(), name


def _copy(fo):
    """``fo`` decoded again: equal, not the same objects."""
    with already_checked():
        return loads(dumps(fo))


def test_profiles_are_shared_only_when_the_same_id_version_and_bits():
    shared = SharedOffers()
    first = offer("ev-overnight", 0)
    assert shared.offer(first) is first
    again = shared.offer(_copy(first))
    assert again.profiles is first.profiles and again == first
    # 0.0 and -0.0 are == but not the same number in the report's files: not shared
    p = first.profiles[0]
    signed = replace(first, profiles=(replace(p, slices=(Slice(p.slices[0].duration, -0.0, p.slices[0].max),
                                                         *p.slices[1:])),))
    assert signed == first and shared.offer(signed).profiles is signed.profiles
    # another version of the offer, or another offer, is its own
    assert shared.offer(replace(_copy(first), version=1)).profiles is not first.profiles
    other = replace(_copy(first), id="another")
    assert shared.offer(other).profiles is other.profiles


def test_polytope_rows_that_differ_only_in_a_zeros_sign_are_not_shared():
    shared = SharedOffers()
    first = offer("ev-overnight", 0)
    n = len(first.profiles[0].slices)
    rows = tuple(tuple(1.0 if j <= i else 0.0 for j in range(n)) for i in range(n))
    a = replace(first, profiles=(replace(first.profiles[0], polytope=Polytope(rows, (50.0,) * n)),))
    flipped = tuple(tuple(-0.0 if (i, j) == (0, 1) else x for j, x in enumerate(r)) for i, r in enumerate(rows))
    b = replace(first, profiles=(replace(first.profiles[0], polytope=Polytope(flipped, (50.0,) * n)),))
    assert a == b
    assert shared.offer(a) is a
    assert shared.offer(b).profiles is b.profiles
    assert shared.offer(_copy(a)).profiles is a.profiles
