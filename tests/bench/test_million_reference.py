"""The million-devices run's reference (bench/million_reference.py): the devices' offers through
the plan's tree of aggregators by the core engine in one process."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from tests.conftest import ROOT
from vmenergy.flexoffer import FlexOffer, State

sys.path.insert(0, str(ROOT / "bench"))

from million_reference import through_the_tree  # noqa: E402

EXAMPLES = ROOT / "scenarios" / "examples"
START = 1_795_370_400  # 2026-11-22T18:00:00Z: before every example offer's window
LEAF = {"upstream": "parent", "cycle": 900, "objective": {"kind": "peak"}, "upstream_jid": "regional@localhost"}
TOP = {"upstream": "market", "cycle": 900, "objective": {"kind": "peak"}, "bid_prices": {"up": 0.3, "down": 0.02},
       "upstream_jid": "market@localhost"}


def devices(n: int) -> tuple[list[FlexOffer], dict[str, str]]:
    """``n`` accepted offers (copies of two examples) from FOAs split between leaves north and
    south, each FOA's offer ids alike (as two leaves' aggregate ids are), and who owns each FOA."""
    kinds = [FlexOffer.from_json((EXAMPLES / f"{k}.json").read_text()) for k in ("ev-overnight", "dishwasher-xor")]
    offers, owner = [], {}
    for i in range(n):
        foa = f"foa{i % 4}@localhost"
        owner[foa] = ("north", "south")[i % 2] + "@localhost"
        fo = kinds[i % 2]
        offers.append(replace(fo, id=f"o-{i}", issuer=foa, state=State.ACCEPTED))
    return offers, owner


def test_every_device_offer_gets_a_feasible_schedule_through_leaves_and_their_top():
    offers, owner = devices(40)
    aggregators = {"regional@localhost": TOP, "north@localhost": LEAF, "south@localhost": LEAF}
    schedules, counts = through_the_tree(offers, owner, aggregators, START)
    assert set(schedules) == {fo.id for fo in offers}
    assert all(fo.is_feasible(schedules[fo.id]) for fo in offers)
    assert counts["offers"] == 40 and counts["leaf_aggregates"] >= 2 and counts["top_aggregates"] >= 1
    assert counts["leaf_aggregates"] + counts["alone"] < 40  # the leaves did aggregate


def test_tops_with_foas_of_their_own_plan_their_aggregates_themselves():
    """city-1k's shape: two aggregators, each under the market, each with its own FOAs."""
    offers, owner = devices(12)
    aggregators = {"north@localhost": TOP, "south@localhost": TOP}
    schedules, counts = through_the_tree(offers, owner, aggregators, START)
    assert all(fo.is_feasible(schedules[fo.id]) for fo in offers)
    assert counts["top_aggregates"] == 0 and counts["planned"] == counts["leaf_aggregates"] + counts["alone"]


def test_an_offer_whose_issuer_has_no_aggregator_is_an_error_naming_it():
    offers, owner = devices(4)
    del owner["foa3@localhost"]
    with pytest.raises(ValueError, match=r"offers\[o-3\]\.issuer"):
        through_the_tree(offers, owner, {"north@localhost": TOP, "south@localhost": TOP}, START)


def test_a_tree_deeper_than_two_levels_is_refused():
    offers, owner = devices(4)
    mid = {**LEAF, "upstream_jid": "regional@localhost"}
    low = {**LEAF, "upstream_jid": "mid@localhost"}
    with pytest.raises(ValueError, match="two levels"):
        through_the_tree(offers, owner, {"regional@localhost": TOP, "mid@localhost": mid, "north@localhost": low,
                                         "south@localhost": low}, START)
