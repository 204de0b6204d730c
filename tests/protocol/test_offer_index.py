"""The aggregator's offer index: the same answers as scanning every offer, and no scan of the
offers it holds on a message, a tick with nothing due, or its status line."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Optional

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, LATER, NOW, execute_all, offer
from vmenergy.flexoffer import State
from vmenergy.protocol.aggregator import AGG_OFFERS, AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import ANSWERS, META
from vmenergy.protocol.ledger import TableView
from vmenergy.protocol.messages import Ack, OfferMessage
from vmenergy.protocol.prosumer import PROSUMER_OFFERS, ProsumerEngine


# -- reference implementations: what the aggregator computed by scanning, before the index --------
def ref_counts(agg: AggregatorEngine) -> dict[str, int]:
    return dict(Counter(r.offer.state.value for r in agg.ledger[AGG_OFFERS].values()))


def ref_expiry_due(agg: AggregatorEngine) -> Optional[int]:
    times = [agg._assignment_deadline(r.offer) + 1 for r in agg.ledger[AGG_OFFERS].values()
             if r.offer.state is State.ACCEPTED and r.aggregate_id is None]
    return min(times) if times else None


def ref_settleable(agg: AggregatorEngine, now: int) -> set[str]:
    out = set()
    for key, rec in agg.ledger[AGG_OFFERS].items():
        if rec.bill_id is not None or rec.schedule is None or not rec.schedule_confirmed:
            continue
        end = (rec.schedule.start + rec.offer.profiles[rec.schedule.profile].duration) * rec.offer.resolution
        if rec.measurement is not None or now >= end + agg.config.settle_after:
            out.add(key)
    return out


def ref_expired(agg: AggregatorEngine, now: int) -> set[str]:
    return {k for k, r in agg.ledger[AGG_OFFERS].items() if r.offer.state is State.ACCEPTED
            and r.aggregate_id is None and now > agg._assignment_deadline(r.offer)}


def agrees(agg: AggregatorEngine, now: int) -> None:
    assert agg.counts() == ref_counts(agg)
    assert agg._expiry_due(now) == ref_expiry_due(agg)
    assert set(agg.index.settleable(now)) == ref_settleable(agg, now)
    assert set(agg.index.expired(now)) == ref_expired(agg, now)
    due = agg._settlement_due(now)
    assert (due is None) == (not any(True for _ in agg.index.unbilled))
    if due is not None:  # due now exactly when something is ready to settle
        assert (due <= now) == bool(ref_settleable(agg, now))


def test_index_gives_the_same_answers_as_a_scan_through_a_whole_lifecycle_and_a_restart():
    agg = AggregatorEngine(AGG, AggregatorConfig())
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(12)]
    net = Net(agg, *pros)
    # the index is checked after every single write of the offers table, mid-step too
    writes = []
    agg.ledger.watch(AGG_OFFERS, lambda key, old, new: writes.append(key))
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), NOW, NOW))
    net.run(NOW)
    agrees(agg, NOW)
    # two prosumers are away during the round: their offers stay open, then expire
    net.presence("p0@localhost", False, NOW)
    net.presence("p1@localhost", False, NOW)
    agrees(agg, NOW)
    net.tick(NOW)
    agrees(agg, NOW)
    assert agg.counts().get("accepted") == 2
    # half of the rest are executed and measured, the others never report
    measured = [(s, e) for s, e in net.executions if int(s[1:].split("@")[0]) % 2 == 0]
    net.executions = measured
    execute_all(net, NOW + 60)
    agrees(agg, NOW + 60)
    expiries = 0
    while (deadline := ref_expiry_due(agg)) is not None:  # the two open offers expire in turn
        agrees(agg, deadline - 1)
        agrees(agg, deadline)
        net.tick(deadline)
        agrees(agg, deadline)
        expiries += 1
    assert expiries == 2
    assert agg.counts().get("rejected") == 2 and ref_expiry_due(agg) is None
    agrees(agg, LATER)
    # a restart rebuilds the index from the ledger alone
    again = AggregatorEngine(AGG, AggregatorConfig(), ledger=agg.ledger)
    agrees(again, LATER)
    net.engines[AGG] = again
    net.tick(LATER)
    agrees(again, LATER)
    assert again.counts() == {"settled": 10, "rejected": 2}
    assert writes  # the watcher saw the writes


class _Scans:
    """Counts whole-table reads of the given tables (values, items, keys, iteration)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
        self.n: Counter = Counter()
        for method in ("values", "items", "keys", "__iter__"):
            original = getattr(TableView, method)

            def counting(view, _original=original, _method=method):
                if view._table.name in names:
                    self.n[view._table.name, _method] += 1
                return _original(view)

            monkeypatch.setattr(TableView, method, counting)


def _holding(n: int) -> tuple[AggregatorEngine, Net]:
    """An aggregator holding ``n`` offers (half accepted and open, half settled), none due soon."""
    agg = AggregatorEngine(AGG, AggregatorConfig(cycle=10 * 86400))
    p = ProsumerEngine("p@localhost", AGG)
    net = Net(agg, p)
    base = offer("ev-overnight", 0)
    for i in range(n):
        net.take(p.jid, p.add_offer(replace(base, id=f"o-{i}", issuer=p.jid), NOW, NOW))
    net.run(NOW)
    offers = agg.ledger[AGG_OFFERS]
    for key in list(offers.keys())[: n // 2]:  # settled long ago: what a day leaves behind
        rec = offers.require(key)
        offers.put(key, replace(rec, offer=replace(rec.offer, state=State.SETTLED), aggregate_id="old", bill_id="b"))
    agg.ledger[META].put("next_cycle", NOW + 86400)  # the last round just ran
    agg.ledger.take_changes()
    assert len(agg.ledger[ANSWERS]) == n  # an answer kept per offer received
    return agg, net


@pytest.mark.parametrize("held", [100, 2000])
def test_a_message_a_quiet_tick_and_the_status_line_scan_none_of_the_offers_held(monkeypatch, held):
    agg, net = _holding(held)
    assert agg.counts() == {"accepted": held // 2, "settled": held // 2}
    scans = _Scans(monkeypatch, AGG_OFFERS.name, ANSWERS.name)
    now = NOW + 60
    fo = replace(offer("ev-overnight", 0), id="one-more", issuer="p@localhost")
    effects = agg.receive("p@localhost", OfferMessage("insert", fo.id, fo, fo.version), now)
    assert any(getattr(e, "msg", None) is not None for e in effects)
    due = agg.next_due(now)
    assert due is not None and due > now  # nothing due: the round is far, the deadlines later
    assert agg.tick(now) == []
    agg.status()
    assert agg.counts()["accepted"] == held // 2 + 1
    assert scans.n == Counter(), f"whole-table reads with {held} offers held: {dict(scans.n)}"


# -- the prosumer: offers not sent yet ---------------------------------------------------------


def _ref_unsent(p: ProsumerEngine) -> dict:
    """The scan the prosumer's release step made before its index: initial offers, table order."""
    return {k: r.release for k, r in p.ledger[PROSUMER_OFFERS].items() if r.state is State.INITIAL}


def test_the_prosumers_unsent_offers_are_those_a_scan_finds_in_the_same_order_and_after_a_restart():
    p = ProsumerEngine("p@localhost", AGG)
    base = replace(offer("ev-overnight", 0), issuer="p@localhost")
    releases = [NOW + 600, NOW, NOW + 300, NOW, NOW + 900]
    for i, release in enumerate(releases):
        p.add_offer(replace(base, id=f"o-{i}"), release, NOW)
        assert p._unsent == _ref_unsent(p) and list(p._unsent) == list(_ref_unsent(p))
    assert p.on_next_due(NOW) == NOW + 300  # o-1 and o-3 went out at once
    p.add_offer(replace(base, id="o-2", label="changed"), NOW + 450, NOW)  # still unsent: updated in place
    assert list(p._unsent) == list(_ref_unsent(p)) == ["o-0", "o-2", "o-4"]
    p.withdraw("o-4", NOW)
    assert p._unsent == _ref_unsent(p)
    again = ProsumerEngine("p@localhost", AGG, ledger=p.ledger)
    assert list(again._unsent) == list(_ref_unsent(p))
    sent = [e.msg.offer_id for e in again.on_tick(NOW + 600) if isinstance(getattr(e, "msg", None), OfferMessage)]
    assert sent == ["o-0", "o-2"]  # both due: sent in the table's order, as the scan sent them
    assert again._unsent == {} == _ref_unsent(again) and again.on_next_due(NOW + 600) is None


def _prosumer_holding(n: int):
    """A prosumer that sent ``n`` offers (ids o-0 ...), its changes flushed; and the base offer."""
    p = ProsumerEngine("p@localhost", AGG)
    base = replace(offer("ev-overnight", 0), issuer="p@localhost")
    for i in range(n):
        p.add_offer(replace(base, id=f"o-{i}"), NOW, NOW)
    p.ledger.take_changes()
    return p, base


def test_a_prosumers_message_and_quiet_tick_scan_none_of_its_offers(monkeypatch):
    p, base = _prosumer_holding(200)
    scans = _Scans(monkeypatch, PROSUMER_OFFERS.name)
    fo = replace(base, id="one-more")
    p.add_offer(fo, NOW + 60, NOW + 60)
    p.receive(AGG, Ack("flexoffer", "o-7", "accepted", None, 0), NOW + 60)
    assert p.on_next_due(NOW + 60) is None and p.next_due(NOW + 60) is not None
    p.tick(NOW + 61)
    assert scans.n == Counter(), f"whole-table reads: {dict(scans.n)}"


def _ref_prosumer_counts(p: ProsumerEngine) -> dict[str, int]:
    """The scan the prosumer's counts made before they were kept: offers by state."""
    return dict(Counter(r.state.value for r in p.ledger[PROSUMER_OFFERS].values()))


def test_the_prosumers_counts_by_state_are_a_scans_through_a_whole_lifecycle_and_after_a_restart():
    agg = AggregatorEngine(AGG, AggregatorConfig())
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(6)]
    net = Net(agg, *pros)
    checked = []

    def agree(p: ProsumerEngine) -> None:
        assert p.counts() == _ref_prosumer_counts(p)
        for state in State:
            assert p.count(state) == _ref_prosumer_counts(p).get(state.value, 0)
        checked.append(p.jid)

    for p in pros:  # checked after every single write of the offers table, mid-step too
        p.ledger.watch(PROSUMER_OFFERS, lambda key, old, new, p=p: agree(p))
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), NOW, NOW))
        net.take(p.jid, p.add_offer(replace(offer("ev-overnight", 0), id=f"later-{i}", issuer=p.jid), NOW + 3600, NOW))
    pros[0].withdraw("later-0", NOW)
    net.run(NOW)
    net.presence("p1@localhost", False, NOW)
    net.tick(NOW)
    execute_all(net, NOW + 60)
    net.tick(LATER)
    for p in pros:
        agree(p)
    states = Counter(s for p in pros for s in p.counts())
    assert {"settled", "withdrawn", "initial"} <= set(states), states  # the lifecycle was walked
    again = ProsumerEngine(pros[2].jid, AGG, ledger=pros[2].ledger)  # rebuilt from the ledger alone
    assert again.counts() == _ref_prosumer_counts(again) == pros[2].counts()
    assert len(checked) > 50


def test_the_prosumers_counts_and_status_line_scan_none_of_its_offers(monkeypatch):
    p, _ = _prosumer_holding(300)
    scans = _Scans(monkeypatch, PROSUMER_OFFERS.name)
    assert p.counts() == {"offered": 300}
    p.receive(AGG, Ack("flexoffer", "o-7", "accepted", None, 0), NOW + 60)
    assert p.counts() == {"offered": 299, "accepted": 1} and p.count(State.ACCEPTED) == 1
    assert p.status().startswith("300 offers")
    assert scans.n == Counter(), f"whole-table reads: {dict(scans.n)}"
