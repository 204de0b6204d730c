"""Algebraic properties: vectorised settlement == the plain-Python reference, to the cent, and
money reconciles for random populations."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vmenergy.settlement import assignments_from_offers, bills_to_json, settle
from vmenergy.settlement.bills import LINE_CODES
from tests.settlement.reference import settle_reference
from tests.settlement.synthetic import population

from .helpers import problems

import json


def _dense_flags(res, n, T):
    out = np.zeros((n, T), dtype=np.int64)
    out[res.flags.row, res.flags.interval - res.period_start] = res.flags.code
    return out


def _compare(res, ref, n, T):
    for i in range(n):
        for code in LINE_CODES:
            assert res.bills.amount[code][i] == ref["amount"][i][code], (i, code)
        assert res.bills.total[i] == ref["total"][i]
    for name, p in ref["participants"].items():
        got = res.participant(name)
        assert (got.revenue_cents, got.imbalance_cents, got.payouts_cents, got.margin_cents) == (
            p["revenue_cents"], p["imbalance_cents"], p["payouts_cents"], p["margin_cents"])
    for name in ref["quantities"][0]:
        want = np.array([q[name] for q in ref["quantities"]])
        got = res.quantities[name]
        if name == "value_offer_eur":  # computed only where a contract needs it
            mask = np.array([res.bills.kind(i) == "direct:offer" for i in range(n)])
            want, got = want[mask], got[mask]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(_dense_flags(res, n, T), np.array(ref["flags"], dtype=np.int64))


@settings(max_examples=60)
@given(problems(), st.integers(1, 5))
def test_vectorised_equals_reference_on_random_problems(problem, chunk):
    m, offers, schedules, contracts, contract_of, market = problem
    asg = assignments_from_offers(offers, schedules, m)
    res = settle(m, asg, contracts, contract_of, market, chunk=chunk)
    ref = settle_reference(m, asg, contracts, contract_of, market)
    _compare(res, ref, m.n, m.n_intervals)


@settings(max_examples=8)
@given(st.integers(0, 2**32 - 1), st.integers(20, 200), st.sampled_from([7, 64, 2048]))
def test_vectorised_equals_reference_on_synthetic_populations(seed, n, chunk):
    pop = population(n, seed=seed, n_intervals=96, history_days=10, gap_rate=0.01, spike_rate=0.005)
    asg = pop.assignments()
    res = settle(pop.meter, asg, pop.contracts, pop.contract_of, pop.market, chunk=chunk)
    ref = settle_reference(pop.meter, asg, pop.contracts, pop.contract_of, pop.market)
    _compare(res, ref, n, 96)


def _cents_half_up(x: Decimal) -> int:
    return int((x * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if x >= 0 else \
        -int((-x * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@settings(max_examples=40)
@given(problems(max_prosumers=8), st.integers(1, 4))
def test_payouts_plus_margin_equal_earnings_to_the_cent(problem, chunk):
    """Read the bills as a person would (the JSON export), add them up, and compare with the
    aggregator's earnings computed here from the market inputs in decimal arithmetic."""
    m, offers, schedules, contracts, contract_of, market = problem
    res = settle(m, assignments_from_offers(offers, schedules, m), contracts, contract_of, market, chunk=chunk)
    doc = json.loads(bills_to_json(res))
    for bill in doc["prosumer_bills"]:
        assert sum(ln["amount_cents"] for ln in bill["lines"]) == bill["total_cents"]
        assert Decimal(bill["total_eur"]) == sum(Decimal(ln["amount_eur"]) for ln in bill["lines"])
    by_market = {mr.participant: mr for mr in market}
    for pb in doc["participant_bills"]:
        name = pb["holder"]
        paid = sum(b["total_cents"] for b in doc["prosumer_bills"] if b["aggregator"] == name)
        mr = by_market.get(name)
        revenue = 0
        if mr is not None:
            revenue = _cents_half_up(sum(Decimal(float(p)) * abs(Decimal(float(s)))
                                         for p, s in zip(mr.price, mr.sold_kwh)))
        lines = {ln["code"]: ln["amount_cents"] for ln in pb["lines"]}
        assert lines["market_revenue"] == revenue
        earnings = revenue + lines["imbalance"]  # the imbalance line is a (non-positive) amount
        rec = pb["reconciliation"]
        assert rec["earnings_cents"] == earnings
        assert rec["payouts_cents"] == paid
        assert paid + rec["margin_cents"] == earnings
        assert pb["total_cents"] == rec["margin_cents"]
