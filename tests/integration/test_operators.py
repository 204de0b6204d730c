"""Operators steer agents from a plain XMPP client (slixmpp, no VME code) on a real server:
chat commands and XEP-0050 ad-hoc commands on each role, access by the ``[operators]`` lists
(a viewer cannot steer, a stranger changes nothing), ``pause``/``resume`` of a prosumer's new
offers, and ``watch on`` lines for a whole offer lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time

import pytest

from tests.integration.conftest import next_item
from tests.integration.test_presence import eventually
from tests.protocol.test_market_engine import LIQ
from vmenergy.agents import AggregatorAgent, MarketAgent, ProsumerAgent, ServerAddress
from vmenergy.agents.operator.adhoc import COMMANDS_NS
from vmenergy.flexoffer import FlexOffer, Profile, Slice, State, TotalEnergy
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.engine import Send, bare
from vmenergy.protocol.market import MarketConfig
from vmenergy.protocol.operators import Operators
from vmenergy.protocol.steering import STEERING
from vmenergy.runtime.clock import AcceleratedClock, RealClock

pytestmark = pytest.mark.integration


def future_offer(oid: str, issuer: str, now: float, hours: int = 1) -> FlexOffer:
    t = int(now) // 900
    return FlexOffer(id=oid, issuer=issuer, start_after=t + 4 * hours, start_before=t + 4 * hours + 8,
                     profiles=(Profile((Slice(1, 0.5, 2.0), Slice(1, 0.5, 2.0)), total=TotalEnergy(1.5, 3.0)),))


async def reply_from(client, jid: str, timeout: float = 15.0, containing: str = "") -> str:
    """The next chat body from ``jid`` (containing ``containing``), skipping other messages."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await next_item(client.messages, max(0.1, deadline - time.monotonic()), f"a reply from {jid}")
        if msg["from"].bare == bare(jid) and msg["body"] and msg["type"] in ("chat", "normal") \
                and containing in msg["body"]:
            return msg["body"]


async def ask(client, jid: str, text: str) -> str:
    client.send_message(mto=jid, mbody=text, mtype="chat")
    return await reply_from(client, jid)


def snapshot(agent) -> dict:
    return copy.deepcopy(agent.engine.ledger.tables)


class World:
    """A market, an aggregator bidding on it and a prosumer with two accepted offers, each
    with alice as controller and bob as viewer; alice, bob and mallory are plain clients."""

    def __init__(self, info, tmp_path) -> None:
        self.info = info
        addr = ServerAddress(info.host, info.port, info.ca_file)
        ops = Operators((info.jid("alice"),), (info.jid("bob"),))
        common = dict(server=addr, clock=RealClock(), tick=0.2, operators=ops)
        self.market = MarketAgent(info.jid("op-market"), "pw-m", config=MarketConfig(liquidity=LIQ, time_limit=10),
                                  store_path=tmp_path / "m.sqlite", **common)
        self.aggregator = AggregatorAgent(
            info.jid("op-agg"), "pw-a", config=AggregatorConfig(upstream="market", upstream_jid=info.jid("op-market"),
                                                                cycle=10_000, lead=60),
            store_path=tmp_path / "a.sqlite", **common)
        me = info.jid("op-house")
        now = time.time()
        self.prosumer = ProsumerAgent(me, "pw-p", aggregator=info.jid("op-agg"),
                                      offers=[(0, future_offer(f"op-fo-{i}", me, now)) for i in (1, 2)],
                                      store_path=tmp_path / "p.sqlite", **common)
        self.agents = (self.market, self.aggregator, self.prosumer)

    async def start(self) -> None:
        await self.market.start(auto_register=True)
        await self.aggregator.start(auto_register=True)
        # its first round (at start) must be over before offers come, so they wait to be aggregated
        await eventually(lambda: self.aggregator.engine.ledger.get("meta", "next_cycle", 0) > 0, what="first round")
        await self.prosumer.start(auto_register=True)
        await eventually(lambda: self.aggregator.engine.counts().get("accepted") == 2, what="offers accepted")

    async def stop(self) -> None:
        for a in reversed(self.agents):
            await a.stop()


@contextlib.asynccontextmanager
async def running_world(info, tmp_path, xmpp_client):
    w = World(info, tmp_path)
    await w.start()
    try:
        w.alice = await xmpp_client(info, "alice", "alice-pw")
        w.bob = await xmpp_client(info, "bob", "bob-pw")
        w.mallory = await xmpp_client(info, "mallory", "mallory-pw")
        yield w
    finally:
        await w.stop()


@pytest.fixture
async def world(prosody_server, tmp_path, xmpp_client):
    async with running_world(prosody_server, tmp_path, xmpp_client) as w:
        yield w


@pytest.fixture
async def world_on_both(real_xmpp_server, tmp_path, xmpp_client):
    """The world on Prosody, then on ejabberd."""
    async with running_world(real_xmpp_server, tmp_path, xmpp_client) as w:
        yield w


async def test_chat_commands_answer_by_role_and_access_and_a_stranger_changes_nothing(world):
    for agent in world.agents:
        jid = str(agent.jid)
        status = await ask(world.alice, jid, "  Status ")
        assert status.startswith(f"{agent.role} {jid}\n{agent.engine.status()}")
        viewer_help = await ask(world.bob, jid, "help")
        assert "you are a viewer" in viewer_help and "pause" not in viewer_help
        before = snapshot(agent)
        assert await ask(world.bob, jid, "pause") == "not authorized: pause is for controllers"
        assert await ask(world.mallory, jid, "pause") == "not authorized"
        assert snapshot(agent) == before and not agent.engine.paused
    offers = await ask(world.bob, str(world.aggregator.jid), "offers accepted")
    assert offers.splitlines()[0] == "2 offers: 2 accepted" and "op-fo-1  op-house  accepted" in offers
    market = await ask(world.alice, str(world.market.jid), "market")
    assert "s-1      open" in market
    mistake = await ask(world.alice, str(world.prosumer.jid), "withdraw nope")
    assert mistake.startswith("offers: 'nope' is not one of op-fo-1, op-fo-2") and "usage: withdraw ID" in mistake


async def full_jid_from_help(client, jid: str) -> str:
    """What a person does: ``help`` names the full JID where the ad-hoc commands are."""
    text = await ask(client, jid, "help")
    return text.rsplit("(XEP-0050): ", 1)[1].strip()


def fields(iq) -> dict:
    """The fields of the form in an ad-hoc answer, by name."""
    return dict(iq["command"]["form"].get_fields())


def notes(iq) -> list[tuple[str, str]]:
    return list(iq["command"]["notes"] or [])


async def command(client, to: str, node: str, action: str = "execute", sessionid=None, values=None):
    """One ad-hoc request; ``values`` are submitted as a form."""
    payload = None
    if values is not None:
        payload = client.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in values.items():
            payload.add_field(var=var, value=value)
    return await client.plugin["xep_0050"].send_command(to, node, action=action, sessionid=sessionid,
                                                        payload=payload)


async def test_adhoc_commands_are_listed_by_access_and_run_with_forms(world_on_both):
    world = world_on_both
    from slixmpp.exceptions import IqError

    for c in (world.alice, world.bob, world.mallory):
        c.register_plugin("xep_0004")
        c.register_plugin("xep_0050")
    agg = await full_jid_from_help(world.alice, str(world.aggregator.jid))
    assert agg.startswith(str(world.aggregator.jid) + "/")
    disco = world.alice.plugin["xep_0030"]
    info = await disco.get_info(jid=agg)
    features = set(info["disco_info"]["features"])
    # what an agent does, and nothing else (SPADE loads HTTP upload; registration brings OOB)
    assert features == {COMMANDS_NS, "http://jabber.org/protocol/disco#info", "jabber:x:data", "urn:xmpp:ping"}
    assert info["disco_info"]["identities"] == {("client", "bot", None, "VME aggregator")}
    names = lambda iq: [item[1] for item in iq["disco_items"]["items"]]  # noqa: E731
    controller = names(await disco.get_items(jid=agg, node=COMMANDS_NS))
    assert {"status", "offers", "aggregates", "pause", "resume", "objective", "market"} <= set(controller)
    viewer = names(await world.bob.plugin["xep_0030"].get_items(jid=agg, node=COMMANDS_NS))
    assert "status" in viewer and "pause" not in viewer and "objective" not in viewer
    assert names(await world.mallory.plugin["xep_0030"].get_items(jid=agg, node=COMMANDS_NS)) == []

    # a read-only command: one step, the answer in a note
    iq = await command(world.bob, agg, "status")
    assert iq["command"]["status"] == "completed"
    ((kind, text),) = notes(iq)
    assert kind == "info" and text.startswith(f"aggregator {world.aggregator.jid}\n{world.aggregator.engine.status()}")

    # refused: a viewer steering, a stranger reading; nothing changes
    before = snapshot(world.aggregator)
    for client, node in ((world.bob, "pause"), (world.mallory, "status")):
        with pytest.raises(IqError) as err:
            await command(client, agg, node)
        assert err.value.iq["error"]["condition"] == "forbidden"
    assert snapshot(world.aggregator) == before

    # a two-step command: the objective's kind, then its series; a bad value comes back in the form
    iq = await command(world.alice, agg, "objective")
    assert iq["command"]["status"] == "executing" and fields(iq)["kind"]["type"] == "list-single"
    assert "target" in [o["value"] for o in fields(iq)["kind"]["options"]]
    sid = iq["command"]["sessionid"]
    with pytest.raises(IqError) as err:  # a session is its starter's: another JID cannot go on with it
        await command(world.bob, agg, "objective", "next", sid, {"kind": "energy_max"})
    assert err.value.iq["error"]["condition"] == "forbidden"
    iq = await command(world.alice, agg, "objective", "next", sid, {"kind": "target"})
    assert set(fields(iq)) == {"values", "from"}
    iq = await command(world.alice, agg, "objective", "next", sid, {"values": "5 five", "from": ""})
    assert iq["command"]["status"] == "executing" and notes(iq) == [("error", "target series: 'five' is not a number")]
    assert iq["command"]["form"]["instructions"].splitlines()[0] == "error: target series: 'five' is not a number"
    assert fields(iq)["values"].get_value() == "5 five"  # what was given, to correct
    assert world.aggregator.engine.objective() == {"kind": "peak"}
    iq = await command(world.alice, agg, "objective", "complete", sid, {"values": "5 5 4", "from": "23:00"})
    assert iq["command"]["status"] == "completed" and notes(iq) == [("info", "objective target from the next plan on")]
    assert world.aggregator.engine.objective()["values"] == [5.0, 5.0, 4.0]
    (rec,) = world.aggregator.engine.ledger[STEERING].values()
    assert (rec.operator, rec.action) == (world.info.jid("alice"), "objective")

    # the prosumer: withdraw offers chosen from a list, then confirmed
    house = await full_jid_from_help(world.alice, str(world.prosumer.jid))
    iq = await command(world.alice, house, "withdraw")
    field = fields(iq)["offers"]
    assert field["type"] == "list-multi" and [o["value"] for o in field["options"]] == ["op-fo-1", "op-fo-2"]
    sid = iq["command"]["sessionid"]
    iq = await command(world.alice, house, "withdraw", "next", sid, {"offers": ["op-fo-2"]})
    assert fields(iq)["confirm"]["label"] == "Withdraw op-fo-2?"
    iq = await command(world.alice, house, "withdraw", "complete", sid, {"confirm": True})
    assert notes(iq) == [("info", "withdrew op-fo-2")]
    await eventually(lambda: world.aggregator.engine.ledger.get("offers", "op-fo-2").offer.state is State.WITHDRAWN,
                     what="the aggregator told of the withdrawal")

    # the market: open a session now (one step); close it, choosing it from the list
    mkt = await full_jid_from_help(world.alice, str(world.market.jid))
    iq = await command(world.alice, mkt, "open")
    assert notes(iq)[0][1].startswith("opened s-2 ")
    iq = await command(world.alice, mkt, "close")
    assert [o["value"] for o in fields(iq)["session"]["options"]] == ["s-1", "s-2"]
    iq = await command(world.alice, mkt, "close", "complete", iq["command"]["sessionid"], {"session": "s-2"})
    assert notes(iq)[0][1].startswith("closed s-2 with 0 bids")
    assert world.market.engine.ledger.get("sessions", "s-2").notice.state == "closed"


async def test_pause_holds_a_prosumers_new_offers_and_resume_restarts_them(world):
    house, alice = world.prosumer, world.alice
    assert await ask(alice, str(house.jid), "pause") == "paused: sending new offers stopped until resume"
    status = await ask(world.bob, str(house.jid), "status")
    assert f"by {world.info.jid('alice')}: pause" in status
    fo = future_offer("op-fo-3", str(house.jid), time.time())
    effects = await house.handle(lambda now: house.engine.add_offer(fo, now, now))  # a device's new offer
    assert not [e for e in effects if isinstance(e, Send)]
    assert house.engine.ledger.get("offers", "op-fo-3").state is State.INITIAL
    assert await ask(alice, str(house.jid), "resume") == "resumed: sending new offers restarted"
    # the step that sends released offers is woken by the resume: no tick has to come by
    await eventually(lambda: world.aggregator.engine.counts().get("accepted") == 3, what="the held offer sent")
    assert [r.action for r in house.engine.ledger[STEERING].values()] == ["pause", "resume"]


async def test_watch_on_delivers_a_line_for_each_message_of_an_offers_lifecycle(prosody_server, tmp_path, xmpp_client):
    """Scenario time runs 1200 times the wall clock, so an offer goes from sent to billed in a
    few seconds; it starts only once the operator watches."""
    info = prosody_server
    start = float(int(time.time()) // 900 * 900)
    clock = AcceleratedClock(start, 1200.0)
    addr = ServerAddress(info.host, info.port, info.ca_file)
    ops = Operators((info.jid("alice"),))
    agg = AggregatorAgent(info.jid("w-agg"), "pw-a", config=AggregatorConfig(cycle=900, lead=60, settle_after=600),
                          server=addr, clock=clock, tick=0.1, store_path=tmp_path / "a.sqlite", operators=ops)
    me = info.jid("w-house")
    house = ProsumerAgent(me, "pw-p", aggregator=info.jid("w-agg"),
                          offers=[(int(start), future_offer("w-fo", me, start))], server=addr, clock=clock,
                          tick=0.1, store_path=tmp_path / "p.sqlite", operators=ops)
    await agg.start(auto_register=True)
    await house.start(auto_register=True)
    try:
        await asyncio.wait_for(asyncio.gather(agg.wait_ready(), house.wait_ready()), 20)
        alice = await xmpp_client(info, "alice", "alice-pw")
        assert (await ask(alice, me, "watch on")).startswith("watching")
        clock.anchor(time.time())
        await asyncio.gather(agg.start_time(), house.start_time())
        lines = []
        for part in ("→ w-agg: flex-offer w-fo (insert, v0)", "← w-agg: flexoffer w-fo accepted",
                     "← w-agg: assignment s-w-fo for w-fo", "→ w-agg: assignment s-w-fo accepted",
                     "→ w-agg: measurement m-w-fo-0 for w-fo", "← w-agg: bill bill-w-agg-1",
                     "→ w-agg: bill bill-w-agg-1 accepted"):
            lines.append(await reply_from(alice, me, timeout=30, containing=part))
        assert house.engine.counts() == {"settled": 1}
        assert (await ask(alice, me, "watch off")) == "not watching"
    finally:
        await house.stop()
        await agg.stop()


SCENARIO = """
[scenario]
name = "ops-run"
start = "2026-11-22T18:00:00Z"
until = "2026-11-23T16:00:00Z"
seed = 5

[operators]
account = "ops-run-operator"
viewers = ["{viewer}"]

[[aggregator]]
name = "ops-run-agg"
cycle = 900

[[prosumers]]
count = 2
name = "ops-run-h{{i}}"
aggregator = "ops-run-agg"
offers = ["examples/ev-overnight.json"]
"""


async def test_a_scenarios_operator_account_is_printed_and_steers_agents_in_virtual_time(prosody_server, tmp_path,
                                                                                        xmpp_client):
    """The run creates the account and prints it; while the coordinator holds scenario time the
    operator reads and steers agents of the run's processes; the run then completes."""
    from tests.integration.test_swarm import server_dict
    from vmenergy.runtime.orchestrator import Swarm
    from vmenergy.store import read_ledger

    path = tmp_path / "ops.toml"
    path.write_text(SCENARIO.format(viewer=prosody_server.jid("bob")))
    printed: list[str] = []
    server = dict(server_dict(prosody_server), run_dir=prosody_server.run_dir)
    swarm = Swarm(path, tmp_path / "run", server=server, out=printed.append)
    try:
        plan = await asyncio.to_thread(swarm.start)
        (line,) = [p for p in printed if p.startswith("operator: ")]
        jid, password = line.split()[1], line.split()[3]
        assert jid == prosody_server.jid("ops-run-operator") and password == plan.operator["password"]
        prog = await asyncio.to_thread(swarm.wait, 120, 0.3, lambda p: p.prosumer_offers.get("assigned", 0) == 2)
        assert prog.prosumer_offers.get("assigned") == 2, prog.line()
        ops = await xmpp_client(prosody_server, "ops-run-operator", password, register=False)
        agg, house = prosody_server.jid("ops-run-agg"), prosody_server.jid("ops-run-h0")
        status = await ask(ops, agg, "status")
        assert status.splitlines()[1].startswith("2 offers, 2 assigned") and "virtual clock" in status
        assert await ask(ops, house, "pause") == "paused: sending new offers stopped until resume"
        assert await ask(ops, house, "resume") == "resumed: sending new offers restarted"
        prog = await asyncio.to_thread(swarm.wait, 240)
        assert prog.done, prog.line()
    finally:
        await asyncio.to_thread(swarm.stop)
    ledger = read_ledger(tmp_path / "run" / "stores" / "ops-run-h0.sqlite")
    assert [(r.operator, r.action) for r in ledger.values("steering")] == [(jid, "pause"), (jid, "resume")]


async def test_an_operators_session_as_in_the_readme(world, tmp_path):
    """The session transcribed in agents/operator/README.md (run with -s to print it)."""
    lines: list[str] = []

    async def say(client, who: str, jid: str, text: str) -> str:
        answer = await ask(client, jid, text)
        lines.append(f"{who} -> {jid.split('@')[0]}: {text}")
        lines.extend(f"  {line}" for line in answer.splitlines())
        return answer

    agg, house = str(world.aggregator.jid), str(world.prosumer.jid)
    assert "objective KIND [args]" in await say(world.alice, "alice", agg, "help")
    assert "2 offers: 2 accepted" in await say(world.alice, "alice", agg, "offers")
    assert "op-fo-1" in await say(world.alice, "alice", house, "offer OP-FO-1")
    assert (await say(world.alice, "alice", agg, "pause")).startswith("paused")
    assert "paused" in await say(world.bob, "bob", agg, "status")
    assert await say(world.bob, "bob", agg, "resume") == "not authorized: resume is for controllers"
    assert (await say(world.alice, "alice", agg, "resume")).startswith("resumed")
    assert "closest: objective" in await say(world.alice, "alice", agg, "objectiv peak")
    assert await say(world.alice, "alice", agg, "objective energy_min") == "objective energy_min from the next plan on"
    assert await say(world.alice, "alice", house, "withdraw op-fo-2") == "withdrew op-fo-2"
    assert await say(world.mallory, "mallory", agg, "status") == "not authorized"
    (tmp_path / "transcript.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


async def test_an_agent_nobody_may_operate_registers_no_commands_and_keeps_its_identity(prosody_server, tmp_path,
                                                                                         xmpp_client):
    info = prosody_server
    agent = ProsumerAgent(info.jid("op-lonely"), "pw-lonely", aggregator=info.jid("op-nobody"),
                          server=ServerAddress(info.host, info.port, info.ca_file), clock=RealClock(), tick=0.2,
                          store_path=tmp_path / "lonely.sqlite")
    assert not agent.operators
    await agent.start(auto_register=True)
    try:
        carol = await xmpp_client(info, "carol", "carol-pw")
        disco = carol.plugin["xep_0030"]
        me = agent.client.boundjid.full
        got = await disco.get_info(jid=me)
        features = set(got["disco_info"]["features"])
        # data forms come with in-band registration (auto_register), not with commands
        assert COMMANDS_NS not in features
        assert features <= {"http://jabber.org/protocol/disco#info", "jabber:x:data", "urn:xmpp:ping"}
        assert got["disco_info"]["identities"] == {("client", "bot", None, "VME prosumer")}
        from slixmpp.exceptions import IqError

        with pytest.raises(IqError) as err:  # no commands node at all
            await disco.get_items(jid=me, node=COMMANDS_NS)
        assert err.value.iq["error"]["condition"] == "item-not-found"
        assert not agent.client.plugin.enabled("xep_0050")
    finally:
        await agent.stop()
