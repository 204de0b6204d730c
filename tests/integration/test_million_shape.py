"""`scenarios/million-devices.toml` at 2,000 devices, through the command line: the same shape (FOAs
of many households each, four leaf aggregators under a regional one that trades on the market,
one day) with fewer FOAs and households. Every offer is a device's, every final schedule is
feasible for its offer (checked from the run folder alone), and the bills reconcile."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from tests.conftest import ROOT
from vmenergy import cli
from vmenergy.flexoffer import FlexOffer

pytestmark = pytest.mark.integration

MILLION = ROOT / "scenarios" / "million-devices.toml"


def scaled(text: str, foas: int, households: int) -> str:
    """The scenario with ``foas`` FOAs per leaf aggregator, each of ``households`` households
    (over at most ``foas`` processes)."""
    assert text.count("count = 55 ") == 4 and text.count("households = 1000 ") == 4
    assert text.count("processes = 4 ") == 4
    return (text.replace("count = 55 ", f"count = {foas} ").replace("households = 1000 ", f"households = {households} ")
            .replace("processes = 4 ", f"processes = {min(4, foas)} "))


def test_two_thousand_devices_on_foas_of_many_households_complete_a_day_through_a_tree_of_aggregators(tmp_path):
    path = tmp_path / "million-shape.toml"
    path.write_text(scaled(MILLION.read_text(), foas=2, households=55).replace(
        'name = "million-devices"', 'name = "million-shape"'))
    out = io.StringIO()
    rc = cli.main(["run", str(path), "--out", str(tmp_path / "run")], out)
    assert rc == 0, out.getvalue()[-3000:]
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["outcome"]["finished"], summary["outcome"]
    assert summary["reconciled"]["ok"], summary["reconciled"]
    assert summary["reconciled"]["bills"]["ok"] and summary["reconciled"]["bills"]["received"] > 0

    # every final schedule is feasible for its offer, from the run folder alone
    check = io.StringIO()
    assert cli.main(["validate", str(folder / "offers.jsonl"), str(folder / "schedules.jsonl")],
                    check) == 0, check.getvalue()[-2000:]

    offers = [FlexOffer.from_dict(json.loads(line)) for line in (folder / "offers.jsonl").read_text().splitlines()]
    agents = {"regional", "north", "south", "east", "west", "market"}
    mine = [fo for fo in offers if fo.issuer.split("@")[0] not in agents]
    # 8 FOAs, 55 households each: offers per device, ids NAME-hJ-KIND-HORIZON
    foas = Counter(fo.issuer.split("@")[0] for fo in mine)
    assert sorted(foas) == [f"{leaf}{i}" for leaf in ("east", "north", "south", "west") for i in range(2)]
    homes = {fo.id.rsplit("-", 2)[0] for fo in mine}
    assert len(homes) > 8 * 50  # nearly every household offered something (base load: all of them)
    assert all(fo.id.startswith(f"{fo.issuer.split('@')[0]}-h") for fo in mine)
    # two levels: the leaves' aggregates went to the regional aggregator, whose aggregates went to market
    leaves = [a for a in summary["aggregators"] if a["jid"].split("@")[0] in ("north", "south", "east", "west")]
    assert len(leaves) == 4 and all(a["upstream"] == "parent" for a in leaves)
    regional = next(a for a in summary["aggregators"] if a["jid"].startswith("regional@"))
    assert regional["upstream"] == "market"
    by_issuer = Counter(fo.issuer.split("@")[0] for fo in offers if fo.issuer.split("@")[0] in agents)
    assert all(by_issuer[leaf] > 0 for leaf in ("north", "south", "east", "west")) and by_issuer["regional"] > 0
    # and the regional aggregator traded on the market
    (market,) = summary["market"]["markets"]
    assert market["cleared"] > 0 and [p["participant"] for p in market["paid"]] == ["regional@localhost"]
