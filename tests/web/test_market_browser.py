"""A market's and a prosumer box's pages in headless chromium (selenium), served by the agents'
web apps over their real engines (no XMPP needed: the market has cleared a session in memory)."""

from __future__ import annotations

import asyncio

from tests.integration.test_web_console import SHOTS, _chromium
from tests.protocol.test_market_engine import run_until_cleared, world
from tests.web.test_rest import ALICE, serve
from vmenergy.agents import MarketAgent
from vmenergy.agents.web import WebConfig, issue_token
from vmenergy.protocol.operators import Operators


def look(url: str, token: str, page: str, shot: str, browser: str, driver_path: str) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=Service(driver_path))
    try:
        d.get(f"{url}/login?next={page}")
        d.find_element(By.ID, "token").send_keys(token)
        d.find_element(By.ID, "login").click()
        WebDriverWait(d, 20).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#clearing canvas"))
        seen = {"points": int(d.find_element(By.ID, "clearing").get_attribute("data-points")),
                "bids": len(d.find_elements(By.CSS_SELECTOR, "#bids tbody tr"))}
        d.save_screenshot(str(SHOTS / shot))
        return seen
    finally:
        d.quit()


async def test_a_market_page_shows_its_clearing_per_interval_and_its_order_book(tmp_path):
    browser, driver = _chromium()
    mkt, agg, pros, net = world()
    run_until_cleared(net)
    tokens = tmp_path / "tokens.json"
    token = issue_token(tokens, ALICE)
    market = MarketAgent("market@localhost", "pw", config=mkt.config, operators=Operators((), (ALICE,)),
                         web=WebConfig(tokens=str(tokens)))
    market.engine = mkt
    client = await serve(market)
    try:
        url = str(client.make_url("")).rstrip("/")
        seen = await asyncio.to_thread(look, url, token, "/console/market", "10-market.png", browser, driver)
    finally:
        await client.close()
    assert seen["points"] > 0 and seen["bids"] == len(list(mkt.ledger.values("bids")))
