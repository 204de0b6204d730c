"""Runs made by the real engines on the in-memory network (no server), with the plan the report
needs to read them: a market, an aggregator trading on it, and prosumers with example offers."""

from __future__ import annotations

from dataclasses import dataclass

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, LATER, NOW, execute_all, offer
from tests.protocol.test_market_engine import LIQ, MKT
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Ledger
from vmenergy.protocol.market import MarketConfig, MarketEngine
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.runtime.report import run_data
from vmenergy.runtime.report.collect import RunData
from vmenergy.runtime.scenario import AgentSpec, Plan

KINDS = ("ev-overnight", "dishwasher-xor", "pv-producer")
END = LATER + 2 * 86400  # after the market's delivery period: its bill has gone out


@dataclass
class World:
    plan: Plan
    net: Net
    market: MarketEngine | None
    aggregator: AggregatorEngine
    prosumers: list[ProsumerEngine]

    def ledgers(self) -> dict[str, Ledger]:
        return {jid: e.ledger for jid, e in self.net.engines.items()}

    def run(self) -> RunData:
        return run_data(self.plan, self.ledgers())


def make_world(n: int = 4, market: bool = True) -> World:
    mkt = MarketEngine(MKT, MarketConfig(liquidity=LIQ, time_limit=10)) if market else None
    config = AggregatorConfig(upstream="market", upstream_jid=MKT) if market else AggregatorConfig()
    agg = AggregatorEngine(AGG, config)
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(n)]
    net = Net(*([mkt] if mkt else []), agg, *pros)
    specs = []
    if mkt:
        specs.append(AgentSpec("market", "market", MKT, "pw", "market", "unused", {"bill_after": 3600}))
    specs.append(AgentSpec("aggregator", "agg", AGG, "pw", "aggregators", "unused",
                           {"upstream": config.upstream, **({"upstream_jid": MKT} if market else {})}))
    for i, p in enumerate(pros):
        fo = offer(KINDS[i % len(KINDS)], i)
        specs.append(AgentSpec("prosumer", f"p{i}", p.jid, "pw", "prosumers-0", "unused", {"aggregator": AGG},
                               [{"release": NOW, "offer": fo.to_dict()}]))
        net.take(p.jid, p.add_offer(fo, NOW, NOW))
    net.run(NOW)
    plan = Plan("unit", "unused", {}, {"mode": "virtual"}, NOW, END, specs,
                ["market", "aggregators", "prosumers-0"] if market else ["aggregators", "prosumers-0"], 5)
    return World(plan, net, mkt, agg, pros)


def until_assigned(w: World) -> int:
    """Ticks until the market cleared and every offer is assigned; returns the time reached."""
    t = NOW
    for _ in range(6):
        w.net.tick(t)
        t += 900
    return t


def full_run(n: int = 4, market: bool = True) -> World:
    """Every offer assigned, executed, measured, settled and billed; the market bill sent."""
    w = make_world(n, market)
    t = until_assigned(w)
    execute_all(w.net, t, deviation=0.05)
    w.net.tick(LATER)
    w.net.tick(END)
    return w
