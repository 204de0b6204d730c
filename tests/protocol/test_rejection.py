"""An accepted offer the aggregator cannot assign in time is rejected on both sides: the
aggregator tells its prosumer with a reliable ``rejection`` message, so the counts of the two
roles agree (before, the prosumer kept the offer "accepted" forever)."""

from __future__ import annotations

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.aggregator import NOT_ASSIGNED_IN_TIME, AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Send
from vmenergy.protocol.messages import Ack, OfferRejection
from vmenergy.protocol.prosumer import PROSUMER_OFFERS, ProsumerEngine

MKT = "market@localhost"
#: after the EV's assignment deadline (21:45) and the dishwasher's latest start
EXPIRED = parse_utc("2026-11-23T12:00:00Z", "expired")


def world(n: int = 2):
    """An aggregator bidding on a market that never opens a session: nothing is ever assigned."""
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="market", upstream_jid=MKT))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(n)]
    net = Net(agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), NOW, NOW))
    net.run(NOW)
    net.tick(NOW)
    return agg, pros, net


def test_an_offer_expired_by_the_aggregator_becomes_rejected_at_its_prosumer_with_the_reason():
    agg, pros, net = world()
    assert all(p.counts() == {"accepted": 1} for p in pros)
    net.tick(EXPIRED)
    assert agg.counts() == {"rejected": 2}
    for p in pros:
        assert p.counts() == {"rejected": 1}
        (rec,) = p.ledger[PROSUMER_OFFERS].values()
        assert rec.reason == NOT_ASSIGNED_IN_TIME
    rejections = [m for _, _, m in net.delivered if isinstance(m, OfferRejection)]
    assert sorted(r.offer_id for r in rejections) == ["fo-dw-9-1", "fo-ev-17-0"]
    # acknowledged: nothing left to resend between them (the registration waits for the market)
    assert all(not agg.pending(p.jid) and not p.pending() for p in pros)


def test_a_lost_rejection_is_resent_and_a_repeated_one_changes_nothing():
    agg, (p,), net = world(1)
    lost = []
    net.drop = lambda s, send: isinstance(send.msg, OfferRejection) and not lost and not lost.append(send)
    net.tick(EXPIRED)
    assert len(lost) == 1 and p.counts() == {"accepted": 1} and len(agg.pending(p.jid)) == 1
    net.drop = None
    net.tick(EXPIRED + 3600)  # resent with the same ids
    assert p.counts() == {"rejected": 1} and not agg.pending(p.jid)
    again = p.receive(AGG, lost[0].msg, EXPIRED + 3700)
    (ack,) = [e.msg for e in again if isinstance(e, Send)]
    assert ack == Ack(OfferRejection.ack, "fo-ev-17-0", "accepted", None, 0)
    assert p.counts() == {"rejected": 1}


def test_a_rejection_for_an_offline_prosumer_waits_until_it_is_back():
    agg, (p,), net = world(1)
    net.presence(p.jid, False, EXPIRED - 60)
    net.tick(EXPIRED)
    assert agg.counts() == {"rejected": 1} and p.counts() == {"accepted": 1}
    assert agg.pending(p.jid)[0].attempts == 0  # queued, not sent
    net.presence(p.jid, True, EXPIRED + 60)
    assert p.counts() == {"rejected": 1} and not agg.pending(p.jid)


def test_rejections_the_prosumer_cannot_apply_are_refused_with_the_reason():
    agg, (p,), net = world(1)

    def answer(sender, msg):
        (ack,) = [e.msg for e in p.receive(sender, msg, NOW + 60) if isinstance(e, Send)]
        return ack

    ack = answer("mallory@localhost", OfferRejection("fo-ev-17-0", 0, "because"))
    assert not ack.accepted and "not this prosumer's aggregator" in ack.reason
    ack = answer(AGG, OfferRejection("fo-nope", 0, NOT_ASSIGNED_IN_TIME))
    assert not ack.accepted and ack.reason == "unknown offer fo-nope"
    ack = answer(AGG, OfferRejection("fo-ev-17-0", 3, NOT_ASSIGNED_IN_TIME))
    assert not ack.accepted and "not the current version" in ack.reason
    assert p.counts() == {"accepted": 1}
    # an assigned offer cannot be rejected any more: the lifecycle refuses, the reason says why
    net2_agg = AggregatorEngine(AGG)
    q = ProsumerEngine("p7@localhost", AGG)
    net2 = Net(net2_agg, q)
    net2.take(q.jid, q.add_offer(offer("ev-overnight", 7), NOW, NOW))
    net2.run(NOW)
    net2.tick(NOW)
    assert q.counts() == {"assigned": 1}
    out = q.receive(AGG, OfferRejection("fo-ev-17-7", 0, NOT_ASSIGNED_IN_TIME), NOW + 60)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and "assigned" in ack.reason and q.counts() == {"assigned": 1}
