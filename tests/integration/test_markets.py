"""Every market mechanism through the agents on Prosody: each ``scenarios/market-*.toml`` runs as a
swarm, clears volume from the aggregators' own bids, answers every bid with a reason, and the
summary says what cleared and who was paid what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import run_to_done
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration


def run_scenario(server, tmp_path: Path, name: str, prefix: str):
    """The scenario file with every agent name prefixed (accounts live on a server shared by the
    whole test session), run to its end; (summary, plan, run folder)."""
    text = (ROOT / "scenarios" / f"{name}.toml").read_text()
    path = tmp_path / f"{name}.toml"
    names = [line.split('"')[1] for line in text.splitlines() if line.startswith(("name = ", "aggregator = "))]
    for n in sorted(set(names), key=len, reverse=True):
        text = text.replace(f'"{n}"', f'"{prefix}{n}"')
    path.write_text(text)
    return run_to_done(path, tmp_path / "run", server, timeout=300)


def market_ledger(plan):
    (market,) = plan.by_role("market")
    return read_ledger(market.store)


def test_two_sided_pool_clears_aggregators_orders_and_rejects_out_of_merit_ones_with_the_reason(prosody_server,
                                                                                                 tmp_path):
    summary, plan, _ = run_scenario(prosody_server, tmp_path, "market-two-sided", "ts-")
    (m,) = summary["market"]["markets"]
    assert m["mechanism"] == "two-sided" and m["cleared_kwh"] > 0
    ledger = market_ledger(plan)
    bids = list(ledger.values("bids"))
    retailer = [b for b in bids if b.participant.startswith("ts-retailer")]
    cheapskate = [b for b in bids if b.participant.startswith("ts-cheapskate")]
    assert retailer and cheapskate
    assert all(b.bid.offer is None and b.bid.volume > 0 for b in bids)  # price-volume orders, not flex-offers
    assert any(b.status == "accepted" for b in retailer)
    # the cheapskate values energy below every seller: each of its orders says so
    assert {b.clearing.reason for b in cheapskate} == {"out of merit: no seller at or below its limit price"}
    (paid,) = m["paid"]
    assert paid["participant"].startswith("ts-retailer") and paid["energy_kwh"] == pytest.approx(m["cleared_kwh"])
    assert paid["total"]["cents"] < 0  # it bought energy: it pays the market
    # it metered its delivery to the market: every cleared order, imbalance billed beyond the cut-off
    cleared = [b for b in retailer if b.status in ("accepted", "partial")]
    assert all(b.metered is not None for b in cleared)
    assert paid["imbalance_kwh"] > 0 and paid["imbalance"]["cents"] < 0
    assert -paid["imbalance"]["cents"] == sum(b.imbalance_cents for b in cleared)


def test_one_sided_pool_reserves_in_merit_order_and_activates_both_paid(prosody_server, tmp_path):
    summary, plan, run = run_scenario(prosody_server, tmp_path, "market-one-sided", "os-")
    (m,) = summary["market"]["markets"]
    assert m["mechanism"] == "one-sided" and m["cleared_kwh"] > 0
    ledger = market_ledger(plan)
    bids = list(ledger.values("bids"))
    dear = [b for b in bids if b.participant.startswith("os-dear-flex")]
    cheap = [b for b in bids if b.participant.startswith("os-cheap-flex")]
    assert dear and all(b.status == "rejected" and "above the buyer's cut-off 0.1" in b.clearing.reason for b in dear)
    reserved = [b for b in cheap if b.reservation is not None]
    assert reserved and all(b.activation is not None for b in reserved)
    (paid,) = m["paid"]
    assert paid["reserved"]["cents"] > 0 and paid["activated"]["cents"] > 0  # both paid to the aggregator
    assert paid["activated_kwh"] == pytest.approx(paid["reserved_kwh"] / 2, rel=1e-6)
    # the aggregator moved its members' schedules by the activations (updated assignments,
    # every final schedule still feasible: checked by the reconciliation above)
    schedules = [json.loads(line) for line in (run / "schedules.jsonl").read_text().splitlines()]
    assert any(s.get("update_id", 0) > 0 for s in schedules)


def test_implicit_capacity_respects_the_link_and_prices_each_zone_on_the_wire(prosody_server, tmp_path):
    summary, plan, _ = run_scenario(prosody_server, tmp_path, "market-implicit-capacity", "ic-")
    (m,) = summary["market"]["markets"]
    assert m["mechanism"] == "implicit-capacity" and m["cleared_kwh"] > 0
    ledger = market_ledger(plan)
    assert dict(ledger.table("zones")) == {"ic-north-agg@localhost": "north", "ic-south-agg@localhost": "south"}
    south: dict[tuple[str, int], float] = {}
    prices: dict[str, set] = {"north": set(), "south": set()}
    for b in ledger.values("bids"):
        assert b.status == "accepted", b.clearing
        zone = ledger.table("zones")[b.participant]
        prices[zone].add((b.bid.session_id, round(b.clearing.clearing_price, 6)))
        if zone == "south":  # all its energy comes over the link: never more than 4 kWh an interval
            s = b.clearing.schedule
            for k, e in enumerate(b.bid.offer.profiles[s.profile].spread(s.energy)):
                south[(b.bid.session_id, s.start + k)] = south.get((b.bid.session_id, s.start + k), 0.0) + e
    assert south and max(south.values()) <= 4.0 + 1e-6
    # the clearings of one session carry a different price in each zone: the south pays the transport
    north_by_session = dict(prices["north"])
    assert any(p > north_by_session[sid] for sid, p in prices["south"] if sid in north_by_session)


def test_direct_trading_schedules_priced_offers_and_pays_prosumers_at_their_offer_price(prosody_server, tmp_path):
    summary, plan, _ = run_scenario(prosody_server, tmp_path, "market-direct", "dt-")
    offers = summary["offers"]
    # the EVs carry prices and are traded; the dishwashers carry none, and are refused saying so
    assert offers["by_prosumers"] == {"settled": 6, "rejected": 6}, offers
    (agg,) = plan.by_role("aggregator")
    ledger = read_ledger(agg.store)
    recs = list(ledger.values("offers"))
    assert {r.note for r in recs if r.offer.state.value == "rejected"} == {
        "prices: missing; the direct trading rule needs the offer's prices per slice"}
    traded = [r for r in recs if r.schedule is not None]
    assert traded and all(r.aggregate_id == "(single)" for r in traded)
    # moved off the 22:00 default into the cheap night, and billed by the offer's price
    assert any(r.schedule.start != r.offer.baseline.start for r in traded)
    bills = [b for _, b in ledger.values("bills")]
    assert bills and all("offer_price" in {line.code for line in b.lines} for b in bills)


def test_prosumers_trade_their_schedules_peer_to_peer_in_a_two_sided_pool(prosody_server, tmp_path):
    summary, plan, _ = run_scenario(prosody_server, tmp_path, "market-peer-to-peer", "pp-")
    (m,) = summary["market"]["markets"]
    assert m["mechanism"] == "two-sided" and m["cleared_kwh"] > 0
    ledger = market_ledger(plan)
    assert sorted(ledger.table("participants")) == sorted(a.jid for a in plan.by_role("prosumer"))
    cleared = [b for b in ledger.values("bids") if b.status in ("accepted", "partial")]
    # no supplier: every kWh a roof sold, an office bought, at one price per interval
    sold = sum(b.clearing.volume for b in cleared if b.bid.side == "sell")
    bought = sum(b.clearing.volume for b in cleared if b.bid.side == "buy")
    assert sold == pytest.approx(bought) and sold > 0
    prices: dict[int, set] = {}
    for b in cleared:
        prices.setdefault(b.bid.start, set()).add(round(b.clearing.price, 9))
    assert all(len(p) == 1 and 0.04 <= next(iter(p)) <= 0.20 for p in prices.values())
    paid = {r["participant"].split("@")[0]: r["total"]["cents"] for r in m["paid"]}
    assert all(v > 0 for k, v in paid.items() if k.startswith("pp-roof"))
    assert all(v < 0 for k, v in paid.items() if k.startswith("pp-office"))


def test_many_to_many_clears_flex_offer_bids_and_bills_metered_imbalance(prosody_server, tmp_path):
    summary, plan, _ = run_scenario(prosody_server, tmp_path, "market-many-to-many", "mm-")
    (m,) = summary["market"]["markets"]
    assert m["mechanism"] == "many-to-many" and m["cleared_kwh"] > 0
    bids = list(market_ledger(plan).values("bids"))
    assert bids and all(b.bid.offer is not None for b in bids)
    assert all(b.bid.offer.prices.slices[0].up == pytest.approx(0.28 * 0.95) for b in bids)
    cleared = [b for b in bids if b.status == "accepted"]
    assert cleared and all(b.metered is not None for b in cleared)  # metered over the cleared schedule
    (paid,) = m["paid"]
    assert paid["imbalance"]["cents"] == -sum(b.imbalance_cents for b in cleared) < 0
