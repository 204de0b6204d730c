"""Contracts are data: parsed from TOML/JSON text, validated with errors that name the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vmenergy.flexoffer import FlexOfferError, Schedule
from vmenergy.settlement import (
    Contract,
    MarketSales,
    SettlementError,
    assignments_from_offers,
    contracts_to_json,
    parse_contracts,
    settle,
)

from .helpers import AGG, DAY0, meter, offer

TOML = """
[[contracts]]
id = "homes-delegated-2026"
mode = "delegated"
aggregator = "agg@vme.localhost"
valid_from = 2026-01-01T00:00:00Z
valid_until = "2027-01-01T00:00:00Z"

[contracts.baseline]
method = "x_of_y"
x = 5
y = 10
select = "high"

[contracts.baseline.adjustment]
kind = "additive"
window = 4
gap = 1
cap_kwh = 0.5

[contracts.tolerance]
absolute_kwh = 0.05
relative = 0.10

[contracts.reward]
per_kwh_flexible = 0.01
per_hour_time_flexibility = 0.02
per_kwh_energy_flexibility = 0.005
per_activation = 0.10
revenue_share = 0.5

[contracts.penalty]
per_kwh = 0.05
cap_eur = 2.0
"""

JSON = """
{"contracts": [
  {"id": "ev-direct", "mode": "direct", "aggregator": "agg@vme.localhost",
   "baseline": {"method": "offer"},
   "tolerance": {"absolute_kwh": 0.02, "relative": 0.05},
   "pricing": {"source": "market", "fee_fraction": 0.2},
   "penalty": {"imbalance_factor": 1.0}}
]}
"""


def test_toml_contract_fields():
    (c,) = parse_contracts(TOML)
    assert c.mode == "delegated" and c.aggregator == AGG
    assert c.valid_from == 1767225600 and c.valid_until == 1798761600  # 2026-01-01, 2027-01-01 UTC
    assert (c.baseline.method, c.baseline.x, c.baseline.y, c.baseline.select) == ("x_of_y", 5, 10, "high")
    assert (c.baseline.adjustment.window, c.baseline.adjustment.gap, c.baseline.adjustment.cap_kwh) == (4, 1, 0.5)
    assert c.reward.revenue_share == 0.5 and c.reward.per_activation == 0.10
    assert c.penalty.cap_eur == 2.0 and c.pricing is None


def test_json_contract_and_defaults():
    (c,) = parse_contracts(JSON)
    assert c.mode == "direct" and c.pricing.source == "market" and c.pricing.fee_fraction == 0.2
    assert c.pricing.fee_per_kwh == 0.0 and c.reward is None
    assert c.penalty.per_kwh == 0.0 and c.penalty.imbalance_factor == 1.0


def test_round_trip_through_json_and_dicts():
    cs = parse_contracts(TOML) + parse_contracts(JSON)
    again = parse_contracts(contracts_to_json(cs))
    assert again == cs
    assert parse_contracts(json.loads(contracts_to_json(cs))) == cs
    assert parse_contracts(TOML.encode()) == parse_contracts(TOML)


def _one(extra: str = "", **fields) -> str:
    base = {"id": "c", "mode": "delegated", "aggregator": AGG}
    base.update(fields)
    return json.dumps({"contracts": [base]}) if not extra else extra


@pytest.mark.parametrize(
    "doc, path, reason",
    [
        (_one(reward={"revenue_shar": 0.5}), "contracts[0].reward.revenue_shar", "unknown field"),
        (_one(reward={"revenue_share": 1.5}), "contracts[0].reward.revenue_share", "[0, 1]"),
        (_one(reward={"per_activation": -0.1}), "contracts[0].reward.per_activation", "[0, 1000]"),
        (_one(reward={"per_activation": "0.1"}), "contracts[0].reward.per_activation", "must be a number"),
        (_one(reward={"per_activation": True}), "contracts[0].reward.per_activation", "must be a number"),
        (_one(baseline={"method": "x_of_y", "x": 6, "y": 5}), "contracts[0].baseline.x", "must not exceed y"),
        (_one(baseline={"method": "average"}), "contracts[0].baseline.method", "one of offer, x_of_y"),
        (_one(baseline={"method": "offer", "adjustment": {"window": 0}}), "contracts[0].baseline.adjustment.window",
         "[1, 10000]"),
        (_one(pricing={"source": "market"}), "contracts[0].pricing", "only for direct"),
        (_one(mode="direct", reward={}), "contracts[0].reward", "only for delegated"),
        (_one(mode="auction"), "contracts[0].mode", "one of delegated, direct"),
        (_one(currency="USD"), "contracts[0].currency", "only EUR"),
        (_one(valid_from="2026-02-01T00:00:00Z", valid_until="2026-01-01T00:00:00Z"), "contracts[0].valid_until",
         "after valid_from"),
        (_one(valid_from="2026-02-01 00:00"), "contracts[0].valid_from", "ISO 8601"),
        (_one(aggregator="two words"), "contracts[0].aggregator", "no whitespace"),
        (_one(tolerance=[0.1]), "contracts[0].tolerance", "table/object"),
        (json.dumps({"contracts": [{"mode": "direct", "aggregator": AGG}]}), "contracts[0].id", "required"),
        (json.dumps({"contracts": [{"id": "a", "mode": "direct", "aggregator": AGG}] * 2}), "contracts[1].id",
         "duplicate id 'a' (also contracts[0])"),
        (json.dumps({"contracts": [], "members": {}}), "members", "unknown top-level field"),
        ('{"contracts": [{"id": "a", "mode": "direct", "aggregator": "x", "penalty": {"per_kwh": NaN}}]}',
         "(document)", "not valid JSON"),
        ("[[contracts]\nid = 'x'", "(document)", "not valid TOML"),
    ],
)
def test_invalid_contracts_name_the_field(doc, path, reason):
    with pytest.raises(SettlementError) as e:
        parse_contracts(doc)
    assert e.value.path == path
    assert reason in e.value.reason
    assert isinstance(e.value, FlexOfferError)  # callers catching the core's one error type catch this too


def _problem():
    fo = offer("o", "h0", [(1, 0.0, 1.0)], DAY0, DAY0 + 1, default=[0.0])
    m = meter([[0.0, 1.0]])
    return m, assignments_from_offers([fo], [Schedule(offer_id="o", start=DAY0 + 1, energy=(1.0,))], m)


def test_settle_refuses_a_contract_not_valid_for_the_period():
    m, asg = _problem()
    late = Contract(id="late", mode="delegated", aggregator=AGG, valid_from=(DAY0 + 1) * 900)
    with pytest.raises(SettlementError) as e:
        settle(m, asg, [late], ["late"])
    assert e.value.path == "contract_of[0]" and "not valid for the whole period" in e.value.reason


@pytest.mark.parametrize(
    "contract_of, path, reason",
    [(["nope"], "contract_of[0]", "unknown contract 'nope'"), ([3], "contract_of[0]", "no contract #3"),
     (["c", "c"], "contract_of", "one contract per prosumer")],
)
def test_settle_refuses_bad_contract_assignment(contract_of, path, reason):
    m, asg = _problem()
    with pytest.raises(SettlementError) as e:
        settle(m, asg, [Contract(id="c", mode="delegated", aggregator=AGG)], contract_of)
    assert e.value.path == path and reason in e.value.reason


def test_settle_refuses_too_little_history_and_foreign_market_sales():
    m, asg = _problem()
    xy = Contract(id="xy", mode="delegated", aggregator=AGG, baseline=parse_contracts(TOML)[0].baseline)
    with pytest.raises(SettlementError) as e:
        settle(m, asg, [xy], ["xy"])
    assert e.value.path == "meter.history" and "needs 10 days" in e.value.reason
    c = Contract(id="c", mode="delegated", aggregator=AGG)
    with pytest.raises(SettlementError) as e:
        settle(m, asg, [c], ["c"], MarketSales("other", np.zeros(2), np.zeros(2)))
    assert e.value.path == "market[0].participant"
    with pytest.raises(SettlementError) as e:
        settle(m, asg, [c], ["c"], MarketSales(AGG, np.zeros(3), np.zeros(3)))
    assert e.value.path == f"market[{AGG}].sold_kwh" and "2 intervals" in e.value.reason
    with pytest.raises(SettlementError) as e:
        MarketSales(AGG, np.array([0.0, np.nan]), np.zeros(2))
    assert e.value.path == f"market[{AGG}].sold_kwh[1]"
