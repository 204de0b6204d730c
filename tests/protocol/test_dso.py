"""The DSO and its aggregators without a server: requests, replies, orders, metering and
verified settlement, rejections, and a stranger's messages."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.protocol.net import Net
from vmenergy.devices.executor import SimulatedExecutor
from vmenergy.flexoffer import Baseline, FlexOffer, FlexOfferError, Profile, Slice, TotalEnergy
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.dso import DSO_ORDERS, DsoConfig, DsoEngine, DsoOrder, verify
from vmenergy.protocol.flexrequests import FLEX_REPLIES
from vmenergy.protocol.gridload import default_load, place, schedule_load
from vmenergy.protocol.messages import (
    Ack,
    FlexOrderMessage,
    FlexReplyMessage,
    FlexRequestMessage,
    FlexSettlementMessage,
    Measurement,
)
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.settlement.money import cents

NOW = parse_utc("2026-11-22T12:00:00Z", "now")
RES = 900
AGG, DSO = "agg@localhost", "dso@localhost"
EVENING = parse_utc("2026-11-22T17:00:00Z", "t") // RES  # 17:00


def ev(i: int) -> FlexOffer:
    """An EV home at 17:00 that charges 11 kWh in each of its first two hours by default (the
    evening peak), but may charge its 16 kWh any time until 23:00."""
    slices = tuple(Slice(4, 0.0, 11.0) for _ in range(4))
    return FlexOffer(
        id=f"ev-{i}", issuer=f"p{i}@localhost", resolution=RES, creation_time=NOW,
        acceptance_before=NOW + 3600, assignment_before=parse_utc("2026-11-22T16:45:00Z", "t"),
        start_after=EVENING, start_before=EVENING + 8,
        profiles=(Profile(slices, total=TotalEnergy(16.0, 16.0)),),
        baseline=Baseline((11.0, 5.0, 0.0, 0.0), 0, EVENING))


def setup(n: int = 4, limit: float = 6.0, **dso_kw):
    points = {"feeder-1": {"limit": limit}}
    dso = DsoEngine(DSO, DsoConfig(points=points, aggregators={AGG: ["feeder-1"]}, horizon=12 * 3600,
                                   respond_within=900, **dso_kw))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(n)]
    config = AggregatorConfig(locations={p.jid: "feeder-1" for p in pros}, dsos={"feeder-1": DSO})
    agg = AggregatorEngine(AGG, config)
    net = Net(dso, agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(ev(i), NOW, NOW))
    net.run(NOW)
    return dso, agg, pros, net


def load(offer_schedules) -> np.ndarray:
    out = np.zeros(48)
    for fo, s in offer_schedules:
        place(out, EVENING - 4, *schedule_load(fo, s))
    return out


def meter_all(net: Net, now: int) -> None:
    ex = SimulatedExecutor(deviation=0.0)
    for sender, e in net.executions:
        net.take(sender, net.engines[sender].executed(e.offer.id, e.schedule.start, ex.meter(e.offer, e.schedule), now))
    net.executions.clear()
    net.run(now)


def test_offers_behind_a_managed_point_wait_for_the_dso_instead_of_being_planned():
    dso, agg, pros, net = setup()
    net.take(agg.jid, agg.tick(NOW))
    net.run(NOW)
    assert agg.counts() == {"accepted": 4} and not net.executions


def test_request_reply_order_keeps_the_scheduled_load_under_the_limit():
    dso, agg, pros, net = setup(limit=10.0)
    net.tick(NOW)  # the DSO asks; the aggregator answers with its aggregates behind the point
    replies = [m for _, _, m in net.delivered if isinstance(m, FlexReplyMessage)]
    assert len(replies) == 1 and replies[0].offers
    # the prognosis: four EVs at 11 kWh in the first hour -> 11 kWh per interval
    assert max(replies[0].baseline) == pytest.approx(11.0)
    net.tick(NOW + 900)  # answers due: the DSO orders
    orders = [m for _, _, m in net.delivered if isinstance(m, FlexOrderMessage)]
    assert [o.status for o in orders] == ["ordered"] and orders[0].ordered_kwh > 0
    assert dso.cleared_kwh() == pytest.approx(orders[0].ordered_kwh)
    assert agg.counts() == {"assigned": 4}
    scheduled = load([(e.offer, e.schedule) for _, e in net.executions])
    assert scheduled.max() <= 10.0 * 0.95 + 1e-6  # the limit less the safety margin
    assert all(e.offer.is_feasible(e.schedule) for _, e in net.executions)


def settled(limit: float = 10.0):
    """The whole flow: request, reply, order, execution and metering (no noise), settlement."""
    dso, agg, pros, net = setup(limit=limit)
    net.tick(NOW)
    net.tick(NOW + 900)
    meter_all(net, parse_utc("2026-11-23T00:00:00Z", "t"))
    net.tick(parse_utc("2026-11-23T00:00:00Z", "t"))
    net.tick(parse_utc("2026-11-23T00:01:00Z", "t"))
    return dso, agg, pros, net


def test_delivery_is_verified_and_paid_the_incentive():
    dso, agg, pros, net = settled()
    (settlement,) = [m for _, _, m in net.delivered if isinstance(m, FlexSettlementMessage)]
    (order,) = [r for r in dso.ledger[DSO_ORDERS].values() if r.msg.status == "ordered"]
    assert settlement.delivered_kwh == pytest.approx(order.ordered_kwh)
    assert settlement.penalty_cents == 0
    assert settlement.incentive_cents == round(100 * 0.10 * order.ordered_kwh)
    (rec,) = [r for r in agg.ledger[FLEX_REPLIES].values() if r.status == "ordered"]
    assert rec.settlement == settlement and rec.metered


def test_the_prosumers_get_their_contracts_share_of_the_dsos_payment_in_proportion_to_what_they_moved():
    dso, agg, pros, net = setup(limit=10.0)
    net.tick(NOW)
    net.tick(NOW + 900)
    ran = list(net.executions)
    meter_all(net, parse_utc("2026-11-23T00:00:00Z", "t"))
    net.tick(parse_utc("2026-11-23T00:00:00Z", "t"))
    net.tick(parse_utc("2026-11-23T00:01:00Z", "t"))
    (settlement,) = [m for _, _, m in net.delivered if isinstance(m, FlexSettlementMessage)]
    pot = cents(0.5 * settlement.total_cents / 100)  # the default contract shares half (half a cent up)
    got = {p.jid: sum(ln.amount_cents for b in p.ledger.values("bills") for ln in b.lines if ln.code == "dso_share")
           for p in pros}
    assert settlement.total_cents > 0 and sum(got.values()) == pot  # to the cent
    # each EV moved some of its charge out of the peak: the shares follow what each moved
    moved = {}
    for _, e in ran:
        first, sched = schedule_load(e.offer, e.schedule)
        d_first, default = default_load(e.offer)
        span = np.zeros(48)
        place(span, EVENING - 4, first, sched)
        place(span, EVENING - 4, d_first, -default)
        moved[e.offer.issuer] = float(np.abs(span).sum())
    for jid, paid in got.items():
        assert abs(paid - pot * moved[jid] / sum(moved.values())) < 1, (jid, paid, moved)
    # what the aggregator sent is what the prosumers hold
    sent = {b.bill_id: b.total_cents for _, b in agg.ledger.values("bills")}
    assert all(sent[b.bill_id] == b.total_cents for p in pros for b in p.ledger.values("bills"))
    # a second settlement of the same order is refused and pays nothing twice
    out = agg.receive(DSO, replace(settlement, settlement_id="s-again"), parse_utc("2026-11-23T00:02:00Z", "t"))
    (ack,) = [e.msg for e in out if isinstance(getattr(e, "msg", None), Ack)]
    assert ack.status == "rejected" and "settled already" in ack.reason


def test_no_congestion_expected_means_declined_and_the_aggregator_plans_within_the_limits():
    dso, agg, pros, net = setup(limit=100.0)
    net.tick(NOW)
    net.tick(NOW + 900)
    (order,) = [m for _, _, m in net.delivered if isinstance(m, FlexOrderMessage)]
    assert order.status == "declined" and "no congestion expected at feeder-1" in order.reason
    assert agg.counts() == {"assigned": 4}
    assert dso.cleared_kwh() == 0


def test_shortfall_beyond_the_tolerance_band_is_penalised():
    config = DsoConfig(points={"p": {"limit": 5.0}}, price=0.10, penalty=0.50, tolerance=0.1)
    msg = FlexOrderMessage("o-1", "r-1", "p", "declined")
    rec = DsoOrder(msg, AGG, 100, (10.0, 10.0), (5.0, 5.0), (5.0, 5.0), RES,
                      measurement=Measurement("m", "o-1", 100, (8.0, 9.0), RES))
    s, note = verify(rec, config, "s-1")
    assert s.delivered_kwh == pytest.approx(3.0) and s.ordered_kwh == pytest.approx(10.0)
    assert s.incentive_cents == 30  # 3 kWh x 0.10
    assert s.penalty_cents == 300  # (9 - 3) kWh x 0.50
    within = replace(rec, measurement=Measurement("m", "o-1", 100, (5.5, 5.2), RES))
    s2, _ = verify(within, config, "s-2")
    assert s2.penalty_cents == 0 and s2.incentive_cents == 100  # 9.3 >= 9: the whole incentive
    missing, note = verify(replace(rec, measurement=None), config, "s-3")
    assert missing.delivered_kwh == 0 and "no metering" in note


def test_a_stranger_can_neither_answer_the_dso_nor_send_requests_to_the_aggregator():
    dso, agg, pros, net = setup()
    stranger = "mallory@localhost"
    fake = FlexReplyMessage("r-x", "dso-req-1", "feeder-1", EVENING, (1.0,), (0.0,))
    (ack, *_) = dso.receive(stranger, fake, NOW)
    assert ack.msg.status == "rejected" and "is not an aggregator of this DSO" in ack.msg.reason
    req = FlexRequestMessage("q-1", "feeder-1", EVENING, (1.0,), 0.1, NOW + 900)
    (ack, *_) = agg.receive(stranger, req, NOW)
    assert ack.msg.status == "rejected" and "is not a DSO of this aggregator" in ack.msg.reason


def test_rejection_reasons_name_the_problem():
    dso, agg, pros, net = setup()
    # a request for a point the aggregator has nobody behind
    (ack, *_) = agg.receive(DSO, FlexRequestMessage("q-2", "feeder-9", EVENING, (1.0,), 0.1, NOW), NOW)
    assert "is not the DSO of congestion point feeder-9" in ack.msg.reason
    # a reply to a request that was never sent
    (ack, *_) = dso.receive(AGG, FlexReplyMessage("r-1", "nope", "feeder-1", EVENING, (1.0,), (0.0,)), NOW)
    assert ack.msg.reason == f"no flex request nope was sent to {AGG}"
    # an order for a reply the aggregator never sent
    (ack, *_) = agg.receive(DSO, FlexOrderMessage("o-9", "r-9", "feeder-1", "declined"), NOW)
    assert ack.msg.reason == f"no flex reply r-9 was sent to {DSO}"
    # metering for an order that does not exist
    (ack, *_) = dso.receive(AGG, Measurement("m-1", "o-7", EVENING, (1.0,)), NOW)
    assert ack.msg.reason == f"no flex order o-7 was placed with {AGG}"


def test_an_infeasible_order_is_rejected_with_the_reason():
    dso, agg, pros, net = setup(limit=10.0)
    net.tick(NOW)
    (reply,) = [m for _, _, m in net.delivered if isinstance(m, FlexReplyMessage)]
    fo = reply.offers[0]
    from vmenergy.flexoffer import Schedule
    bad = Schedule(fo.id, fo.earliest_start(), tuple(1000.0 for _ in fo.profiles[0].slices), "s-bad")
    (ack, *_) = agg.receive(DSO, FlexOrderMessage("o-x", reply.reply_id, "feeder-1", "ordered", (bad,), 1.0, 0.1), NOW)
    assert ack.msg.status == "rejected" and "not feasible for" in ack.msg.reason


def test_a_late_reply_is_refused():
    dso, agg, pros, net = setup()
    net.drop = lambda sender, send: isinstance(send.msg, FlexReplyMessage)
    net.tick(NOW)
    net.drop = None
    net.tick(NOW + 900)  # answers were due: the request is closed
    (rec,) = agg.ledger[FLEX_REPLIES].values()
    (ack, *_) = dso.receive(AGG, rec.reply, NOW + 901)
    assert "is closed" in ack.msg.reason


def test_config_errors_name_the_field():
    with pytest.raises(FlexOfferError, match="points.f1.limit"):
        DsoConfig(points={"f1": {"lower": -3.0}})
    with pytest.raises(FlexOfferError, match="aggregators"):
        DsoConfig(points={"f1": {"limit": 3.0}}, aggregators={AGG: ["f2"]})
    with pytest.raises(FlexOfferError, match="tolerance"):
        DsoConfig(points={"f1": {"limit": 3.0}}, tolerance=2.0)


def test_aggregates_a_dso_never_answers_are_planned_by_the_aggregator_before_their_deadline():
    dso, agg, pros, net = setup(limit=10.0)
    net.drop = lambda sender, send: isinstance(send.msg, FlexOrderMessage)
    net.tick(NOW)
    net.tick(NOW + 900)  # the DSO's orders are lost (and it is taken offline below)
    net.presence(DSO, False, NOW + 900)
    assert agg.counts() == {"accepted": 4}
    deadline = ev(0).assignment_before
    net.tick(deadline - 900)  # a round before the members' deadline
    assert agg.counts() == {"assigned": 4}
    (rec,) = [r for r in agg.ledger[FLEX_REPLIES].values() if r.reply.offers]
    assert rec.status == "unanswered"
    # planned within the request's limits
    scheduled = load([(e.offer, e.schedule) for _, e in net.executions])
    assert scheduled.max() <= 10.0 + 1e-6
    # the DSO's order, arriving after all, is refused with the reason
    (order,) = [r.msg for r in dso.ledger[DSO_ORDERS].values()]
    (ack, *_) = agg.receive(DSO, order, deadline)
    assert ack.msg.status == "rejected" and ack.msg.reason == f"flex reply {order.reply_id} was unanswered already"


def test_dso_and_aggregator_restart_from_their_stores_between_reply_and_order(tmp_path):
    """Both roles keep everything in their ledgers: restarted from their stores between the
    reply and the order, the DSO still orders, and the aggregator (its aggregates rebuilt from
    their members) carries the order out."""
    from vmenergy.store import Store

    dso, agg, pros, net = setup(limit=10.0)
    net.tick(NOW)  # request and reply
    stores = {}
    for name, engine in (("dso", dso), ("agg", agg)):
        stores[name] = Store(tmp_path / f"{name}.sqlite")
        stores[name].flush(engine.ledger.take_changes())
        stores[name].close()
    dso2 = DsoEngine(DSO, dso.config, ledger=Store(tmp_path / "dso.sqlite").load())
    agg2 = AggregatorEngine(AGG, agg.config, ledger=Store(tmp_path / "agg.sqlite").load())
    net.engines[DSO], net.engines[AGG] = dso2, agg2
    net.tick(NOW + 900)
    assert [r.msg.status for r in dso2.ledger[DSO_ORDERS].values()] == ["ordered"]
    assert agg2.counts() == {"assigned": 4}


def test_offers_are_grouped_by_congestion_point_and_only_a_managed_points_offers_wait():
    """Two points behind one aggregator: feeder-1 run by the DSO, feeder-2 by nobody. The
    feeder-2 offers are planned at once; a request for feeder-1 gets aggregates of feeder-1's
    offers only."""
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(4)]
    where = {p.jid: ("feeder-1" if i % 2 == 0 else "feeder-2") for i, p in enumerate(pros)}
    agg = AggregatorEngine(AGG, AggregatorConfig(locations=where, dsos={"feeder-1": DSO}))
    dso = DsoEngine(DSO, DsoConfig(points={"feeder-1": {"limit": 4.0}}, aggregators={AGG: ["feeder-1"]},
                                   horizon=12 * 3600))
    net = Net(dso, agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(ev(i), NOW, NOW))
    net.run(NOW)
    net.take(agg.jid, agg.tick(NOW))  # the aggregator's round alone, before the DSO asks
    net.run(NOW)
    assigned = {sender for sender, _ in net.executions}
    assert assigned == {"p1@localhost", "p3@localhost"}  # feeder-2's
    net.tick(NOW + 1)  # the DSO asks for feeder-1
    (reply,) = [m for _, _, m in net.delivered if isinstance(m, FlexReplyMessage)]
    members = {m for fo in reply.offers for m in agg.aggregate_members(fo.id)}
    assert members == {"ev-0", "ev-2"}


def test_a_limit_may_follow_the_time_of_day_and_the_request_carries_it_per_interval():
    """A feeder that carries less in the evening (a day's profile of 24 hourly values, UTC):
    the request's limits follow it, and the order keeps the load under the evening's limit."""
    profile = [12.0] * 17 + [8.0] * 7  # from 17:00 UTC 8 kWh per interval
    dso, agg, pros, net = setup(limit=10.0)
    net.engines[DSO] = dso = DsoEngine(DSO, DsoConfig(points={"feeder-1": {"limit": profile}},
                                                     aggregators={AGG: ["feeder-1"]}, horizon=12 * 3600,
                                                     respond_within=900))
    net.tick(NOW)
    (req,) = [m for _, _, m in net.delivered if isinstance(m, FlexRequestMessage)]
    at = lambda t: req.max_kwh[t - req.start]  # noqa: E731
    assert at(EVENING - 1) == 12.0 and at(EVENING) == 8.0
    net.tick(NOW + 900)
    scheduled = load([(e.offer, e.schedule) for _, e in net.executions])
    assert scheduled.max() <= 8.0 * 0.95 + 1e-6


def test_a_limit_profile_must_split_the_day_and_lower_stay_below_it():
    with pytest.raises(FlexOfferError, match=r"points.f1.limit: 5 values do not split a day"):
        DsoConfig(points={"f1": {"limit": [1.0] * 5}})
    with pytest.raises(FlexOfferError, match=r"points.f1.lower: above the limit at 12:00 UTC"):
        DsoConfig(points={"f1": {"limit": [5.0, 1.0], "lower": 2.0}})
