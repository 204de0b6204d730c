"""The replaceable steps: an aggregator runs whatever acceptance, planning, bidding and
disaggregation objects it is given, a config key names a user's class, and a prosumer takes its
offers from a source."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer, setup
from tests.protocol.test_market_engine import MKT, run_until_cleared, world
from vmenergy.agents.plugins import aggregator_strategies, build_strategy, load_class
from vmenergy.flexoffer import FlexOfferError, Prices, SlicePrice
from vmenergy.protocol.aggregator import AGG_OFFERS, AggregatorConfig, AggregatorEngine
from vmenergy.protocol.aggregator_config import StrategySpec
from vmenergy.protocol.market import BIDS
from vmenergy.protocol.prosumer import PROSUMER_OFFERS, ProsumerEngine
from vmenergy.protocol.strategies import (
    AggregatorStrategies,
    Bidding,
    DeadlineAcceptance,
    FixedCurveBidding,
    MemberDisaggregation,
    ObjectivePlanning,
    OfferSource,
    ScheduledOffers,
)
from vmenergy.protocol.upstream import MarketUpstream, ParentUpstream, PlanUpstream, make_upstream


class FlatBidding(Bidding):
    def __init__(self, up: float) -> None:
        self.up = up
        self.seen: list[str] = []

    def prices(self, offer, session):
        self.seen.append(session.session_id)
        return Prices((SlicePrice(self.up, self.up + 0.01),))


def market_world(strategies_of):
    return world(strategies=strategies_of)


def test_the_bids_carry_the_prices_of_the_bidding_strategy_the_aggregator_was_given():
    bidding = FlatBidding(0.123)
    mkt, agg, pros, net = market_world(
        lambda config: replace(AggregatorStrategies.from_config(config, AGG), bidding=bidding))
    run_until_cleared(net)
    bids = mkt.ledger[BIDS].values()
    assert bids and bidding.seen == ["s-1"] * len(bids)
    assert {(b.bid.offer.prices.slices[0].up, b.bid.offer.prices.slices[0].down) for b in bids} == {(0.123, 0.133)}
    assert agg.counts() == {"assigned": 4}


def test_the_default_bidding_is_the_configured_price_curve():
    config = AggregatorConfig(upstream="market", upstream_jid=MKT, bid_prices={"up": 0.25, "down": 0.01})
    s = AggregatorStrategies.from_config(config, AGG)
    assert isinstance(s.bidding, FixedCurveBidding) and (s.bidding.up, s.bidding.down, s.bidding.mixed) == (0.25, 0.01, 0.13)
    assert isinstance(s.acceptance, DeadlineAcceptance) and s.acceptance.lead == config.lead
    assert isinstance(s.planning, ObjectivePlanning) and isinstance(s.disaggregation, MemberDisaggregation)
    assert s.contract.aggregator == AGG


def test_an_acceptance_strategy_decides_which_offers_are_taken_and_its_reason_reaches_the_prosumer():
    class OnlyEVs:
        def problem(self, offer, now):
            return None if offer.id.startswith("fo-ev") else "this aggregator takes EVs only"

    config = AggregatorConfig()
    agg = AggregatorEngine(AGG, config, strategies=replace(AggregatorStrategies.from_config(config, AGG),
                                                           acceptance=OnlyEVs()))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(2)]
    net = Net(agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i], i), NOW, NOW))
    net.run(NOW)
    assert pros[0].counts() == {"accepted": 1} and pros[1].counts() == {"rejected": 1}
    assert pros[1].ledger[PROSUMER_OFFERS].require("fo-dw-9-1").reason == "this aggregator takes EVs only"


def test_a_planning_strategy_may_return_plain_schedules_and_one_that_miscounts_is_caught():
    class Earliest:
        """Every offer at its earliest start, each slice at its minimum (feasible for these)."""

        def plan(self, offers, now):
            from vmenergy.flexoffer import Schedule

            return [Schedule(fo.id, max(fo.earliest_start(), now), tuple(s.min for s in fo.profiles[0].slices))
                    for fo in offers]

    config = AggregatorConfig()
    base = AggregatorStrategies.from_config(config, AGG)
    agg, pros, net = setup(2, kinds=("ev-overnight",))
    agg.strategies = replace(base, planning=Earliest())
    net.tick(NOW)
    assert agg.counts() == {"assigned": 2}
    for _, e in net.executions:
        assert e.offer.is_feasible(e.schedule)
        assert e.schedule.total == pytest.approx(e.offer.min_total_energy)

    class Forgetful:
        def plan(self, offers, now):
            return []

    agg2, _, net2 = setup(2, kinds=("ev-overnight",))
    agg2.strategies = replace(base, planning=Forgetful())
    with pytest.raises(ValueError, match="returned 0 schedules for 1 offers"):
        net2.tick(NOW)


def test_config_keys_that_name_a_class_are_checked_and_need_the_shell_to_load_them():
    config = AggregatorConfig(bidding="mypackage.bids:Scarcity",
                              planning={"class": "mypackage.plans:Greedy", "horizon": 96})
    assert config.strategy_specs() == {
        "planning": StrategySpec("planning", "mypackage.plans:Greedy", {"horizon": 96}),
        "bidding": StrategySpec("bidding", "mypackage.bids:Scarcity", {}),
    }
    with pytest.raises(FlexOfferError) as info:
        AggregatorEngine(AGG, config)  # the core does not import code
    assert info.value.path == "planning" and "shell" in info.value.reason
    for kw, path in ((dict(bidding="no-colon"), "bidding"), (dict(bidding={"class": 3}), "bidding.class"),
                     (dict(acceptance=7), "acceptance"), (dict(disaggregation={"klass": "a:B"}), "disaggregation"),
                     (dict(objective={"kind": "happiness"}), "objective.kind"),
                     (dict(aggregation={"est": 4}), "aggregation"),
                     (dict(aggregation={"max_offers": 0}), "aggregation.max_offers"),
                     (dict(bid_prices={"up": "cheap", "down": 0}), "bid_prices.up"),
                     (dict(cycle=0), "cycle")):
        with pytest.raises(FlexOfferError) as info:
            AggregatorConfig(**kw)
        assert info.value.path == path, kw


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    pkg = tmp_path / "userstrats"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bids.py").write_text(textwrap.dedent("""
        from vmenergy.flexoffer import Prices, SlicePrice

        class Flat:
            def __init__(self, up=0.2):
                self.up = up

            def prices(self, offer, session):
                return Prices((SlicePrice(self.up, self.up),))

        NOT_A_CLASS = 3

        class NoMethod:
            pass
    """))
    (pkg / "broken.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userstrats"


def test_the_shell_loads_the_users_class_with_its_options(user_package):
    config = AggregatorConfig(upstream="market", upstream_jid=MKT,
                              bidding={"class": f"{user_package}.bids:Flat", "up": 0.17})
    strategies = aggregator_strategies(config, AGG + "/resource")
    assert type(strategies.bidding).__name__ == "Flat" and strategies.bidding.up == 0.17
    engine = AggregatorEngine(AGG, config, strategies=strategies)
    assert isinstance(engine.upstream, MarketUpstream) and engine.upstream.bidding is strategies.bidding


@pytest.mark.parametrize("target, options, why", [
    ("nosuchpackage.mod:X", {}, "cannot import 'nosuchpackage.mod'"),
    ("{pkg}.bids:Missing", {}, "has no 'Missing'"),
    ("{pkg}.bids:NOT_A_CLASS", {}, "is not a class"),
    ("{pkg}.bids:Flat", {"colour": "red"}, "failed: "),
    ("{pkg}.broken:X", {}, "RuntimeError: half written"),
])
def test_a_class_that_cannot_be_loaded_is_an_error_naming_the_config_key(user_package, target, options, why):
    with pytest.raises(FlexOfferError) as info:
        build_strategy(StrategySpec("bidding", target.format(pkg=user_package), options))
    assert info.value.path == "bidding" and why in info.value.reason
    assert load_class(f"{user_package}.bids:Flat", "bidding").__name__ == "Flat"


def test_a_class_without_the_steps_method_is_refused(user_package):
    config = AggregatorConfig(upstream="market", upstream_jid=MKT, bidding=f"{user_package}.bids:NoMethod")
    with pytest.raises(FlexOfferError) as info:
        aggregator_strategies(config, AGG)
    assert info.value.path == "bidding" and "has no prices() method" in info.value.reason


def test_one_upstream_strategy_per_mode():
    bidding = FixedCurveBidding()
    assert isinstance(make_upstream("plan", None, bidding=bidding, lead=900, cycle=900), PlanUpstream)
    assert isinstance(make_upstream("parent", "top@localhost", bidding=bidding, lead=900, cycle=900), ParentUpstream)
    assert isinstance(make_upstream("market", MKT, bidding=bidding, lead=900, cycle=900), MarketUpstream)
    with pytest.raises(ValueError, match="unknown upstream 'moon'"):
        make_upstream("moon", None, bidding=bidding, lead=900, cycle=900)
    with pytest.raises(ValueError, match="needs the market's JID"):
        make_upstream("market", None, bidding=bidding, lead=900, cycle=900)


def test_a_prosumer_takes_its_offers_from_its_source_once_each():
    fos = [offer("ev-overnight", 0), offer("dishwasher-xor", 0)]
    p = ProsumerEngine("p0@localhost", AGG, source=ScheduledOffers([(NOW + 600, fo) for fo in fos]))
    assert p.counts() == {"initial": 2}  # known from the start, sent at their release
    assert not p.tick(NOW)
    sent = p.tick(NOW + 600)
    assert sorted(e.msg.offer_id for e in sent) == ["fo-dw-9-0", "fo-ev-17-0"]
    # a restart: the ledger has them, the new source offers them again, nothing is duplicated
    again = ProsumerEngine("p0@localhost", AGG, ledger=p.ledger, source=ScheduledOffers([(NOW, fo) for fo in fos]))
    assert again.counts() == {"offered": 2}

    class Hourly(OfferSource):
        """A new offer every hour (a device model would make them from its state)."""

        def offers(self, now):
            if now is None:
                return []
            fo = replace(offer("ev-overnight", 0), id=f"ev-{now // 3600}")
            return [(now, fo)]

    q = ProsumerEngine("p0@localhost", AGG, source=Hourly())
    q.tick(NOW)
    q.tick(NOW + 60)
    q.tick(NOW + 3600)
    assert sorted(q.ledger[PROSUMER_OFFERS].keys()) == [f"ev-{NOW // 3600}", f"ev-{NOW // 3600 + 1}"]
    assert q.counts() == {"offered": 2}


def test_the_aggregator_keeps_no_offer_without_a_record_type_check():
    agg = AggregatorEngine(AGG)
    with pytest.raises(TypeError, match="AggOffer"):
        agg.ledger[AGG_OFFERS].put("x", offer("ev-overnight", 0))  # a bare offer is not its record


def test_the_bidding_example_of_docs_extending_prices_night_and_day_aggregates_differently():
    import re
    import types

    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "extending.md").read_text()
    (code,) = [b for k, b in re.findall(r"```(\w+)\n(.*?)```", doc, flags=re.S) if k == "python"]
    module = types.ModuleType("mybidding")
    exec(compile(code, "docs/extending.md", "exec"), module.__dict__)
    bidding = module.NightOwlBidding(night=0.15, day=0.10)
    mkt, agg, pros, net = market_world(
        lambda config: replace(AggregatorStrategies.from_config(config, AGG), bidding=bidding))
    run_until_cleared(net)
    prices = {b.bid.offer.earliest_start() * 900 // 3600 % 24: b.bid.offer.prices.slices[0].up
              for b in mkt.ledger[BIDS].values()}
    assert prices == {22: 0.15, 20: 0.10}  # the EVs from 22:00, the dishwashers from 20:00


def test_vmenergy_check_imports_the_strategy_classes_a_scenario_names(tmp_path, user_package):
    import io
    import re

    from tests.conftest import ROOT
    from vmenergy.cli import main

    doc = (ROOT / "docs" / "extending.md").read_text()
    (scenario,) = [b for k, b in re.findall(r"```(\w+)\n(.*?)```", doc, flags=re.S) if k == "toml"]
    ok = scenario.replace("mybidding:NightOwlBidding", f"{user_package}.bids:Flat").replace("night = 0.15, day = 0.10",
                                                                                          "up = 0.2")
    for text, expect in ((ok, 0), (ok.replace(f"{user_package}.bids:Flat", "mybiding:NightOwlBidding"), 1)):
        path = tmp_path / "s.toml"
        path.write_text(text)
        out = io.StringIO()
        assert main(["check", str(path)], out=out) == expect, out.getvalue()
    assert "aggregator[0].bidding: cannot import 'mybiding'" in out.getvalue()
