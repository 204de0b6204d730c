"""Prosumer and aggregator engines without a server: lifecycle, reliability, security, presence,
restart from the store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conftest import EXAMPLES
from tests.protocol.net import Net
from vmenergy.devices.executor import SimulatedExecutor
from vmenergy.flexoffer import FlexOffer, Schedule, State
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Execute, Send
from vmenergy.protocol.messages import Ack, AssignmentMessage, BillMessage, Measurement, OfferMessage
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.store import Store

NOW = parse_utc("2026-11-22T18:30:00Z", "now")
LATER = parse_utc("2026-11-23T12:00:00Z", "later")
AGG = "agg@localhost"


def offer(name: str, i: int) -> FlexOffer:
    fo = FlexOffer.from_json((EXAMPLES / f"{name}.json").read_text())
    return replace(fo, id=f"{fo.id}-{i}", issuer=f"p{i}@localhost")


def setup(n: int = 4, config: AggregatorConfig = AggregatorConfig(), kinds=("ev-overnight", "dishwasher-xor")):
    agg = AggregatorEngine(AGG, config)
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(n)]
    net = Net(agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(kinds[i % len(kinds)], i), NOW, NOW))
    net.run(NOW)
    return agg, pros, net


def execute_all(net: Net, now: int, deviation: float = 0.0) -> None:
    ex = SimulatedExecutor(deviation=deviation)
    for sender, e in net.executions:
        net.take(sender, net.engines[sender].executed(e.offer.id, e.schedule.start, ex.meter(e.offer, e.schedule), now))
    net.executions.clear()
    net.run(now)


def test_full_lifecycle_in_plan_mode():
    agg, pros, net = setup()
    assert all(p.counts() == {"accepted": 1} for p in pros)
    net.tick(NOW)
    assert agg.counts() == {"assigned": 4}
    assert len(net.executions) == 4
    for sender, e in net.executions:
        assert e.offer.is_feasible(e.schedule), e.offer.check(e.schedule)
    execute_all(net, NOW + 60)
    assert agg.counts() == {"executed": 4}
    net.tick(LATER)
    assert agg.counts() == {"settled": 4}
    totals = []
    for p in pros:
        assert p.counts() == {"settled": 1}
        (bill,) = list(p.ledger.values("bills"))
        assert bill.total_cents == sum(line.amount_cents for line in bill.lines) >= 0
        assert [line.offer_id for line in bill.lines if line.code == "offer"] == [list(p.ledger.table("offers"))[0]]
        totals.append(bill.total_cents)
    # the EVs offered energy flexibility and are paid for it; what was paid out is what was sent
    assert totals[0] > 0 and totals[2] > 0
    assert sum(totals) == sum(b.total_cents for _, b in agg.ledger.values("bills"))
    # nothing left unanswered anywhere
    assert all(not e.pending() for e in net.engines.values())


def test_duplicate_offer_is_answered_again_without_acting_again():
    agg, pros, net = setup(1)
    p = pros[0]
    (entry,) = list(p.ledger.values("outbox")) or [None]
    assert entry is None  # acked and removed
    fo = p.ledger.get("offers", "fo-ev-17-0").offer
    msg = OfferMessage("insert", fo.id, replace(fo, state=State.OFFERED))
    first = agg.receive(p.jid, msg, NOW)
    before = dict(agg.ledger.table("offers"))
    again = agg.receive(p.jid, msg, NOW)
    acks = [e.msg for e in again if isinstance(e, Send)]
    assert len(acks) == 1 and acks[0].accepted
    assert agg.ledger.table("offers") == before
    assert [e.msg for e in first if isinstance(e, Send)] == acks


def test_lost_messages_are_resent_with_the_same_id_until_acked():
    agg = AggregatorEngine(AGG)
    p = ProsumerEngine("p0@localhost", AGG, resend_after=30)
    net = Net(agg, p)
    dropped = []

    def drop(sender, send):  # lose the first offer and the first ack
        kinds = [type(d.msg) for d in dropped]
        if type(send.msg) in (OfferMessage, Ack) and type(send.msg) not in kinds:
            dropped.append(send)
            return True
        return False

    net.drop = drop
    net.take(p.jid, p.add_offer(offer("ev-overnight", 0), NOW, NOW))
    net.run(NOW)
    assert len(dropped) == 1 and isinstance(dropped[0].msg, OfferMessage)
    net.tick(NOW + 10)  # too early to resend
    assert p.counts() == {"offered": 1}
    net.tick(NOW + 31)  # resent; this time the ack is dropped
    assert len(dropped) == 2 and isinstance(dropped[1].msg, Ack)
    assert agg.counts() == {"accepted": 1}
    net.tick(NOW + 31 + 60)  # backoff doubled: resent again, duplicate answered, accepted once
    assert p.counts() == {"accepted": 1} and agg.counts() == {"accepted": 1}
    assert not p.pending()


def test_unenrolled_prosumer_and_foreign_assignments_are_rejected_and_change_nothing():
    agg = AggregatorEngine(AGG, AggregatorConfig(enrolment=("p0@localhost",)))
    p0, p1 = ProsumerEngine("p0@localhost", AGG), ProsumerEngine("p1@localhost", AGG)
    net = Net(agg, p0, p1)
    net.take(p0.jid, p0.add_offer(offer("ev-overnight", 0), NOW, NOW))
    net.take(p1.jid, p1.add_offer(offer("ev-overnight", 1), NOW, NOW))
    net.run(NOW)
    assert p0.counts() == {"accepted": 1}
    assert p1.counts() == {"rejected": 1}
    assert "not enrolled" in p1.ledger.get("offers", "fo-ev-17-1").reason
    assert set(agg.ledger.table("offers")) == {"fo-ev-17-0"}
    assert "answers" not in agg.ledger.tables or all("p1" not in k for k in agg.ledger.table("answers"))
    # an assignment from someone who is not the aggregator
    fo = p0.ledger.get("offers", "fo-ev-17-0").offer
    s = Schedule(fo.id, fo.start_after, (8.0, 8.0, 8.0, 8.0), "s-x")
    out = p0.receive("mallory@localhost", AssignmentMessage(s), NOW)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and "not this prosumer's aggregator" in ack.reason
    assert p0.ledger.get("offers", fo.id).schedule is None


@pytest.mark.parametrize(
    "schedule_kw, reason",
    [
        (dict(energy=(20.0, 8.0, 8.0, 8.0)), "infeasible: energy[0]"),
        (dict(start=0), "infeasible: start"),
        (dict(offer_id="fo-nope"), "unknown offer"),
    ],
)
def test_prosumer_refuses_bad_assignments(schedule_kw, reason):
    agg, (p,), net = setup(1)
    fo = p.ledger.get("offers", "fo-ev-17-0").offer
    kw = dict(offer_id=fo.id, start=fo.start_after, energy=(8.0, 8.0, 8.0, 8.0), schedule_id="s-1")
    kw.update(schedule_kw)
    out = p.receive(AGG, AssignmentMessage(Schedule(**kw)), NOW)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and ack.reason.startswith(reason)
    assert not [e for e in out if isinstance(e, Execute)]


def test_stale_assignment_update_is_refused():
    agg, (p,), net = setup(1)
    net.tick(NOW)
    s = p.ledger.get("offers", "fo-ev-17-0").schedule
    out = p.receive(AGG, AssignmentMessage(replace(s, schedule_id="s-other", update_id=s.update_id)), NOW)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and "stale update" in ack.reason


def test_aggregator_rejects_late_and_mismatched_offers():
    agg = AggregatorEngine(AGG)
    fo = offer("ev-overnight", 0)
    late = parse_utc("2026-11-22T19:30:00Z", "t")  # after acceptance_before 19:00
    out = agg.receive("p0@localhost", OfferMessage("insert", fo.id, fo), late)
    assert "acceptance deadline passed" in [e.msg for e in out if isinstance(e, Send)][0].reason
    out = agg.receive("p9@localhost", OfferMessage("insert", fo.id, fo), NOW)
    assert "is not the sender" in [e.msg for e in out if isinstance(e, Send)][0].reason
    pv = offer("pv-producer", 0)  # its window (11-22 10:00) is already over at 18:30
    out = agg.receive("p0@localhost", OfferMessage("insert", pv.id, pv), NOW)
    assert "starts too soon" in [e.msg for e in out if isinstance(e, Send)][0].reason
    assert not agg.ledger.table("offers")


def test_offline_prosumer_offers_leave_new_aggregates_and_return():
    agg, pros, net = setup(3)
    net.presence("p1@localhost", False, NOW)
    net.tick(NOW)
    assert agg.ledger.get("offers", "fo-dw-9-1").offer.state is State.ACCEPTED  # left out
    assert agg.counts() == {"accepted": 1, "assigned": 2}
    net.presence("p1@localhost", True, NOW + 60)
    net.tick(NOW + 60 + 900)  # next cycle: it is back in
    assert agg.counts() == {"assigned": 3}
    assert pros[1].counts() == {"assigned": 1}


def test_assignment_to_offline_prosumer_is_queued_not_lost():
    agg, pros, net = setup(2)
    net.tick(NOW)  # assigned
    # a re-plan while p0 is offline: new update queued
    net.presence("p0@localhost", False, NOW + 1)
    rec = agg.ledger.get("offers", "fo-ev-17-0")
    newer = replace(rec.schedule, update_id=rec.schedule.update_id + 1)
    effects = agg.send_reliable("p0@localhost", AssignmentMessage(newer), NOW + 1)
    assert not [e for e in effects if isinstance(e, Send)]
    assert agg.pending("p0@localhost")[0].attempts == 0
    net.tick(NOW + 1000)  # still offline: nothing sent
    assert agg.pending("p0@localhost")[0].attempts == 0
    net.presence("p0@localhost", True, NOW + 2000)
    assert pros[0].ledger.get("offers", "fo-ev-17-0").schedule.update_id == newer.update_id
    assert not agg.pending("p0@localhost")


def test_restart_from_the_store_resumes_the_lifecycle(tmp_path):
    agg, pros, net = setup(4)
    store = Store(tmp_path / "agg.sqlite")
    store.flush(agg.ledger.take_changes())
    net.tick(NOW)  # aggregate, plan, assign
    store.flush(agg.ledger.take_changes())
    execute_all(net, NOW + 60)
    store.flush(agg.ledger.take_changes())
    # the aggregator process dies; a new one starts from the store
    store.close()
    store2 = Store(tmp_path / "agg.sqlite")
    agg2 = AggregatorEngine(AGG, ledger=store2.load())
    assert agg2.counts() == {"executed": 4}
    net.engines[AGG] = agg2
    net.tick(LATER)
    assert agg2.counts() == {"settled": 4}
    assert all(p.counts() == {"settled": 1} for p in pros)


def test_restart_between_bid_and_clearing_rebuilds_aggregates(tmp_path):
    """An aggregate waiting for its schedule is rebuilt identically from its members."""
    agg, pros, net = setup(4, AggregatorConfig(upstream="parent", upstream_jid="top@localhost"))
    net.tick(NOW)  # aggregates offered to the (absent) parent
    recs = list(agg.ledger.values("aggregates"))
    assert recs and all(r.status == "offered" for r in recs)
    store = Store(tmp_path / "a.sqlite")
    store.flush(agg.ledger.take_changes())
    agg2 = AggregatorEngine(AGG, AggregatorConfig(upstream="parent", upstream_jid="top@localhost"), ledger=store.load())
    assert set(agg2._aggregates) == {r.aggregate_id for r in recs}
    # the parent assigns each aggregate its baseline-free feasible schedule: members get theirs
    for r in recs:
        p0 = r.offer.profiles[0]
        s = Schedule(r.aggregate_id, r.offer.start_after, tuple(sl.min for sl in p0.slices), f"s-{r.aggregate_id}")
        out = agg2.receive("top@localhost", AssignmentMessage(s), NOW + 10)
        assert [e.msg for e in out if isinstance(e, Send)][0].accepted
    assert agg2.counts() == {"assigned": 4}


def test_measurement_and_bill_rules():
    agg, (p,), net = setup(1)
    net.tick(NOW)
    rec = agg.ledger.get("offers", "fo-ev-17-0")
    out = agg.receive("p0@localhost", Measurement("m-x", "fo-unknown", rec.schedule.start, (1.0,)), NOW)
    assert "unknown offer" in [e.msg for e in out if isinstance(e, Send)][0].reason
    out = agg.receive("p0@localhost", Measurement("m-y", rec.offer.id, rec.schedule.start, (1.0,), 3600), NOW)
    assert "resolution" in [e.msg for e in out if isinstance(e, Send)][0].reason
    out = p.receive("mallory@localhost", BillMessage("b-1", 0, 1, ()), NOW)
    assert not [e.msg for e in out if isinstance(e, Send)][0].accepted
    assert not p.ledger.table("bills")


def test_overdue_measurement_is_settled_unverified_then_corrected():
    agg, (p,), net = setup(1)
    net.tick(NOW)
    (sender, e), = net.executions
    net.executions.clear()
    end = (e.schedule.start + e.offer.profiles[0].duration) * e.offer.resolution
    # the device ran, but its measurement is lost on the way (the aggregator was down)
    net.drop = lambda s, send: isinstance(send.msg, Measurement)
    ex = SimulatedExecutor(deviation=0.1)
    net.take(p.jid, p.executed(e.offer.id, e.schedule.start, ex.meter(e.offer, e.schedule), end))
    net.run(end)
    net.tick(end + agg.config.settle_after + 1)  # overdue: settled as unverified
    (first,) = list(p.ledger.values("bills"))
    assert agg.counts() == {"settled": 1} and p.counts() == {"settled": 1}
    unverified = [line for line in first.lines if line.code == "unverified"]
    assert unverified and "0 intervals" not in unverified[0].description
    # the resent measurement arrives: a correction bill for exactly the difference it makes
    net.drop = None
    net.tick(end + agg.config.settle_after + 10_000)
    bills = sorted(p.ledger.values("bills"), key=lambda b: b.bill_id)
    assert len(bills) == 2
    correction = [b for b in bills if b.bill_id != first.bill_id][0]
    assert all(line.description.startswith("correction") for line in correction.lines if line.code != "offer")
    assert agg.ledger.get("offers", e.offer.id).measurement is not None
    assert agg.counts() == {"settled": 1}
    assert sum(b.total_cents for b in bills) == sum(b.total_cents for _, b in agg.ledger.values("bills"))


def test_offers_that_cannot_be_aggregated_are_scheduled_on_their_own():
    from vmenergy.protocol.aggregator import SINGLE

    agg, pros, net = setup(4, AggregatorConfig(aggregation={"xor": "exclude"}))
    net.tick(NOW)
    assert agg.counts() == {"assigned": 4}
    singles = {r.offer.id for r in agg.ledger.values("offers") if r.aggregate_id == SINGLE}
    assert singles == {"fo-dw-9-1", "fo-dw-9-3"}  # the exclusive-OR dishwashers
    for _, e in net.executions:
        assert e.offer.is_feasible(e.schedule)


def test_resend_rules_a_busy_peer_is_not_flooded_and_a_lost_message_goes_again_at_once():
    p = ProsumerEngine("p0@localhost", AGG, resend_after=30, max_backoff=600)
    fos = [offer("ev-overnight", 0), replace(offer("ev-overnight", 0), id="second")]
    p.add_offer(fos[0], NOW, NOW)  # sent at NOW
    p.add_offer(fos[1], NOW + 5, NOW + 5)  # sent at NOW + 5
    # the aggregator answers the second one (sent later) but not the first: the first was lost
    ack = Ack("flexoffer", "second", "accepted", None, 0)
    p.receive(AGG, ack, NOW + 6)
    resent = [e for e in p.tick(NOW + 7) if isinstance(e, Send)]
    assert [e.msg.offer_id for e in resent] == ["fo-ev-17-0"]
    # a peer that keeps answering other messages is busy, not gone: no resend before max_backoff
    q = ProsumerEngine("p1@localhost", AGG, resend_after=30, max_backoff=600)
    q.add_offer(replace(offer("ev-overnight", 1), id="a"), NOW, NOW)
    q.add_offer(replace(offer("ev-overnight", 1), id="b"), NOW, NOW)
    q.receive(AGG, Ack("flexoffer", "b", "accepted", None, 0), NOW + 40)  # b sent at the same time
    assert not [e for e in q.tick(NOW + 100) if isinstance(e, Send)]
    assert [e.msg.offer_id for e in q.tick(NOW + 600) if isinstance(e, Send)] == ["a"]
    # silence: the usual timeout
    r = ProsumerEngine("p2@localhost", AGG, resend_after=30, max_backoff=600)
    r.add_offer(offer("ev-overnight", 2), NOW, NOW)
    assert not [e for e in r.tick(NOW + 29) if isinstance(e, Send)]
    assert len([e for e in r.tick(NOW + 30) if isinstance(e, Send)]) == 1


def test_withdrawing_an_offer_before_it_is_aggregated():
    agg, (p,), net = setup(1)
    fo_id = "fo-ev-17-0"
    net.take(p.jid, p.withdraw(fo_id, NOW + 10))
    net.run(NOW + 10)
    assert p.counts() == {"withdrawn": 1}
    assert agg.ledger.get("offers", fo_id).offer.state.value == "withdrawn"
    net.tick(NOW + 20)  # a withdrawn offer is not planned
    assert not net.executions and not agg.ledger.table("aggregates")
    # once assigned, an offer can no longer be withdrawn
    agg2, (p2,), net2 = setup(1)
    net2.tick(NOW)
    out = p2.withdraw(fo_id, NOW + 30)
    assert [e.event for e in out] == ["withdraw-refused"] and p2.counts() == {"assigned": 1}


def test_observers_read_a_store_that_is_still_being_created(tmp_path):
    import sqlite3

    from vmenergy.store import read_ledger

    path = tmp_path / "new.sqlite"
    assert read_ledger(path) is None
    sqlite3.connect(path).close()  # the agent has opened the file but not made its schema
    assert read_ledger(path) is None
    with Store(path, readonly=True) as observer:
        assert observer.count("outbox") == 0
    writer = Store(path)
    writer.flush([("outbox", "k", 1)])
    assert read_ledger(path).get("outbox", "k") == 1
    with Store(path, readonly=True) as observer:
        assert observer.count("outbox") == 1


def test_a_device_fault_reaches_the_aggregator_reliably_once_and_only_from_enrolled_prosumers():
    from vmenergy.protocol.aggregator import DEVICE_FAULTS

    agg, pros, net = setup(2, AggregatorConfig(enrolment=("p0@localhost", "p1@localhost")))
    p = pros[0]
    lost = []
    net.drop = lambda sender, send: not lost and not lost.append(send)  # the first report is lost
    net.take(p.jid, p.device_fault("fo-ev-0", "wallbox", "timeout", "no answer within 1 s", NOW))
    net.run(NOW)
    assert agg.ledger[DEVICE_FAULTS].values() == []
    net.drop = None
    net.tick(NOW + 600)  # resent with the same id
    net.tick(NOW + 1200)
    (entry,) = agg.ledger[DEVICE_FAULTS].values()
    sender, report = entry
    assert sender == "p0@localhost" and (report.offer_id, report.device, report.kind) == ("fo-ev-0", "wallbox",
                                                                                          "timeout")
    again = agg.receive("p0@localhost", report, NOW + 1300)  # a repeat is answered and changes nothing
    assert not any(getattr(e, "event", None) == "device-fault" for e in again)
    assert any(isinstance(e, Send) and isinstance(e.msg, Ack) and e.msg.accepted for e in again)
    assert len(agg.ledger[DEVICE_FAULTS].values()) == 1
    # a second fault is a new report
    net.take(p.jid, p.device_fault("fo-ev-0", "wallbox", "gone", "link lost", NOW + 1400))
    net.run(NOW + 1400)
    assert len(agg.ledger[DEVICE_FAULTS].values()) == 2
    # a stranger's report is refused
    from vmenergy.protocol.messages import DeviceFaultReport

    effects = agg.receive("mallory@localhost", DeviceFaultReport("df-1", "x", "d", "gone", "r", NOW), NOW)
    assert any(isinstance(e, Send) and isinstance(e.msg, Ack) and e.msg.status == "rejected" for e in effects)
    assert len(agg.ledger[DEVICE_FAULTS].values()) == 2


def test_a_settlement_of_more_offers_than_a_bill_names_goes_out_in_several_bills(monkeypatch):
    # a bill names at most BILL_OFFER_LINES offers (the day's bill of an FOA of 1,000 households
    # was over the server's stanza size limit); the statement's amounts are in the first one
    from vmenergy.protocol import billing

    monkeypatch.setattr(billing, "BILL_OFFER_LINES", 3)
    agg = AggregatorEngine(AGG, AggregatorConfig())
    p = ProsumerEngine("p0@localhost", AGG)
    net = Net(agg, p)
    for i in range(7):
        net.take(p.jid, p.add_offer(replace(offer("ev-overnight", i), issuer=p.jid), NOW, NOW))
    net.run(NOW)
    net.tick(NOW)
    execute_all(net, NOW + 60)
    net.tick(LATER)
    assert agg.counts() == {"settled": 7} and p.counts() == {"settled": 7}
    bills = sorted(p.ledger.values("bills"), key=lambda b: int(b.bill_id.rsplit("-", 1)[1]))
    named = [[ln.offer_id for ln in b.lines if ln.code == "offer"] for b in bills]
    assert [len(n) for n in named] == [3, 3, 1]
    assert sorted(sum(named, [])) == sorted(r.offer.id for r in p.ledger.values("offers"))
    assert all(ln.code == "offer" for b in bills[1:] for ln in b.lines) and all(b.total_cents == 0 for b in bills[1:])
    assert any(ln.code != "offer" for ln in bills[0].lines)
    assert sum(b.total_cents for b in bills) == sum(b.total_cents for _, b in agg.ledger.values("bills"))
