"""The virtual-time driver: what agents do in a round does not depend on when messages arrived.

Engines run in shells that do what ``VmeAgent.handle`` does (step, then carry out the effects),
on an in-memory network that delivers each round's messages in an order the test chooses
(shuffled differently per run), and a loop that plays the coordinator. Two runs with different
arrival orders must leave identical ledgers; messages of one round are handled by sender.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace

from tests.protocol.test_engines import AGG, NOW, offer
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Engine, Send
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.runtime.clock import VirtualClock
from vmenergy.protocol.messages import OfferMessage
from vmenergy.runtime.driver import VirtualDriver, message_key
from vmenergy.runtime.progress import merge_summaries


class Shell:
    """The part of VmeAgent the driver uses, over a real engine; sends go to ``net``."""

    heavy_ticks = False
    store_failing = False

    def __init__(self, engine: Engine, net: "Net", initial=()) -> None:
        self.engine, self.net, self.jid = engine, net, engine.jid
        self.driver = None
        self.initial = list(initial)
        self.handled: list[str] = []  # senders of handled messages, in order
        self.role = engine.role
        self.work: Counter = Counter()  # what the driver reports of each agent (VmeAgent.work)

    def startup_steps(self):
        return [lambda now, fo=fo, release=release: self.engine.add_offer(fo, release, now)
                for release, fo in self.initial]

    def progress(self) -> dict:
        return {}

    async def handle(self, step, *, offload: bool = False):
        self.driver.stepped(self)
        effects = step(int(self.driver.clock.now()))
        self.engine.ledger.take_changes()
        for e in effects:
            if isinstance(e, Send):
                self.net.send(self, e)
        return effects

    async def handle_all(self, steps, *, offload: bool = False):
        out = []
        for step in steps:
            out += await self.handle(step, offload=offload)
        return out


class Net:
    """Delivers each round's messages when the round ends, in a shuffled order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.queue: list[tuple[Shell, Send, tuple[int, int]]] = []
        self.shells: dict[str, Shell] = {}

    def send(self, sender: Shell, send: Send) -> None:
        tag = sender.driver.sending(sender, send.to)
        self.queue.append((sender, send, tag))

    def deliver(self) -> None:
        self.rng.shuffle(self.queue)
        for sender, send, tag in self.queue:
            to = self.shells[send.to]
            original = to.engine.receive

            def record(s, m, now, to=to, original=original):
                to.handled.append(s)
                return original(s, m, now)

            to.engine.receive = record  # type: ignore[method-assign]
            to.driver.received(to, sender.jid, send.msg, tag)
        self.queue.clear()


async def run_instants(da: VirtualDriver, db: VirtualDriver, net: Net, t: int, instants: int) -> int:
    """Play the coordinator for processes "a" and "b" over ``instants`` instants from ``t``;
    returns the instant after the last one (or ``t`` when nothing more was due)."""
    for _ in range(instants):
        expect = {"a": 0, "b": 0}
        k = 0
        while True:
            ra, rb = await asyncio.gather(da.run_round(t, k, expect["a"]), db.run_round(t, k, expect["b"]))
            net.deliver()
            sent = {"a": ra["sent"].get("a", 0) + rb["sent"].get("a", 0), "b": ra["sent"].get("b", 0) + rb["sent"].get("b", 0)}
            if not any(sent.values()) and not ra["again"] and not rb["again"]:
                break
            expect, k = sent, k + 1
        dues = [d for d in (ra["next_due"], rb["next_due"]) if d is not None]
        if not dues:
            break
        t = max(min(dues), t + 1)
    return t


async def run_world(seed: int, counted: Counter | None = None) -> dict[str, list]:
    """Four prosumers and an aggregator through 40 instants; ``counted`` gets what the two
    drivers counted of the messages between them, and ``counted["sent"]`` each role's sends."""
    net = Net(seed)
    clock_a, clock_b = VirtualClock(NOW), VirtualClock(NOW)
    parts = {AGG: "a", **{f"p{i}@localhost": "b" for i in range(4)}}
    roles = {jid: "aggregator" if part == "a" else "prosumer" for jid, part in parts.items()}
    da, db = VirtualDriver(clock_a, parts, roles), VirtualDriver(clock_b, parts, roles)
    agg = Shell(AggregatorEngine(AGG, AggregatorConfig(cycle=900)), net)
    pros = [Shell(ProsumerEngine(f"p{i}@localhost", AGG), net, [(NOW, offer(("ev-overnight", "dishwasher-xor")[i % 2], i))])
            for i in range(4)]
    da.add(agg)  # type: ignore[arg-type]
    for p in pros:
        db.add(p)  # type: ignore[arg-type]
    net.shells = {s.jid: s for s in [agg, *pros]}
    da.start()
    db.start()
    await run_instants(da, db, net, NOW, 40)
    if counted is not None:
        counted.update(merge_summaries([da.summary(), db.summary()])["work"])
    return {s.jid: sorted((tbl, k, repr(v)) for tbl, rows in s.engine.ledger.tables.items() for k, v in rows.items())
            for s in [agg, *pros]} | {"handled": agg.handled}


async def test_arrival_order_does_not_change_what_the_agents_do():
    first = await run_world(seed=1)
    second = await run_world(seed=2)
    handled = first.pop("handled"), second.pop("handled")
    assert handled[0] == handled[1]  # same order of handling although arrivals were shuffled
    assert first == second
    offers = [v for jid, rows in first.items() if jid != AGG for tbl, k, v in rows if tbl == "offers"]
    assert offers and all("ASSIGNED" in v or "SETTLED" in v or "ACCEPTED" in v for v in offers)


async def test_messages_of_a_round_are_handled_by_sender():
    result = await run_world(seed=3)
    senders = result["handled"]
    # the first round of offers reached the aggregator from four prosumers at once: by sender
    first_four = senders[:4]
    assert first_four == sorted(first_four)


async def test_messages_between_the_runs_agents_are_counted_by_sender_and_receiver_role():
    """bench/ladder_reference.py makes plain clients exchange as many stanzas as the agents did:
    the drivers count every protocol message an agent receives from another of the run's agents,
    keyed by both roles, and the counts match what the senders sent."""
    sent: Counter = Counter()
    original = Net.send

    def counting(net: Net, sender: Shell, send: Send) -> None:
        sent[message_key(sender.role, net.shells[send.to].role)] += 1
        original(net, sender, send)

    counted: Counter = Counter()
    Net.send = counting  # type: ignore[method-assign]
    try:
        await run_world(seed=4, counted=counted)
    finally:
        Net.send = original  # type: ignore[method-assign]
    messages = {k: v for k, v in counted.items() if k.startswith("messages_")}
    assert messages == dict(sent)
    assert messages["messages_prosumer_to_aggregator"] >= 4  # four offers at least, and their acks back
    assert messages["messages_aggregator_to_prosumer"] >= 4


async def test_messages_from_outside_the_run_are_not_counted():
    driver = VirtualDriver(VirtualClock(NOW), {AGG: "a"}, {AGG: "aggregator"})
    agg = Shell(AggregatorEngine(AGG, AggregatorConfig(cycle=900)), Net(0))
    driver.add(agg)  # type: ignore[arg-type]
    fo = offer("ev-overnight", 0)
    driver.received(agg, "stranger@localhost", OfferMessage("insert", fo.id, fo), (0, 0))  # type: ignore[arg-type]
    assert driver._inbox[id(agg)]  # it was taken in, only not counted
    assert not any(k.startswith("messages_") for k in driver.summary().get("work", {}))


def test_shuffling_really_changes_arrival_order():
    """The test above would prove nothing if the network delivered in send order."""
    orders = set()
    for seed in range(5):
        net = Net(seed)
        net.queue = [(None, replace(Send("x", None), to=str(i)), (0, 0)) for i in range(6)]  # type: ignore[arg-type]
        net.rng.shuffle(net.queue)
        orders.add(tuple(s.to for _, s, _ in net.queue))
    assert len(orders) > 1


async def test_an_operators_step_between_rounds_is_seen_at_the_next_round():
    """A prosumer paused from the start holds its offer; an operator resumes it while the
    coordinator is between rounds (outside any round): the next round sees its offer due."""
    net = Net(0)
    parts = {AGG: "a", "p0@localhost": "b"}
    da, db = VirtualDriver(VirtualClock(NOW), parts), VirtualDriver(VirtualClock(NOW), parts)
    agg = Shell(AggregatorEngine(AGG, AggregatorConfig(cycle=900)), net)
    pro = Shell(ProsumerEngine("p0@localhost", AGG), net, [(NOW, offer("ev-overnight", 0))])
    pro.engine.steer("alice@example.org", "pause", now=NOW)
    da.add(agg)  # type: ignore[arg-type]
    db.add(pro)  # type: ignore[arg-type]
    net.shells = {s.jid: s for s in (agg, pro)}
    da.start()
    db.start()
    t = await run_instants(da, db, net, NOW, 3)
    assert pro.engine.counts() == {"initial": 1} and agg.engine.counts() == {}
    await pro.handle(lambda now: pro.engine.steer("alice@example.org", "resume", now=now)[0])
    await run_instants(da, db, net, t, 1)
    (rec,) = pro.engine.ledger.table("offers").values()
    assert rec.sent_at == t and rec.answered_at == t  # sent at the next instant, and answered


class FullDiskShell(Shell):
    """A shell whose store cannot write for its first ``fails`` tries (a full disk)."""

    def __init__(self, engine: Engine, net: "Net", fails: int) -> None:
        super().__init__(engine, net)
        self.fails = fails
        self.tries = 0

    @property
    def store_failing(self) -> bool:  # type: ignore[override]
        return self.tries <= self.fails

    async def retry_store(self) -> bool:
        self.tries += 1
        return not self.store_failing


async def test_scenario_time_holds_while_an_agents_store_cannot_write():
    """Found by the disk drill: with a full disk, time ran on to the scenario's end while the
    agent could persist (and so send) nothing; its offers were never measured. The round now
    ends only when the store has written what it held back."""
    net = Net(0)
    driver = VirtualDriver(VirtualClock(NOW), {AGG: "a"})
    agent = FullDiskShell(AggregatorEngine(AGG, AggregatorConfig(cycle=900)), net, fails=3)
    driver.add(agent)  # type: ignore[arg-type]
    net.shells = {agent.jid: agent}
    driver.start()
    await driver.run_round(NOW, 0, 0)
    assert agent.tries == 4 and not agent.store_failing
