"""The market and trading keys of a scenario are checked like any other: each problem with its
line, key path and reason, before anything starts."""

from __future__ import annotations

from tests.conftest import ROOT
from vmenergy.runtime.scenario import check_text

P2P = (ROOT / "scenarios" / "market-peer-to-peer.toml").read_text()
TWO = (ROOT / "scenarios" / "market-two-sided.toml").read_text()
ZONAL = (ROOT / "scenarios" / "market-implicit-capacity.toml").read_text()


def problems(text: str) -> list[str]:
    model, found = check_text(text, base_dir=ROOT / "scenarios", source="s.toml")
    assert model is None
    return [p.format("s.toml") for p in found if not p.warning]


def test_peer_to_peer_prosumers_need_a_two_sided_market():
    text = P2P.replace('mechanism = "two-sided"', 'mechanism = "many-to-many"')
    (first, second) = problems(text)
    assert first.endswith("prosumers[0].trading: prosumers trade peer to peer in a two-sided pool; the [market] is "
                          "many-to-many")
    assert first.startswith("s.toml:35:") and second.startswith("s.toml:43:")


def test_bad_trading_settings_name_the_key_and_the_line():
    (p,) = problems(TWO.replace("trading = { energy_value = 0.05 }", 'trading = { energy_value = "cheap" }'))
    assert p == "s.toml:41: aggregator[1].trading.energy_value: not a number: 'cheap' (must be a number)"
    (p,) = problems(P2P.replace("trading = { energy_cost = 0.04 }", "trading = { energy_cost = 0.04, colour = 1 }"))
    assert "prosumers[0].trading.colour: unknown trading setting" in p


def test_bad_zones_and_links_name_the_key():
    (p,) = problems(ZONAL.replace('capacity = 4.0', 'capacity = -4.0'))
    assert "market.links[0].capacity" in p
    (p,) = problems(ZONAL.replace('liquidity_zone = "north"', 'liquidity_zone = "east"'))
    assert "market.liquidity_zone: must be one of the zones ['north', 'south']" in p
