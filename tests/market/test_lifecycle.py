"""Session lifecycle, and every kind of bad bid rejected with a reason and no side effect."""

from __future__ import annotations

import copy

import pytest

from vmenergy.flexoffer import FlexOffer, Prices, Profile, SlicePrice, Slice, State, TotalEnergy
from vmenergy.market import (FlexOfferBid, ImplicitCapacity, ManyToMany, MarketError, MarketSession, OneSidedPool,
                             Order, SessionState, TwoSidedPool)

T = 2_000_000  # first delivery interval
NOW = (T - 8) * 900  # two hours before delivery, in epoch seconds


def ev(oid="ev", *, window=(T, T + 2), prices=(0.3, 0.5), **kw):
    return FlexOffer(id=oid, profiles=(Profile((Slice(1, 0, 4), Slice(1, 0, 4)), total=TotalEnergy(3, 6)),),
                     start_after=window[0], start_before=window[1],
                     prices=None if prices is None else Prices((SlicePrice(*prices),)), **kw)


def session(mechanism=None, **kw) -> MarketSession:
    s = MarketSession("s1", mechanism or TwoSidedPool(), delivery_start=T, delivery_end=T + 4, **kw)
    for p in ("alice", "bob", "dso"):
        s.register(p, zone="north" if isinstance(mechanism, ImplicitCapacity) else None)
    return s


def snapshot(s: MarketSession):
    return (s.state, dict(s.participants), copy.copy(s.bids), s._seq, s.result)


def test_lifecycle_events_and_order():
    s = session(close_at=NOW + 3600)
    opened = s.open(NOW)
    assert opened.session_id == "s1" and opened.mechanism == "two-sided" and opened.close_at == NOW + 3600
    assert set(opened.participants) == {"alice", "bob", "dso"}
    assert s.place(Order("b1", "alice", "buy", 5, 0.3, T), NOW).accepted
    assert s.place(Order("s1", "bob", "sell", 5, 0.1, T), NOW).accepted
    closed = s.close(NOW + 3600)
    assert closed.n_bids == 2
    r = s.clear(NOW + 3601)
    assert s.state is SessionState.CLEARED and set(r.awards) == {"b1", "s1"}
    assert s.cleared_event(NOW + 3601).n_accepted == 2


@pytest.mark.parametrize("call", [
    lambda s: s.close(NOW),
    lambda s: s.clear(NOW),
    lambda s: s.activate("x", start=T, end=T + 1, volume=1, now=NOW),
])
def test_session_misuse_raises(call):
    s = session()
    with pytest.raises(MarketError) as e:
        call(s)
    assert e.value.path == "state"


def test_open_twice_and_register_after_close():
    s = session()
    s.open(NOW)
    with pytest.raises(MarketError):
        s.open(NOW)
    s.close(NOW)
    with pytest.raises(MarketError):
        s.register("carol")
    with pytest.raises(MarketError):
        s.deregister("alice")  # bids are binding once closed


def test_one_sided_buyer_must_be_registered():
    s = MarketSession("s", OneSidedPool("grid-op", 10, 0.3), delivery_start=T, delivery_end=T + 1)
    with pytest.raises(MarketError) as e:
        s.open(NOW)
    assert e.value.path == "mechanism.buyer"


GOOD = Order("o1", "alice", "sell", 5, 0.1, T)

BAD_ORDERS = [
    ("unknown participant", Order("o9", "mallory", "sell", 5, 0.1, T), "participant"),
    ("expired", Order("o9", "alice", "sell", 5, 0.1, T, expiry=NOW), "expiry"),
    ("before the delivery window", Order("o9", "alice", "sell", 5, 0.1, T - 1), "start"),
    ("after the delivery window", Order("o9", "alice", "sell", 5, 0.1, T + 3, T + 5), "start"),
    ("reused id", Order("o1", "alice", "sell", 6, 0.1, T), "id"),
    ("not a bid", {"id": "o9"}, "bid"),
]


@pytest.mark.parametrize("name, bid, path", BAD_ORDERS, ids=[b[0] for b in BAD_ORDERS])
def test_bad_orders_are_rejected_and_change_nothing(name, bid, path):
    s = session()
    s.open(NOW)
    assert s.place(GOOD, NOW).accepted
    before = snapshot(s)
    ack = s.place(bid, NOW)
    assert not ack.accepted and ack.path == path and ack.reason
    assert snapshot(s) == before


def test_bids_before_open_and_after_close_are_rejected():
    s = session(close_at=NOW + 100)
    ack = s.place(GOOD, NOW)
    assert not ack.accepted and "not open" in ack.reason
    s.open(NOW)
    before = snapshot(s)
    ack = s.place(GOOD, NOW + 100)  # at the closing time
    assert not ack.accepted and "closing time" in ack.reason
    assert snapshot(s) == before
    s.close(NOW + 100)
    ack = s.place(GOOD, NOW + 100)
    assert not ack.accepted and "closed" in ack.reason


def test_identical_bid_twice_is_a_duplicate_and_changes_nothing():
    s = session()
    s.open(NOW)
    assert s.place(GOOD, NOW).accepted
    before = snapshot(s)
    ack = s.place(Order("o1", "alice", "sell", 5, 0.1, T), NOW)
    assert ack.accepted and ack.duplicate
    assert snapshot(s) == before


ONE_SIDED_BAD = [
    ("buy order", Order("o9", "alice", "buy", 5, 0.1, T, kind="up"), "side"),
    ("wrong product", Order("o9", "alice", "sell", 5, 0.1, T, kind="down"), "kind"),
    ("buyer sells to itself", Order("o9", "dso", "sell", 5, 0.1, T, kind="up"), "participant"),
    ("flex-offer bid", FlexOfferBid("f9", "alice", ev()), "offer"),
]


@pytest.mark.parametrize("name, bid, path", ONE_SIDED_BAD, ids=[b[0] for b in ONE_SIDED_BAD])
def test_one_sided_pool_rejections(name, bid, path):
    s = session(OneSidedPool("dso", 10, 0.3))
    s.open(NOW)
    before = snapshot(s)
    ack = s.place(bid, NOW)
    assert not ack.accepted and ack.path == path
    assert snapshot(s) == before


FLEX_BAD = [
    ("flexibility product in a welfare market", Order("o9", "alice", "sell", 5, 0.1, T, kind="up"), "kind"),
    ("no prices", FlexOfferBid("f9", "alice", ev(prices=None)), "offer.prices"),
    ("other resolution", FlexOfferBid("f9", "alice", FlexOffer(
        id="x", profiles=(Profile((Slice(1, 0, 1),)),), start_after=T // 4, start_before=T // 4, resolution=3600,
        prices=Prices((SlicePrice(0.1, 0.1),)))), "offer.resolution"),
    ("cannot run in the delivery window", FlexOfferBid("f9", "alice", ev(window=(T + 3, T + 3))), "offer"),
    ("offer already withdrawn", FlexOfferBid("f9", "alice", ev(state=State.WITHDRAWN)), "offer.state"),
    ("expired offer", FlexOfferBid("f9", "alice", ev(acceptance_before=NOW - 1)), "expiry"),
    ("battery that buys dearer than it sells", FlexOfferBid("f9", "alice", FlexOffer(
        id="bat", profiles=(Profile((Slice(1, -2, 2),)),), start_after=T, start_before=T,
        prices=Prices((SlicePrice(0.3, 0.2),)))), "offer.prices.slices[0]"),
]


@pytest.mark.parametrize("name, bid, path", FLEX_BAD, ids=[b[0] for b in FLEX_BAD])
def test_many_to_many_rejections(name, bid, path):
    s = session(ManyToMany())
    s.open(NOW)
    assert s.place(FlexOfferBid("f1", "bob", ev()), NOW).accepted
    before = snapshot(s)
    ack = s.place(bid, NOW)
    assert not ack.accepted and ack.path == path, ack
    assert snapshot(s) == before


def test_withdraw_and_deregister():
    s = session()
    s.open(NOW)
    s.place(GOOD, NOW)
    s.place(Order("o2", "alice", "sell", 1, 0.1, T), NOW)
    s.place(Order("o3", "bob", "buy", 1, 0.5, T), NOW)
    before = snapshot(s)
    assert not s.withdraw("o1", "bob", NOW).accepted  # not bob's
    assert not s.withdraw("nope", "alice", NOW).accepted
    assert snapshot(s) == before
    assert s.withdraw("o1", "alice", NOW).accepted and "o1" not in s.bids
    gone = s.deregister("alice")
    assert gone.withdrawn == ("o2",) and set(s.bids) == {"o3"} and "alice" not in s.participants
    s.close(NOW)
    assert not s.withdraw("o3", "bob", NOW).accepted


def test_zones_are_checked_at_registration():
    s = MarketSession("z", ImplicitCapacity(["north", "south"]), delivery_start=T, delivery_end=T + 1)
    with pytest.raises(MarketError) as e:
        s.register("alice", zone="east")
    assert e.value.path == "zone"
    s2 = MarketSession("p", TwoSidedPool(), delivery_start=T, delivery_end=T + 1)
    with pytest.raises(MarketError):
        s2.register("alice", zone="north")


def test_bids_that_expire_before_clearing_are_dropped_with_a_reason():
    s = session()
    s.open(NOW)
    s.place(Order("b1", "alice", "buy", 5, 0.3, T, expiry=NOW + 50), NOW)
    s.place(Order("s1", "bob", "sell", 5, 0.1, T), NOW)
    s.close(NOW + 10)
    r = s.clear(NOW + 60)
    assert "expir" in r.rejected["b1"] and "out of merit" in r.rejected["s1"] and not r.awards


def test_reservations_activations_and_imbalance():
    s = session(OneSidedPool("dso", 4.0, 0.3), pricing="pay-as-bid")
    s.open(NOW)
    s.place(Order("u1", "alice", "sell", 3, 0.05, T, T + 2, kind="up", activation_price=0.2), NOW)
    s.place(Order("u2", "bob", "sell", 3, 0.1, T, kind="up", activation_price=0.25), NOW)
    s.close(NOW)
    r = s.clear(NOW)
    res = {x.bid_id: x for x in r.reservations}
    assert res["u1"].volume == {T: 3.0, T + 1: 3.0} and res["u1"].holder == "dso"
    assert res["u2"].volume == {T: 1.0}
    act = s.activate(res["u1"].id, start=T, end=T + 2, volume=2.0, now=NOW)
    assert act.amount == pytest.approx(0.2 * 2.0 * 2)
    for kw, path in [(dict(start=T, end=T + 1, volume=3.5), "volume"), (dict(start=T + 1, end=T + 3, volume=1), "start"),
                     (dict(start=T, end=T + 1, volume=-1), "volume")]:
        with pytest.raises(MarketError) as e:
            s.activate(res["u1"].id, now=NOW, **kw)
        assert e.value.path == path
    with pytest.raises(MarketError):
        s.activate(res["u2"].id, start=T, end=T + 1, volume=1.0, now=T * 900)  # too late
    with pytest.raises(MarketError):
        s.activate("s1/none", start=T, end=T + 1, volume=1.0, now=NOW)
    assert len(s.activations) == 1


def test_imbalance_lines_for_settlement():
    s = session()
    s.open(NOW)
    s.place(Order("b1", "alice", "buy", 5, 0.3, T), NOW)
    s.place(Order("s1", "bob", "sell", 5, 0.1, T), NOW)
    s.close(NOW)
    r = s.clear(NOW)
    lines = r.imbalance({"alice": {T: 6.0}, "bob": {T: -4.0}}, price_over=0.1, price_under=0.2)
    by = {(x.participant, x.interval): x for x in lines}
    assert by[("alice", T)].deviation == pytest.approx(1.0) and by[("alice", T)].cost == pytest.approx(0.1)
    assert by[("bob", T)].contracted == pytest.approx(-5.0) and by[("bob", T)].cost == pytest.approx(0.1)
    assert r.position("alice") == {T: 5.0}
