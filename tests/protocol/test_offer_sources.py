"""A prosumer's offer source can revise and take back offers, and an offer that will not be
scheduled makes its devices run their normal programme (RunDefault), which the prosumer records."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer
from vmenergy.flexoffer import FlexOffer, State
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Note, RunDefault
from vmenergy.protocol.messages import OfferMessage, OfferRejection
from vmenergy.protocol.prosumer import PROSUMER_DEFAULT_RUNS, ProsumerEngine
from vmenergy.protocol.strategies import CombinedOffers, OfferChange, OfferSource, ScheduledOffers


class Device(OfferSource):
    """A source that gives one offer, then revises or withdraws it when told."""

    def __init__(self, fo: FlexOffer) -> None:
        self.fo = fo
        self.given = False
        self.pending: list[OfferChange] = []

    def offers(self, now: Optional[int]):
        if now is None or self.given:
            return []
        self.given = True
        return [(now, self.fo)]

    def changes(self, now: int):
        out, self.pending = self.pending, []
        return out

    def next_due(self, now: int) -> Optional[int]:
        return now if self.pending or not self.given else None


def world(source: OfferSource, config: AggregatorConfig = AggregatorConfig()):
    agg = AggregatorEngine(AGG, config)
    pro = ProsumerEngine("p0@localhost", AGG, source=source)
    net = Net(agg, pro)
    net.take(pro.jid, pro.tick(NOW))
    net.run(NOW)
    return agg, pro, net


def test_a_revised_offer_goes_to_the_aggregator_as_an_update_of_the_same_offer():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    dev = Device(fo)
    agg, pro, net = world(dev)
    assert pro.counts() == {"accepted": 1}
    smaller = fo.profiles[0]
    dev.pending.append(OfferChange(fo.id, replace(fo, label="left early", profiles=(smaller,))))
    assert pro.on_next_due(NOW) == NOW  # a change is work now
    net.take(pro.jid, pro.tick(NOW))
    net.run(NOW)
    sent = [m for _, to, m in net.delivered if to == AGG and isinstance(m, OfferMessage)]
    assert [m.op for m in sent] == ["insert", "update"]
    rec = pro.ledger.get("offers", fo.id)
    assert rec.offer.version == 1 and rec.offer.label == "left early" and rec.state is State.ACCEPTED


def test_a_withdrawn_offer_is_deleted_at_the_aggregator():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    dev = Device(fo)
    agg, pro, net = world(dev)
    dev.pending.append(OfferChange(fo.id, None))
    net.take(pro.jid, pro.tick(NOW))
    net.run(NOW)
    assert pro.counts() == {"withdrawn": 1}
    assert [m.op for _, to, m in net.delivered if isinstance(m, OfferMessage)][-1] == "delete"


def test_a_change_after_the_assignment_is_refused_and_the_schedule_binds():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    dev = Device(fo)
    agg, pro, net = world(dev)
    net.tick(NOW)  # the aggregator plans and assigns
    assert pro.counts() == {"assigned": 1}
    dev.pending.append(OfferChange(fo.id, replace(fo, label="too late")))
    effects = pro.tick(NOW)
    assert any(isinstance(e, Note) and e.event == "update-refused" for e in effects)
    assert pro.ledger.get("offers", fo.id).offer.label != "too late"


def test_an_update_refused_because_the_offer_was_aggregated_leaves_the_accepted_version_binding():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    dev = Device(fo)
    agg, pro, net = world(dev, AggregatorConfig(upstream="parent", upstream_jid="parent@localhost"))
    net.tick(NOW)  # the aggregator aggregates and offers the aggregate to its parent, which does not answer
    assert agg.ledger.get("offers", fo.id).aggregate_id is not None
    dev.pending.append(OfferChange(fo.id, replace(fo, label="left early")))
    net.take(pro.jid, pro.tick(NOW))
    net.run(NOW)
    rec = pro.ledger.get("offers", fo.id)
    # not rejected (the aggregator will assign the version it holds): back to that version
    assert rec.state is State.ACCEPTED and rec.offer.version == 0 and rec.offer.label != "left early"
    assert rec.accepted is None and not net.defaults
    assert pro.counts() == {"accepted": 1}


def test_an_assignment_that_crosses_an_update_is_the_accepted_versions_and_binds():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    dev = Device(fo)
    agg, pro, net = world(dev)
    shorter = replace(fo.profiles[0], slices=fo.profiles[0].slices[:-1])
    dev.pending.append(OfferChange(fo.id, replace(fo, label="left early", profiles=(shorter,), baseline=None)))
    net.take(pro.jid, pro.tick(NOW))  # the update is sent, not yet delivered
    net.tick(NOW)  # the aggregator assigns the version it holds, then refuses the update
    rec = pro.ledger.get("offers", fo.id)
    assert rec.state is State.ASSIGNED and rec.offer.version == 0 and rec.offer.label != "left early"
    assert rec.schedule is not None and fo.is_feasible(rec.schedule)
    assert rec.accepted is None and not net.defaults


def test_a_rejected_offer_makes_its_devices_run_their_normal_programme():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    agg, pro, net = world(Device(fo), AggregatorConfig(lead=10 * 86400))  # everything starts too soon
    assert pro.counts() == {"rejected": 1}
    ((who, effect),) = net.defaults
    assert who == pro.jid and isinstance(effect, RunDefault) and effect.offer.id == fo.id
    assert "starts too soon" in (effect.reason or "")
    pro.ran_default(fo.id, fo.baseline.start, [1.0, 2.0], NOW + 3600)
    run = pro.ledger[PROSUMER_DEFAULT_RUNS].get(fo.id)
    assert run.energy == (1.0, 2.0) and run.start == fo.baseline.start and "too soon" in run.reason


def test_an_accepted_offer_the_aggregator_gives_up_makes_its_devices_run_their_normal_programme():
    fo = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    agg, pro, net = world(Device(fo))
    effects = pro.receive(AGG, OfferRejection(fo.id, 0, "not assigned in time"), NOW)
    assert [type(e) for e in effects if isinstance(e, RunDefault)] == [RunDefault]
    again = pro.receive(AGG, OfferRejection(fo.id, 0, "not assigned in time"), NOW)  # told again
    assert not [e for e in again if isinstance(e, RunDefault)]


def test_combined_sources_give_every_offer_and_the_earliest_next_time():
    a = replace(offer("ev-overnight", 0), issuer="p0@localhost")
    b = replace(offer("dishwasher-xor", 1), issuer="p0@localhost")
    dev = Device(b)
    both = CombinedOffers(ScheduledOffers([(NOW, a)]), dev)
    assert both.next_due(NOW) == NOW
    assert {fo.id for _, fo in both.offers(NOW)} == {a.id, b.id}
    assert both.next_due(NOW) is None
    dev.pending.append(OfferChange(b.id, None))
    assert [c.offer_id for c in both.changes(NOW)] == [b.id]
