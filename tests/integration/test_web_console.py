"""The aggregator's console and REST interface, live: an aggregator and a prosumer agent on
Prosody, an EMS that speaks only HTTP, a real headless browser (Debian's chromium through
selenium) and schemathesis against the agent's own OpenAPI document.

Screenshots of every page go to ``build/screenshots/console/`` (or ``$VME_SCREENSHOTS``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_operators import future_offer
from tests.integration.test_presence import eventually
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.agents.web import WebConfig, issue_token
from vmenergy.flexoffer import State
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.aggregator import AGG_OFFERS, AggregatorConfig
from vmenergy.protocol.operators import Operators
from vmenergy.protocol.steering import STEERING
from vmenergy.runtime.clock import AcceleratedClock

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("VME_SCREENSHOTS", ROOT / "build" / "screenshots" / "console"))
#: Scenario time runs this many times the wall clock: an offer goes from sent to billed in seconds.
SPEED = 1200.0


def rest_offer(oid: str, issuer: str, now: float, hours: int = 1) -> dict:
    t = int(now) // 900 + 4 * hours
    return {"id": oid, "issuer": issuer, "start_after": format_utc(t * 900), "start_before": format_utc((t + 8) * 900),
            "profiles": [{"slices": [{"duration": 1, "min": 0.5, "max": 2.0}, {"duration": 1, "min": 0.5, "max": 2.0}],
                          "total": {"min": 1.5, "max": 3.0}}]}


class Live:
    """An aggregator with its web side (alice controls, bob views, the EMS controls and is
    enrolled), a prosumer agent over XMPP, on an accelerated clock that starts when asked."""

    def __init__(self, info, tmp_path) -> None:
        self.info = info
        start = float(int(time.time()) // 900 * 900)
        self.clock = AcceleratedClock(start, SPEED)
        addr = ServerAddress(info.host, info.port, info.ca_file)
        self.alice_jid, self.bob_jid, self.ems_jid = info.jid("web-alice"), info.jid("web-bob"), info.jid("web-ems")
        self.house_jid = info.jid("web-house")
        tokens = tmp_path / "tokens.json"
        self.alice = issue_token(tokens, self.alice_jid)
        self.bob = issue_token(tokens, self.bob_jid)
        self.ems = issue_token(tokens, self.ems_jid)
        ops = Operators((self.alice_jid, self.ems_jid), (self.bob_jid,))
        self.agg = AggregatorAgent(info.jid("web-agg"), "pw-a",
                                   config=AggregatorConfig(cycle=900, lead=60, settle_after=600,
                                                           enrolment=(self.house_jid, self.ems_jid)),
                                   server=addr, clock=self.clock, tick=0.1, store_path=tmp_path / "a.sqlite",
                                   operators=ops, web=WebConfig(tokens=str(tokens)))
        self.house = ProsumerAgent(self.house_jid, "pw-h", aggregator=info.jid("web-agg"),
                                   offers=[(int(start), future_offer("x-fo", self.house_jid, start))], server=addr,
                                   clock=self.clock, tick=0.1, store_path=tmp_path / "h.sqlite")

    @property
    def url(self) -> str:
        return self.agg.console.url

    def auth(self, token: str) -> dict:
        return {"Authorization": f"Bearer {token}"}

    async def start(self) -> None:
        await self.agg.start(auto_register=True)
        await self.house.start(auto_register=True)
        await asyncio.wait_for(asyncio.gather(self.agg.wait_ready(), self.house.wait_ready()), 20)

    async def run_time(self) -> None:
        self.clock.anchor(time.time())
        await asyncio.gather(self.agg.start_time(), self.house.start_time())

    async def stop(self) -> None:
        await self.house.stop()
        await self.agg.stop()


@pytest.fixture
async def live(prosody_server, tmp_path):
    w = Live(prosody_server, tmp_path)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


async def next_event(resp: aiohttp.ClientResponse, timeout: float = 30.0) -> tuple[str, dict]:
    """The next server-sent event (name, data), skipping keep-alive comments."""
    while True:
        raw = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout)).decode()
        lines = [ln for ln in raw.strip().split("\n") if not ln.startswith(":")]
        if lines:
            fields = dict(ln.split(": ", 1) for ln in lines)
            return fields["event"], json.loads(fields["data"])


async def test_the_web_side_listens_on_loopback_and_refuses_requests_without_a_token(live):
    assert live.agg.console.config.host == "127.0.0.1" and live.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http:
        async with http.get(live.url + "/flexoffer") as r:
            assert r.status == 401 and (await r.json())["error"]["path"] == "Authorization"
        async with http.post(live.url + "/flexoffer", data=b"{}") as r:
            assert r.status == 401
        async with http.get(live.url + "/spade") as r:  # SPADE's own pages are not mounted
            assert r.status in (401, 404)


async def test_an_offer_posted_over_rest_is_assigned_and_settled_like_one_sent_over_xmpp(live):
    agg = live.agg
    async with aiohttp.ClientSession(headers=live.auth(live.ems)) as http:
        stream = await http.get(live.url + "/flexoffer/stream", timeout=aiohttp.ClientTimeout(total=None))
        assert stream.status == 200
        async with http.post(live.url + "/flexoffer", json=rest_offer("r-fo", live.ems_jid, live.clock.now())) as r:
            assert r.status == 201, await r.text()
        await live.run_time()
        name, schedule = await next_event(stream)
        assert name == "assignment" and schedule["offer_id"] == "r-fo"
        # the stream's write was the delivery: the engine has the assignment acknowledged
        await eventually(lambda: agg.engine.ledger[AGG_OFFERS].require("r-fo").schedule_confirmed,
                         what="the REST assignment acknowledged")
        # the EMS's meter read what the schedule asked, one value per interval (slices of one interval)
        measurement = {"id": "m-r-fo", "offer_id": "r-fo", "start": schedule["start"], "energy": schedule["energy"]}
        async with http.post(live.url + "/flexoffer/measurement", json=measurement) as r:
            assert r.status == 201, await r.text()
        name, bill = await next_event(stream)
        assert name == "bill" and any(line["offer_id"] == "r-fo" for line in bill["lines"])
        stream.close()
    # the prosumer over XMPP went the same way: assigned, executed, metered, settled, billed
    await eventually(lambda: agg.engine.ledger[AGG_OFFERS].require("x-fo").offer.state is State.SETTLED,
                     timeout=60, what="the XMPP offer settled")
    rest, xmpp = (agg.engine.ledger[AGG_OFFERS].require(k) for k in ("r-fo", "x-fo"))
    assert rest.offer.state is xmpp.offer.state is State.SETTLED
    assert rest.owner == live.ems_jid and xmpp.owner == live.house_jid
    assert rest.bill_id is not None and xmpp.bill_id is not None and rest.schedule_confirmed and xmpp.schedule_confirmed
    async with aiohttp.ClientSession(headers=live.auth(live.bob)) as http:
        async with http.get(live.url + "/bill") as r:
            bills = (await r.json())["bills"]
        async with http.get(live.url + "/trading") as r:
            trading = await r.json()
        async with http.get(live.url + "/prosumers") as r:
            rows = (await r.json())["prosumers"]
    # the bills of this month are this month's: everything happened today
    assert [(p["bills"], p["month"]) for p in rows] == [(1, p["billed"]) for p in rows]
    assert {b["to"] for b in bills} == {live.ems_jid, live.house_jid}
    # the trading view checks the aggregates against their members' meters
    metered = sum(sum(rec.measurement.energy) for rec in (rest, xmpp))
    assert sum(a["measured_kwh"] or 0 for a in trading["aggregates"]) == pytest.approx(metered, abs=1e-5)


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are required in CI (make deps installs them as root)")
        pytest.skip("needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver")
    return browser, driver


def browse(url: str, alice: str, bob: str, filter_by: str, browser: str, driver_path: str, poke) -> dict:
    """A person at the console (runs in a thread: selenium blocks); the loads are filtered by
    prosumer ``filter_by``; ``poke()`` changes the agent while the dashboard is open. Returns
    what was seen."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu"):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=Service(driver_path))
    seen: dict = {}
    wait = WebDriverWait(d, 20)
    try:
        # no token: the console sends a person to the login page, the REST interface says 401
        d.get(url + "/console/dashboard")
        wait.until(ec.presence_of_element_located((By.ID, "token")))
        seen["login_redirect"] = d.current_url
        d.save_screenshot(str(SHOTS / "00-login-without-token.png"))
        # the page's own script asks the REST interface without a token (no cookie yet)
        seen["no_token"] = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/flexoffer').then(r => r.text().then(t => done([r.status, t])));")
        d.get(url + "/flexoffer")  # and the browser itself, asking for the data: the login page
        seen["no_token_page"] = d.find_element(By.TAG_NAME, "body").text
        d.get(url + "/login?next=/console/dashboard")
        d.find_element(By.ID, "token").send_keys("not-a-token")
        d.find_element(By.ID, "login").click()
        seen["bad_login"] = wait.until(ec.presence_of_element_located((By.ID, "login-error"))).text
        d.save_screenshot(str(SHOTS / "01-login-refused.png"))
        d.find_element(By.ID, "token").send_keys(alice)
        d.find_element(By.ID, "login").click()
        # the dashboard: its chart is drawn from /chart, with data points
        wait.until(lambda drv: drv.find_element(By.ID, "chart").get_attribute("data-points"))
        wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#chart canvas"))
        # read in one go: a live update may redraw the chart between two element lookups
        points, nonzero, legend = d.execute_script(
            "const c = document.getElementById('chart');"
            "return [c.dataset.points, c.dataset.nonzero,"
            " Array.from(c.querySelectorAll('.u-legend .u-label')).map(e => e.textContent)];")
        seen.update(points=int(points), nonzero=int(nonzero), legend=legend)
        d.save_screenshot(str(SHOTS / "02-dashboard.png"))
        # live: a new offer reaches the open dashboard over its event stream, without a reload
        before = d.find_element(By.ID, "k-offers").text
        d.execute_script("window.notReloaded = true;")
        poke()
        wait.until(lambda drv: drv.find_element(By.ID, "k-offers").text != before)
        seen["offers_tile"] = (before, d.find_element(By.ID, "k-offers").text)
        seen["not_reloaded"] = d.execute_script("return window.notReloaded === true;")
        d.get(url + "/console/prosumers")
        seen["prosumers"] = len(d.find_elements(By.CSS_SELECTOR, "#prosumers tbody tr"))
        d.save_screenshot(str(SHOTS / "03-prosumers.png"))
        # the loads: all, then filtered by one prosumer
        d.get(url + "/console/loads")
        seen["loads_all"] = len(d.find_elements(By.CSS_SELECTOR, "#loads tr.offer"))
        d.save_screenshot(str(SHOTS / "04-loads.png"))
        Select(d.find_element(By.ID, "f-prosumer")).select_by_value(filter_by)
        d.find_element(By.ID, "f-apply").click()
        wait.until(lambda drv: "prosumer=" in drv.current_url)
        seen["loads_filtered"] = [r.find_elements(By.TAG_NAME, "td")[1].text
                                  for r in d.find_elements(By.CSS_SELECTOR, "#loads tr.offer")]
        d.save_screenshot(str(SHOTS / "05-loads-filtered.png"))
        d.find_element(By.CSS_SELECTOR, "#loads tr.offer a").click()
        wait.until(ec.presence_of_element_located((By.ID, "o-state")))
        d.save_screenshot(str(SHOTS / "06-offer.png"))
        d.get(url + "/console/trading")
        d.save_screenshot(str(SHOTS / "07-trading.png"))
        # a setting: aggregation off, applied in the running agent and logged with who did it
        d.get(url + "/console/settings")
        Select(d.find_element(By.ID, "set-aggregation")).select_by_value("false")
        d.find_element(By.ID, "set-apply").click()
        wait.until(lambda drv: drv.find_element(By.ID, "s-running").text == "paused")
        seen["audit"] = d.find_element(By.ID, "audit").text
        d.save_screenshot(str(SHOTS / "08-settings.png"))
        # a viewer sees the settings but gets no form
        d.delete_all_cookies()
        d.get(url + "/login?next=/console/settings")
        d.find_element(By.ID, "token").send_keys(bob)
        d.find_element(By.ID, "login").click()
        wait.until(ec.presence_of_element_located((By.ID, "audit")))
        seen["viewer_form"] = len(d.find_elements(By.ID, "settings"))
        d.save_screenshot(str(SHOTS / "09-settings-viewer.png"))
    finally:
        d.quit()
    return seen


async def test_a_person_uses_the_console_in_a_real_browser(live):
    browser, driver = _chromium()
    agg = live.agg
    async with aiohttp.ClientSession(headers=live.auth(live.ems)) as http:
        async with http.post(live.url + "/flexoffer", json=rest_offer("b-fo", live.ems_jid, live.clock.now())) as r:
            assert r.status == 201
    await live.run_time()
    await eventually(lambda: agg.engine.counts().get("assigned", 0) + agg.engine.counts().get("executed", 0)
                     + agg.engine.counts().get("settled", 0) >= 2, timeout=30, what="both offers scheduled")

    loop = asyncio.get_running_loop()

    async def third_offer() -> None:
        async with aiohttp.ClientSession(headers=live.auth(live.ems)) as http:
            async with http.post(live.url + "/flexoffer",
                                 json=rest_offer("b-fo-2", live.ems_jid, live.clock.now(), hours=20)) as r:
                assert r.status == 201

    def poke() -> None:
        asyncio.run_coroutine_threadsafe(third_offer(), loop).result(30)

    seen = await asyncio.to_thread(browse, live.url, live.alice, live.bob, live.ems_jid, browser, driver, poke)
    assert seen["login_redirect"].endswith("/login?next=/console/dashboard")
    assert seen["no_token"][0] == 401 and '"path": "Authorization"' in seen["no_token"][1]
    assert "offers" not in seen["no_token_page"] and "Log in" in seen["no_token_page"]
    assert "unknown token" in seen["bad_login"]
    assert seen["points"] > 0 and seen["nonzero"] > 0
    assert {"baseline", "scheduled", "min", "max", "market", "measured"} <= set(seen["legend"])
    assert seen["offers_tile"] == ("2", "3") and seen["not_reloaded"]
    assert seen["prosumers"] == 2
    assert seen["loads_all"] == 3 and seen["loads_filtered"] == [live.ems_jid, live.ems_jid]
    assert agg.engine.paused  # the setting reached the running agent
    assert [(r.operator, r.action) for r in agg.engine.ledger[STEERING].values()] == [(live.alice_jid, "pause")]
    assert live.alice_jid in seen["audit"]
    assert seen["viewer_form"] == 0
    assert {p.name for p in SHOTS.glob("*.png")} >= {"00-login-without-token.png", "02-dashboard.png", "04-loads.png",
                                                     "05-loads-filtered.png", "08-settings.png"}


async def test_schemathesis_finds_no_server_error_and_only_documented_answers_on_a_live_agent(live, tmp_path):
    """Generated requests against every documented operation (but the two endless event
    streams), with the agent's own document: no 5xx, every status and body as documented, no
    request accepted without the token. Not checked: that every schema-valid body is accepted
    (positive_data_acceptance): the document gives the offer's shape; the contract's rules (min <= max,
    windows, feasible baselines) are checked by the agent and answered 400 with the field path."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    await live.run_time()
    report = SHOTS.parent / "schemathesis"
    cmd = [str(exe), "run", live.url + "/openapi.json", "-H", f"Authorization: Bearer {live.ems}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--exclude-path", "/flexoffer/stream", "--exclude-path", "/events",
           "-n", "25", "--seed", "17", "--no-color", "--request-timeout", "20", "--generation-database", "none",
           "--max-failures", "20", "--report", "junit", "--report-dir", str(report)]
    # in the test's own folder: schemathesis keeps a cache where it runs
    done = await asyncio.to_thread(functools.partial(subprocess.run, cmd, capture_output=True, text=True, timeout=400,
                                                     cwd=tmp_path))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    import re

    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 200, done.stdout[-3000:]
    assert tested and int(tested.group(1)) >= 14  # every operation but the two event streams


WEB_SCENARIO = """
[scenario]
name = "web-run"
start = "2026-11-22T18:00:00Z"
until = "2026-11-23T16:00:00Z"
seed = 5

[operators]
controllers = ["{alice}"]
viewers = ["{bob}"]

[web]
roles = ["aggregator"]
port = {port}

[[aggregator]]
name = "web-run-agg"
cycle = 900

[[prosumers]]
count = 2
name = "web-run-h{{i}}"
aggregator = "web-run-agg"
offers = ["examples/ev-overnight.json"]
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_scenario_runs_its_aggregators_console_in_virtual_time(prosody_server, tmp_path):
    """``[web]`` in a scenario: the run issues the operators' tokens and the aggregator in its
    swarm process serves the REST interface while the coordinator moves virtual time; a
    controller's change over HTTP is an engine step of that process, and the run completes."""
    from tests.integration.test_swarm import server_dict
    from vmenergy.runtime.orchestrator import Swarm
    from vmenergy.store import read_ledger

    alice, bob, port = prosody_server.jid("web-run-alice"), prosody_server.jid("web-run-bob"), _free_port()
    path = tmp_path / "web.toml"
    path.write_text(WEB_SCENARIO.format(alice=alice, bob=bob, port=port))
    printed: list[str] = []
    server = dict(server_dict(prosody_server), run_dir=prosody_server.run_dir)
    swarm = Swarm(path, tmp_path / "run", server=server, out=printed.append)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(swarm.start)
        assert any(p.startswith(f"web consoles: web-run-agg {url};") for p in printed), printed
        tokens = dict(line.split() for line in (tmp_path / "run" / "web-tokens.txt").read_text().splitlines())
        assert set(tokens) == {alice, bob}
        assert os.stat(tmp_path / "run" / "web-tokens.txt").st_mode & 0o077 == 0
        prog = await asyncio.to_thread(swarm.wait, 120, 0.3, lambda p: p.prosumer_offers.get("assigned", 0) == 2)
        assert prog.prosumer_offers.get("assigned") == 2, prog.line()
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/flexoffer") as r:
                assert r.status == 401
            async with http.get(url + "/flexoffer", headers={"Authorization": f"Bearer {tokens[bob]}"}) as r:
                assert r.status == 200
                offers = (await r.json())["offers"]
            assert len(offers) == 2 and {o["state"] for o in offers} <= {"assigned", "executed", "settled"}
            async with http.post(url + "/settings", json={"objective": {"kind": "energy_min"}},
                                 headers={"Authorization": f"Bearer {tokens[alice]}"}) as r:
                assert r.status == 200, await r.text()
        prog = await asyncio.to_thread(swarm.wait, 240)
        assert prog.done, prog.line()
    finally:
        await asyncio.to_thread(swarm.stop)
    ledger = read_ledger(tmp_path / "run" / "stores" / "web-run-agg.sqlite")
    assert [(r.operator, r.action) for r in ledger.values("steering")] == [(alice, "objective")]
