"""docs/extending.md end to end: its bidding strategy (written out as the module a researcher
would write) and its scenario run as a swarm on Prosody, and the market receives bids priced by
that strategy, not by VME's default curve."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_swarm import server_dict
from vmenergy.runtime.orchestrator import Swarm
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration

DOC = (ROOT / "docs" / "extending.md").read_text()


def doc_block(kind: str) -> str:
    (block,) = [b for k, b in re.findall(r"```(\w+)\n(.*?)```", DOC, flags=re.S) if k == kind]
    return block


@pytest.fixture
def researcher(tmp_path, monkeypatch) -> Path:
    """The doc's module beside the doc's scenario, its folder on PYTHONPATH (for the swarm's
    processes and for this one)."""
    (tmp_path / "mybidding.py").write_text(doc_block("python"))
    scenario = tmp_path / "night-owl.toml"
    scenario.write_text(doc_block("toml"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.syspath_prepend(str(tmp_path))
    return scenario


def past_the_market(prog) -> bool:
    """Every offer has had its market round: it is assigned (cleared, or planned by the
    aggregator when its bid did not clear) or further on."""
    waiting = ("not started", "initial", "offered", "accepted")
    seen = sum(n for state, n in prog.prosumer_offers.items() if state != "not started")
    return prog.total > 0 and seen == prog.total and not any(prog.prosumer_offers.get(s, 0) for s in waiting)


def test_the_docs_bidding_strategy_prices_the_bids_of_a_scenario_run(prosody_server, researcher, tmp_path):
    from mybidding import NightOwlBidding  # the module written from the doc

    swarm = Swarm(researcher, tmp_path / "run", server=server_dict(prosody_server), out=lambda line: None)
    try:
        plan = swarm.start()
        prog = swarm.wait(timeout=180, every=0.5, until=past_the_market)
    finally:
        swarm.stop()
    assert past_the_market(prog), prog.line()
    (market,) = plan.by_role("market")
    ledger = read_ledger(market.store)
    sessions = {r.notice.session_id: r.notice for r in ledger.values("sessions")}
    bids = [b.bid for b in ledger.values("bids")]
    assert bids and all(b.offer is not None for b in bids)
    strategy = NightOwlBidding(night=0.15, day=0.10)  # the options in the scenario's table
    for bid in bids:
        assert bid.offer.prices == strategy.prices(bid.offer, sessions[bid.session_id]), bid.bid_id
    ups = {bid.offer.prices.slices[0].up for bid in bids}
    assert 0.15 in ups and 0.30 not in ups  # the EVs' night price; never VME's default curve
