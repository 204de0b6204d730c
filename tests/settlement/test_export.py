"""Bills and KPIs as JSON and CSV text."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import numpy as np

from vmenergy.flexoffer import Schedule
from vmenergy.settlement import (
    Contract,
    MarketSales,
    bills_to_csv,
    bills_to_json,
    kpis,
    kpis_to_csv,
    kpis_to_json,
)
from vmenergy.settlement.contracts import DirectPricing, Reward
from vmenergy.settlement.export import BILL_CSV_COLUMNS

from .helpers import AGG, DAY0, meter, offer, settle_objects


def _result():
    offers = [offer("a", "h0", [(1, 0.0, 2.0)], DAY0, DAY0 + 2, default=[1.0]),
              offer("b", "h1", [(2, 0.0, 2.0)], DAY0, DAY0 + 2, default=[1.0], prices=(0.2, 0.1))]
    schedules = [Schedule(offer_id="a", start=DAY0 + 2, energy=(2.0,)),
                 Schedule(offer_id="b", start=DAY0 + 1, energy=(2.0,))]
    contracts = [Contract(id="d", mode="delegated", aggregator=AGG,
                          reward=Reward(per_kwh_flexible=0.013, per_activation=0.1, revenue_share=0.5)),
                 Contract(id="x", mode="direct", aggregator=AGG, pricing=DirectPricing("offer", fee_per_kwh=0.01))]
    market = MarketSales(AGG, sold_kwh=np.array([-1.0, 0.0, 2.0, 0.5]), price=np.full(4, 0.15))
    m = meter([[0.0, 0.0, 2.0, 0.0], [0.5, 1.0, 1.0, 0.0]])
    return settle_objects(offers, schedules, m, contracts, ["d", "x"], market), [offers[0], offers[1]]


def test_bills_json_reads_back_and_adds_up():
    res, _ = _result()
    doc = json.loads(bills_to_json(res, indent=2))
    assert doc["period_start"] == "2026-11-23T00:00:00Z" and doc["period_end"] == "2026-11-23T01:00:00Z"
    assert [b["holder"] for b in doc["prosumer_bills"]] == ["h0", "h1"]
    assert [b["mode"] for b in doc["prosumer_bills"]] == ["delegated", "direct:offer"]
    for b in doc["prosumer_bills"] + doc["participant_bills"]:
        assert sum(ln["amount_cents"] for ln in b["lines"]) == b["total_cents"]
        assert all(Decimal(ln["amount_eur"]) * 100 == ln["amount_cents"] for ln in b["lines"])
    (p,) = doc["participant_bills"]
    assert p["reconciliation"]["balanced"] is True
    assert p["reconciliation"]["payouts_cents"] == sum(b["total_cents"] for b in doc["prosumer_bills"])
    assert "flags" in doc and doc["flag_counts"]["gap"] == 0


def test_bills_csv_has_one_row_per_line_and_a_total_per_bill():
    res, _ = _result()
    rows = list(csv.DictReader(io.StringIO(bills_to_csv(res))))
    assert tuple(rows[0].keys()) == BILL_CSV_COLUMNS
    by_holder: dict[str, list[dict]] = {}
    for r in rows:
        by_holder.setdefault(r["holder"], []).append(r)
    assert set(by_holder) == {"h0", "h1", AGG}
    for holder, rs in by_holder.items():
        assert rs[-1]["code"] == "total"
        assert sum(int(r["amount_cents"]) for r in rs[:-1]) == int(rs[-1]["amount_cents"])
    h0 = {r["code"]: r for r in by_holder["h0"]}
    assert h0["flexible_energy"]["quantity"] == "2.0" and h0["flexible_energy"]["rate_eur"] == "0.013"
    assert h0["flexible_energy"]["amount_eur"] == "0.03"  # 2 kWh x 0.013 = 0.026 -> 0.03
    only_h1 = list(csv.DictReader(io.StringIO(bills_to_csv(res, rows=[1], participants=False))))
    assert {r["holder"] for r in only_h1} == {"h1"}


def test_kpis_json_and_csv_tables():
    res, offers = _result()
    report = kpis(res, offers)
    doc = json.loads(kpis_to_json(report))
    assert doc["hours"] == ["2026-11-23T00:00:00Z"] and doc["revenue_eur"] == report.revenue_eur
    assert [p["scale"] for p in doc["projections"]] == [10, 100, 1000]
    hourly = list(csv.DictReader(io.StringIO(kpis_to_csv(report))))
    assert len(hourly) == 1 and float(hourly[0]["load_adaptability"]) == report.load_adaptability[0]
    summary = dict(csv.reader(io.StringIO(kpis_to_csv(report, "summary"))))
    assert summary["margin_eur"] == report.margin_eur and summary["participants"] == AGG
    proj = list(csv.DictReader(io.StringIO(kpis_to_csv(report, "projections"))))
    assert [int(p["scale"]) for p in proj] == [10, 100, 1000]
