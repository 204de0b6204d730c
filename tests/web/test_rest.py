"""The REST interface and console of an aggregator, over HTTP against its real engine and ledger
(the agent is not connected to XMPP: what it would send a prosumer over XMPP goes nowhere, what
it sends a token holder goes to that holder's event stream)."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from vmenergy.agents import AggregatorAgent
from vmenergy.agents.config import ConfigError, build, load_config
from vmenergy.agents.web import WebConfig, issue_token
from vmenergy.agents.web.api import parse_measurement
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.aggregator import AGG_OFFERS, AggregatorConfig
from vmenergy.protocol.engine import OUTBOX, Send
from vmenergy.protocol.messages import Ack, AssignmentMessage, OfferMessage
from vmenergy.protocol.operators import Operators
from vmenergy.protocol.steering import STEERING
from vmenergy.runtime.scenario.node import check_node

ALICE, BOB, EMS, HOUSE = "alice@localhost", "bob@localhost", "ems@localhost", "house@localhost"


def offer_json(oid: str, issuer: str = EMS, hours: int = 1, **extra) -> dict:
    t = int(time.time()) // 900 + 4 * hours
    return {"id": oid, "issuer": issuer, "start_after": format_utc(t * 900), "start_before": format_utc((t + 4) * 900),
            "profiles": [{"slices": [{"duration": 1, "min": 0.5, "max": 2.0}, {"duration": 1, "min": 0.5, "max": 2.0}]}],
            **extra}


async def post_offers(box, *offers: tuple[str, int]) -> None:
    """The EMS posts offers ``(id, hours ahead)``, each accepted."""
    for oid, hours in offers:
        r = await box.client.post("/flexoffer", headers=box.auth(box.ems), data=json.dumps(offer_json(oid, hours=hours)))
        assert r.status == 201, await r.text()


class Box:
    """An aggregator with its web side, and tokens: alice and the EMS control, bob views."""

    def __init__(self, tmp_path, enrolment=(EMS, HOUSE)) -> None:
        self.tokens_file = tmp_path / "tokens.json"
        self.alice = issue_token(self.tokens_file, ALICE)
        self.bob = issue_token(self.tokens_file, BOB)
        self.ems = issue_token(self.tokens_file, EMS)
        self.stranger = issue_token(self.tokens_file, "mallory@localhost")  # a token, but no operator
        self.agent = AggregatorAgent("agg@localhost", "pw", config=AggregatorConfig(cycle=10_000, enrolment=enrolment),
                                     operators=Operators((ALICE, EMS), (BOB,)),
                                     web=WebConfig(tokens=str(self.tokens_file)))

    def auth(self, token: str) -> dict:
        return {"Authorization": f"Bearer {token}"}


async def serve(agent) -> TestClient:
    """The agent's web side without listening on a port of its own: a test client serves its app."""
    agent.mount_web()
    client = TestClient(TestServer(agent.web.app))
    await client.start_server()
    return client


@pytest.fixture
async def box(tmp_path):
    b = Box(tmp_path)
    b.client = await serve(b.agent)
    yield b
    await b.client.close()


async def test_nothing_is_readable_without_a_token_and_a_token_holder_who_is_no_operator_gets_nothing(box):
    for path in ("/flexoffer", "/kpi", "/openapi.json", "/settings", "/chart", "/bill", "/contract"):
        r = await box.client.get(path)
        assert r.status == 401, path
        assert (await r.json())["error"]["path"] == "Authorization"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await box.client.get(path, headers=box.auth(box.stranger))
        assert r.status == 401, path
    r = await box.client.get("/console/dashboard", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login?next=/console/dashboard"


async def test_spades_own_pages_that_could_stop_the_agent_are_not_served(box):
    r = await box.client.get("/spade/stop", headers=box.auth(box.alice))
    assert r.status == 404
    assert (await box.client.get("/flexoffer", headers=box.auth(box.alice))).status == 200


async def test_a_viewer_reads_but_cannot_change_anything(box):
    r = await box.client.get("/flexoffer", headers=box.auth(box.bob))
    assert r.status == 200
    for method, path, body in (("POST", "/flexoffer", offer_json("v-1")), ("POST", "/settings", {"aggregation": False}),
                               ("DELETE", "/flexoffer/v-1", None)):
        r = await box.client.request(method, path, headers=box.auth(box.bob), data=json.dumps(body))
        assert r.status == 403, path
        assert "viewer" in (await r.json())["error"]["reason"]
    assert len(box.agent.engine.ledger[AGG_OFFERS]) == 0
    assert not box.agent.engine.paused


async def test_an_offer_posted_over_rest_is_in_the_same_ledger_as_one_over_xmpp_owned_by_the_token_holder(box):
    r = await box.client.post("/flexoffer", headers=box.auth(box.ems), data=json.dumps(offer_json("rest-1")))
    assert r.status == 201
    assert await r.json() == {"status": "accepted", "ref": "rest-1", "version": 0, "id": "rest-1"}
    # the same offer sent by a prosumer over XMPP, through the engine directly
    fo = FlexOffer.from_dict(offer_json("xmpp-1", issuer=HOUSE))
    await box.agent.handle(lambda now: box.agent.engine.receive(HOUSE, OfferMessage("insert", fo.id, fo), now))
    recs = box.agent.engine.ledger[AGG_OFFERS]
    assert recs.require("rest-1").owner == EMS and recs.require("xmpp-1").owner == HOUSE
    assert recs.require("rest-1").offer.state == recs.require("xmpp-1").offer.state
    body = await (await box.client.get("/flexoffer/rest-1", headers=box.auth(box.bob))).json()
    assert body["owner"] == EMS and body["state"] == "accepted" and body["offer"]["id"] == "rest-1"


async def test_a_bad_offer_gets_the_field_path_and_reason_of_the_wire_contract(box):
    bad = offer_json("bad-1")
    bad["profiles"][0]["slices"][1]["min"] = 5.0
    r = await box.client.post("/flexoffer", headers=box.auth(box.ems), data=json.dumps(bad))
    assert r.status == 400
    with pytest.raises(FlexOfferError) as exc:
        FlexOffer.from_json(json.dumps(bad))
    assert (await r.json())["error"] == {"path": exc.value.path, "reason": exc.value.reason}
    r = await box.client.post("/flexoffer", headers=box.auth(box.ems), data=b"{not json")
    assert r.status == 400 and (await r.json())["error"]["path"] == "(document)"


async def test_the_engines_refusal_is_the_same_reason_an_xmpp_ack_gives(box, tmp_path):
    # the issuer is not the sender: the engine's rule, whatever the channel
    doc = offer_json("wrong-issuer", issuer=HOUSE)
    r = await box.client.post("/flexoffer", headers=box.auth(box.ems), data=json.dumps(doc))
    assert r.status == 422
    fo = FlexOffer.from_dict(dict(doc, id="wrong-issuer-2"))
    effects = box.agent.engine.receive(EMS, OfferMessage("insert", fo.id, fo), 0)
    ack = next(e.msg for e in effects if isinstance(e, Send) and isinstance(e.msg, Ack))
    assert (await r.json())["error"]["reason"] == ack.reason == f"issuer {HOUSE} is not the sender {EMS}"
    # alice controls, but is not enrolled as a prosumer: refused by enrolment, as over XMPP
    r = await box.client.post("/flexoffer", headers=box.auth(box.alice), data=json.dumps(offer_json("a-1", ALICE)))
    assert r.status == 422 and (await r.json())["error"]["reason"] == f"{ALICE} is not enrolled with this aggregator"


async def test_update_and_delete_go_through_the_engines_rules(box):
    h = box.auth(box.ems)
    assert (await box.client.post("/flexoffer", headers=h, data=json.dumps(offer_json("u-1")))).status == 201
    stale = await box.client.put("/flexoffer/u-1", headers=h, data=json.dumps(offer_json("u-1")))
    assert stale.status == 422 and "stale version 0" in (await stale.json())["error"]["reason"]
    other = await box.client.put("/flexoffer/u-2", headers=h, data=json.dumps(offer_json("u-1", version=1)))
    assert other.status == 400 and (await other.json())["error"]["path"] == "id"
    ok = await box.client.put("/flexoffer/u-1", headers=h, data=json.dumps(offer_json("u-1", version=1)))
    assert ok.status == 200 and (await ok.json())["version"] == 1
    gone = await box.client.delete("/flexoffer/u-1", headers=h)
    assert gone.status == 200
    assert box.agent.engine.ledger[AGG_OFFERS].require("u-1").offer.state.value == "withdrawn"
    missing = await box.client.delete("/flexoffer/nope", headers=h)
    assert missing.status == 422 and (await missing.json())["error"]["reason"] == "unknown offer nope"


async def test_filters_narrow_the_offer_list_and_a_bad_filter_names_the_parameter(box):
    h = box.auth(box.ems)
    await post_offers(box, ("f-1", 1), ("f-2", 30))
    fo = FlexOffer.from_dict(offer_json("f-3", issuer=HOUSE))
    await box.agent.handle(lambda now: box.agent.engine.receive(HOUSE, OfferMessage("insert", fo.id, fo), now))
    await box.client.delete("/flexoffer/f-1", headers=h)

    async def ids(query: str) -> list[str]:
        r = await box.client.get("/flexoffer" + query, headers=box.auth(box.bob))
        assert r.status == 200, await r.text()
        return [o["id"] for o in (await r.json())["offers"]]

    assert await ids("") == ["f-1", "f-2", "f-3"]
    assert await ids(f"?prosumer={HOUSE}") == ["f-3"]
    assert await ids("?state=withdrawn") == ["f-1"]
    soon = format_utc(int(time.time()) + 12 * 3600)
    assert await ids(f"?to={soon}") == ["f-1", "f-3"]
    r = await box.client.get("/flexoffer?state=cooked", headers=box.auth(box.bob))
    assert r.status == 400 and (await r.json())["error"]["path"] == "state"
    r = await box.client.get("/flexoffer?from=yesterday", headers=box.auth(box.bob))
    assert r.status == 400 and (await r.json())["error"]["path"] == "from"


async def test_a_setting_change_is_an_engine_step_recorded_with_who_made_it(box):
    h = box.auth(box.alice)
    r = await box.client.post("/settings", headers=h, data=json.dumps({"aggregation": False}))
    assert r.status == 200 and box.agent.engine.paused
    r = await box.client.post("/settings", headers=h, data=json.dumps({"objective": {"kind": "energy_min"}}))
    assert r.status == 200 and box.agent.engine.objective() == {"kind": "energy_min"}
    bad = await box.client.post("/settings", headers=h, data=json.dumps({"objective": {"kind": "magic"}}))
    assert bad.status == 422 and (await bad.json())["error"]["status"] == "refused"
    log = [(rec.operator, rec.action) for rec in box.agent.engine.ledger[STEERING].values()]
    assert log == [(ALICE, "pause"), (ALICE, "objective")]
    s = await (await box.client.get("/settings", headers=box.auth(box.bob))).json()
    assert s["paused"] is True and [e["by"] for e in s["log"]] == [ALICE, ALICE]
    r = await box.client.post("/settings", headers=h, data=json.dumps({"aggregation": "off"}))
    assert r.status == 400 and (await r.json())["error"]["path"] == "aggregation"


async def test_trading_is_switched_in_the_settings_and_its_settings_are_shown(box, tmp_path):
    # an aggregator that plans itself has nothing to switch
    s = await (await box.client.get("/settings", headers=box.auth(box.bob))).json()
    assert s["trading"] is None and s["trading_settings"] is None
    r = await box.client.post("/settings", headers=box.auth(box.alice), data=json.dumps({"trading": False}))
    assert r.status == 422 and "no upstream to trade with" in (await r.json())["error"]["reason"]
    # one that bids on a market
    tokens = tmp_path / "trader-tokens.json"
    alice, bob = issue_token(tokens, ALICE), issue_token(tokens, BOB)
    agent = AggregatorAgent("trader@localhost", "pw", operators=Operators((ALICE,), (BOB,)),
                            config=AggregatorConfig(upstream="market", upstream_jid="market@localhost",
                                                    trading={"margin": 0.1}),
                            web=WebConfig(tokens=str(tokens)))
    client = await serve(agent)
    try:
        s = await (await client.get("/settings", headers=box.auth(bob))).json()
        assert s["trading"] is True and s["trading_settings"]["margin"] == 0.1
        r = await client.post("/settings", headers=box.auth(bob), data=json.dumps({"trading": False}))
        assert r.status == 403 and agent.engine.trading_on
        r = await client.post("/settings", headers=box.auth(alice), data=json.dumps({"trading": "off"}))
        assert r.status == 400 and (await r.json())["error"]["path"] == "trading"
        r = await client.post("/settings", headers=box.auth(alice), data=json.dumps({"trading": False}))
        assert r.status == 200 and not agent.engine.trading_on
        assert (await r.json())["outcomes"][0].startswith("trading off")
        page = await (await client.get("/console/settings", headers={**box.auth(bob), "Accept": "text/html"})).text()
        assert "off (new aggregates planned here)" in page and 'id="trading-settings"' in page
    finally:
        await client.close()


async def test_an_assignment_for_a_token_holder_arrives_on_its_stream_and_is_acknowledged_once_written(box):
    h = box.auth(box.ems)
    assert (await box.client.post("/flexoffer", headers=h, data=json.dumps(offer_json("s-1")))).status == 201
    rec = box.agent.engine.ledger[AGG_OFFERS].require("s-1")
    # the engine assigns it (what a planning round does), as an engine step
    part = Schedule("s-1", rec.offer.earliest_start(), (1.0, 1.0), resolution=900)
    await box.agent.handle(lambda now: box.agent.engine._send_assignment("s-1", part, now))
    assert len(box.agent.engine.ledger[OUTBOX]) == 1
    resp = await box.client.get("/flexoffer/stream", headers=h)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    event = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
    name, data = event.decode().strip().split("\n")
    assert name == "event: assignment"
    assert Schedule.from_dict(json.loads(data[len("data: "):])).offer_id == "s-1"
    for _ in range(100):  # the ack is an engine step after the write
        if not box.agent.engine.ledger[OUTBOX]:
            break
        await asyncio.sleep(0.05)
    assert not box.agent.engine.ledger[OUTBOX]
    assert box.agent.engine.ledger[AGG_OFFERS].require("s-1").schedule_confirmed
    resp.close()


async def test_a_measurement_posted_over_rest_is_parsed_with_its_field_paths(box):
    with pytest.raises(FlexOfferError) as exc:
        parse_measurement(json.dumps({"id": "m", "offer_id": "x", "start": "2026-11-23T01:00:00Z", "energy": "1"}))
    assert exc.value.path == "energy"
    r = await box.client.post("/flexoffer/measurement", headers=box.auth(box.ems),
                              data=json.dumps({"id": "m", "offer_id": "x", "start": "2026-11-23T01:07:00Z",
                                               "energy": [1.0]}))
    assert r.status == 400 and (await r.json())["error"]["path"] == "start"
    r = await box.client.post("/flexoffer/measurement", headers=box.auth(box.ems),
                              data=json.dumps({"id": "m", "offer_id": "x", "start": "2026-11-23T01:00:00Z",
                                               "energy": [1.0]}))
    assert r.status == 422 and (await r.json())["error"]["reason"] == "unknown offer x"


async def test_the_chart_and_kpis_describe_the_portfolio(box):
    h = box.auth(box.ems)
    assert (await box.client.post("/flexoffer", headers=h, data=json.dumps(offer_json("c-1")))).status == 201
    chart = await (await box.client.get("/chart", headers=h)).json()
    # the window: starts t..t+4, two slices: six intervals
    assert len(chart["t"]) == 6 and max(chart["max"]) == 2.0 and chart["scheduled"] == [0.0] * 6
    k = await (await box.client.get("/kpi", headers=h)).json()
    assert k["offers"] == {"accepted": 1} and k["kpis"] is None and k["why"]
    r = await box.client.get("/timeseries/schedule/2026-01-02T00:00:00Z/2026-01-01T00:00:00Z", headers=h)
    assert r.status == 400 and (await r.json())["error"]["path"] == "to"
    r = await box.client.get("/timeseries/price/2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", headers=h)
    assert r.status == 404 and (await r.json())["error"]["path"] == "kind"


async def test_login_sets_a_strict_cookie_and_a_change_from_another_site_is_refused(box):
    r = await box.client.post("/login", data={"token": "wrong", "next": "/console/loads"}, allow_redirects=False)
    assert r.status == 401
    r = await box.client.post("/login", data={"token": box.alice, "next": "//evil.example/"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = await box.client.post("/settings", data=json.dumps({"aggregation": False}),
                              headers={"Origin": "http://evil.example"})
    assert r.status == 403 and (await r.json())["error"]["path"] == "Origin"
    assert not box.agent.engine.paused
    page = await box.client.get("/console/loads")
    assert page.status == 200 and "Loads" in await page.text()


async def test_the_token_file_keeps_digests_only_and_must_be_private(tmp_path):
    path = tmp_path / "t.json"
    token = issue_token(path, "Alice@Localhost")
    assert token not in path.read_text() and "alice@localhost" in path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    agent_cfg = WebConfig(tokens=str(path))
    from vmenergy.agents.web import Tokens

    with pytest.raises(FlexOfferError) as exc:
        Tokens.load(agent_cfg.tokens)
    assert exc.value.path == "tokens" and "chmod 600" in exc.value.reason


async def test_a_token_added_or_removed_counts_from_the_next_request_and_a_broken_file_keeps_the_old(box):
    carol = "carol@localhost"
    box.agent.operators = Operators((ALICE, EMS, carol), (BOB,))
    token = issue_token(box.tokens_file, carol)  # while the agent runs, as `vmenergy web-token` would
    assert (await box.client.get("/kpi", headers=box.auth(token))).status == 200
    good = box.tokens_file.read_bytes()
    box.tokens_file.write_text("{not json")  # an operator's slip: everyone keeps their access
    assert (await box.client.get("/kpi", headers=box.auth(token))).status == 200
    assert "not JSON" in (box.agent.console._tokens.problem or "")
    box.tokens_file.write_bytes(good + b"\n")  # mended
    assert (await box.client.get("/kpi", headers=box.auth(token))).status == 200
    assert box.agent.console._tokens.problem is None
    box.tokens_file.unlink()  # the file removed: no token opens anything
    assert (await box.client.get("/kpi", headers=box.auth(token))).status == 401
    assert (await box.client.get("/kpi", headers=box.auth(box.alice))).status == 401


def test_web_settings_are_checked_with_the_key_named():
    with pytest.raises(FlexOfferError) as exc:
        WebConfig(host="localhost")
    assert exc.value.path == "host"
    with pytest.raises(FlexOfferError) as exc:
        WebConfig(port=70000)
    assert exc.value.path == "port"
    assert WebConfig().host == "127.0.0.1"  # loopback unless configured otherwise


def test_a_node_config_with_a_web_table_is_checked_and_builds_an_agent_with_it(tmp_path):
    text = """
[agent]
jid = "agg@localhost"
password_file = "pw"
[aggregator]
enrolment = "open"
[web]
port = 8088
tokens = "tokens.json"
"""
    problems = check_node({"agent": {"jid": "agg@localhost", "password_file": "pw"},
                           "aggregator": {"enrolment": "open"}, "web": {"port": 8088, "colour": "red"}}, text)
    assert [p.path for p in problems if not p.warning] == ["web.colour"]
    (tmp_path / "pw").write_text("secret")
    os.chmod(tmp_path / "pw", 0o600)
    cfg = tmp_path / "agg.toml"
    cfg.write_text(text)
    agent = build("aggregator", load_config(cfg))
    assert agent.web_config == WebConfig(port=8088, tokens=str(tmp_path / "tokens.json"))
    cfg.write_text(text.replace("port = 8088", "host = \"everywhere\""))
    with pytest.raises(ConfigError) as exc:
        build("aggregator", load_config(cfg))
    assert exc.value.path.startswith("web.host")


async def test_the_loads_page_filters_by_prosumer_state_and_period_and_names_a_bad_field(box):
    h = box.auth(box.ems)
    await post_offers(box, ("p-1", 1), ("p-2", 30))
    fo = FlexOffer.from_dict(offer_json("p-3", issuer=HOUSE))
    await box.agent.handle(lambda now: box.agent.engine.receive(HOUSE, OfferMessage("insert", fo.id, fo), now))

    async def rows(query: str) -> str:
        r = await box.client.get("/console/loads" + query, headers=h)
        assert r.status == 200
        return await r.text()

    page = await rows(f"?prosumer={HOUSE}&state=")
    assert "p-3" in page and "p-1" not in page
    soon = format_utc(int(time.time()) + 12 * 3600)[:16]  # as the browser's datetime-local sends it
    page = await rows(f"?to={soon}")
    assert "p-1" in page and "p-3" in page and "p-2" not in page
    assert "to: not an ISO 8601 UTC time" in await rows("?to=tomorrow")
    # the envelope chart of a prosumer holds that prosumer's offers only
    chart = await (await box.client.get(f"/chart?prosumer={HOUSE}", headers=h)).json()
    assert max(chart["max"]) == 2.0 and chart["market"] == [0.0] * len(chart["t"])


def test_a_scenarios_web_table_is_checked_with_its_keys(tmp_path):
    from tests.scenario.test_check import VALID, check

    rc, out, f = check(tmp_path, VALID + '\n[web]\nroles = ["prosumer"]\nhost = "my-box"\n')
    assert rc == 1
    for where in (":33: web.roles[0]: \"aggregator\" or \"market\"", ":34: web.host: 'my-box' is not an IP address"):
        assert where in out, out
    rc, out, f = check(tmp_path, VALID + '\n[web]\nport = 99999\n')
    assert rc == 1 and ":33: web.port: must be <= 65535" in out, out
    rc, out, f = check(tmp_path, VALID + '\n[web]\nport = 8400\n')
    assert rc == 0, out


async def test_a_prosumer_box_and_a_market_serve_their_own_pages_and_resources(tmp_path):
    from vmenergy.agents import MarketAgent, ProsumerAgent
    from vmenergy.protocol.market import MarketConfig

    tokens = tmp_path / "tokens.json"
    alice = issue_token(tokens, ALICE)
    h = {"Authorization": f"Bearer {alice}"}
    common = dict(operators=Operators((ALICE,)), web=WebConfig(tokens=str(tokens)))
    fo = FlexOffer.from_dict(offer_json("box-1", issuer=HOUSE))
    house = ProsumerAgent(HOUSE, "pw", aggregator="agg@localhost", offers=[(0, fo)], **common)
    await house.handle(house.startup_steps()[0])  # sends its offer (nowhere: not connected)
    client = await serve(house)
    try:
        page = await client.get("/console/prosumer", headers=h)
        assert page.status == 200 and "box-1" in await page.text()
        data = await (await client.get("/prosumer", headers=h)).json()
        assert [o["id"] for o in data["offers"]] == ["box-1"] and data["aggregator"] == "agg@localhost"
        assert (await client.get("/flexoffer", headers=h)).status == 404  # an aggregator's resource
        home = await client.get("/", headers=h, allow_redirects=False)
        assert home.headers["Location"] == "/console/prosumer"
    finally:
        await client.close()
    market = MarketAgent("market@localhost", "pw", config=MarketConfig(registration="open"), **common)
    client = await serve(market)
    try:
        page = await client.get("/console/market", headers=h)
        assert page.status == 200 and "Order book" in await page.text()
        data = await (await client.get("/market", headers=h)).json()
        assert data["sessions"] == [] and data["bids"] == []
        doc = await (await client.get("/openapi.json", headers=h)).json()
        assert "/market" in doc["paths"] and "/flexoffer" not in doc["paths"]
    finally:
        await client.close()


async def test_a_controller_replaces_the_contract_and_the_engine_settles_with_it_from_then_on(box):
    h = box.auth(box.alice)
    table = {"mode": "delegated", "reward": {"per_kwh_energy_flexibility": 0.05}}
    r = await box.client.put("/contract", headers=h, data=json.dumps(table))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["contract"]["reward"]["per_kwh_energy_flexibility"] == 0.05
    assert box.agent.engine.contract.to_dict()["reward"]["per_kwh_energy_flexibility"] == 0.05
    bad = await box.client.put("/contract", headers=h, data=json.dumps({"mode": "magic"}))
    assert bad.status == 400 and (await bad.json())["error"]["path"] == "contract.mode"
    viewer = await box.client.put("/contract", headers=box.auth(box.bob), data=json.dumps(table))
    assert viewer.status == 403
    assert [(r.operator, r.action) for r in box.agent.engine.ledger[STEERING].values()] == [(ALICE, "contract")]
    # a restarted engine keeps the controller's contract (it is in the ledger)
    from vmenergy.protocol.aggregator import AggregatorEngine

    again = AggregatorEngine("agg@localhost", ledger=box.agent.engine.ledger)
    assert again.contract == box.agent.engine.contract


async def test_a_markets_clearing_per_interval_is_the_volume_awarded_and_its_price(tmp_path):
    from tests.protocol.test_market_engine import run_until_cleared, world
    from vmenergy.agents import MarketAgent
    from vmenergy.protocol.market import market_summary

    mkt, agg, pros, net = world()
    run_until_cleared(net)
    tokens = tmp_path / "tokens.json"
    h = {"Authorization": f"Bearer {issue_token(tokens, ALICE)}"}
    market = MarketAgent("market@localhost", "pw", config=mkt.config, operators=Operators((ALICE,)),
                         web=WebConfig(tokens=str(tokens)))
    market.engine = mkt  # the market engine that cleared the session
    client = await serve(market)
    try:
        c = await (await client.get("/market/clearing", headers=h)).json()
    finally:
        await client.close()
    (session,) = market_summary(mkt.ledger)["session_details"]
    assert sum(c["volume"]) > 0 and sum(c["volume"]) == pytest.approx(session["volume"], abs=1e-6)
    # everything was bought at the night price
    assert [p for p in c["price"] if p is not None] == pytest.approx([0.08] * sum(1 for p in c["price"] if p is not None))
    assert len(c["t"]) == len(c["volume"]) == len(c["price"]) and c["resolution"] == 900


async def test_one_offers_chart_and_the_prosumers_monthly_bills(box):
    await post_offers(box, ("o-1", 1), ("o-2", 30))
    h = box.auth(box.bob)
    one = await (await box.client.get("/chart?offer=o-1", headers=h)).json()
    both = await (await box.client.get("/chart", headers=h)).json()
    assert max(one["max"]) == 2.0 and len(one["t"]) < len(both["t"])
    rows = (await (await box.client.get("/prosumers", headers=h)).json())
    assert [(p["jid"], p["offers"], p["month"]) for p in rows["prosumers"]] == [(EMS, 2, "0.00"), (HOUSE, 0, "0.00")]
    page = await box.client.get("/console/trading", headers=h)
    assert page.status == 200 and "no offer has a confirmed schedule yet" in await page.text()


async def test_pages_escape_what_they_echo_and_forbid_foreign_scripts_and_framing(box):
    h = box.auth(box.bob)
    r = await box.client.get("/console/loads", params={"prosumer": "<script>alert(1)</script>@x"}, headers=h)
    text = await r.text()
    assert r.status == 200 and "<script>alert(1)" not in text and "&lt;script&gt;" in text
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"
    r = await box.client.get("/login", params={"next": '"><script>x</script>'})
    assert "<script>x</script>" not in await r.text()
