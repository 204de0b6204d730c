"""Finding 5 of the hostile-input probe (issue 16): a stranger squatted a prosumer's predictable
offer id (``house3-0``); the real prosumer's offer was then rejected as "belongs to another
prosumer". Offer ids are scoped by the sender's JID: both offers live, each owner hears only of
its own, and the squatter cannot take the scoped id either."""

from __future__ import annotations

from dataclasses import replace

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, LATER, NOW, execute_all, offer
from vmenergy.protocol.aggregator import AggregatorEngine
from vmenergy.protocol.engine import Send
from vmenergy.protocol.messages import OfferMessage
from vmenergy.protocol.prosumer import ProsumerEngine

HOUSE, MALLORY = "house3@localhost", "mallory@localhost"


def test_a_squatted_offer_id_does_not_keep_its_owner_out():
    agg = AggregatorEngine(AGG)
    house, mallory = ProsumerEngine(HOUSE, AGG), ProsumerEngine(MALLORY, AGG)
    net = Net(agg, house, mallory)
    mine = replace(offer("ev-overnight", 0), id="house3-0", issuer=HOUSE)
    # mallory sends first, under house3's id, and also takes the id the scoping would give house3
    net.take(MALLORY, mallory.add_offer(replace(mine, issuer=MALLORY), NOW, NOW))
    net.run(NOW)
    sneaky = replace(mine, id=f"house3-0/{HOUSE}", issuer=MALLORY)
    refused = agg.receive(MALLORY, OfferMessage("insert", sneaky.id, sneaky), NOW)
    assert [e.msg.accepted for e in refused if isinstance(e, Send)] == [False]
    net.take(HOUSE, house.add_offer(mine, NOW, NOW))
    net.run(NOW)
    assert house.counts() == {"accepted": 1}, house.ledger.get("offers", "house3-0")
    net.tick(NOW)
    execute_all(net, NOW + 60)
    net.tick(LATER)
    assert house.counts() == {"settled": 1} and mallory.counts() == {"settled": 1}
    # each owner was told about its own offer, by the id it gave it
    for p in (house, mallory):
        rec = p.ledger.get("offers", "house3-0")
        assert rec.schedule.offer_id == "house3-0" and rec.offer.is_feasible(rec.schedule)
        (bill,) = list(p.ledger.values("bills"))
        assert [line.offer_id for line in bill.lines if line.code == "offer"] == ["house3-0"]
    owners = {rec.owner: rec.owner_id for rec in agg.ledger.values("offers")}
    assert owners == {HOUSE: "house3-0", MALLORY: "house3-0"}
    assert not agg.pending()


def test_an_offer_of_another_owner_cannot_be_withdrawn_or_updated_by_a_stranger():
    agg = AggregatorEngine(AGG)
    house = ProsumerEngine(HOUSE, AGG)
    net = Net(agg, house)
    net.take(HOUSE, house.add_offer(replace(offer("ev-overnight", 0), id="house3-0", issuer=HOUSE), NOW, NOW))
    net.run(NOW)
    out = agg.receive(MALLORY, OfferMessage("delete", "house3-0", version=1), NOW)
    assert [e.msg.reason for e in out if isinstance(e, Send)] == ["unknown offer house3-0"]
    assert agg.counts() == {"accepted": 1}
