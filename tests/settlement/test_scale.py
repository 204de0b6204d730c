"""A larger synthetic population end to end (excluded from the default run: -m slow)."""

from __future__ import annotations

import numpy as np
import pytest

from vmenergy.settlement import MeterFlag, kpis, settle
from tests.settlement.reference import settle_reference
from tests.settlement.synthetic import population


@pytest.mark.slow
def test_two_hundred_thousand_prosumers_reconcile_and_match_the_reference_on_a_sample():
    pop = population(200_000, seed=7, history_days=10)
    res = settle(pop.meter, pop.assignments(), pop.contracts, pop.contract_of, pop.market)
    (p,) = res.participants
    assert p.payouts_cents == int(res.bills.total.sum())
    assert p.payouts_cents + p.margin_cents == p.revenue_cents - p.imbalance_cents
    assert len(res.flags) > 0 and res.flags.count(MeterFlag.GAP) > 0  # the synthetic meters have gaps
    # a 2,000-prosumer population of the same kind: every bill equals the plain-Python reference
    sub = population(2_000, seed=7, history_days=10)
    ref = settle_reference(sub.meter, sub.assignments(), sub.contracts, sub.contract_of, sub.market)
    small = settle(sub.meter, sub.assignments(), sub.contracts, sub.contract_of, sub.market)
    np.testing.assert_array_equal(small.bills.total, np.array(ref["total"]))
    report = kpis(res)
    assert report.flexible_capacity_mw > 0 and len(report.projections) == 3
