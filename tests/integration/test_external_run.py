"""`vmenergy run` against a standing server: a scenario with ``[server] kind = "external"`` and an
accounts file runs on a Prosody that VME did not start (the fixtures start one and play its
operator), the agents log in with the file's passwords, and the server is left running."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from vmenergy.cli import main
from vmenergy.runtime.servers import read_accounts_file, register_accounts, server_status

pytestmark = pytest.mark.integration

DEMO = ROOT / "scenarios" / "demo.toml"
AGENTS = ["market", "aggregator"] + [f"house{i}" for i in range(6)]


def test_a_scenario_runs_on_a_standing_server_with_an_accounts_file(fresh_xmpp_server, tmp_path, capsys):
    standing = fresh_xmpp_server("prosody")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("jid,password\n" + "".join(f"{a}@localhost,pw-{a}-s3cret\n" for a in AGENTS))
    accounts.chmod(0o600)
    # the standing server's operator makes the accounts; VME only logs in
    register_accounts(standing, [(jid.split("@")[0], pw) for jid, pw in read_accounts_file(accounts).items()])
    text = DEMO.read_text().replace('[server]\nkind = "prosody"', (
        f'[server]\nkind = "external"\nhost = "{standing.host}"\nport = {standing.port}\n'
        f'ca_file = "{standing.ca_file}"\naccounts = "accounts.csv"'))
    assert 'kind = "external"' in text
    scenario = tmp_path / "external.toml"
    scenario.write_text(text.replace('"examples/', f'"{ROOT}/scenarios/examples/')
                        .replace('"inputs/', f'"{ROOT}/scenarios/inputs/'))
    rc = main(["run", str(scenario), "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["offers"]["by_prosumers"] == {"settled": 26}
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert {a["jid"]: a["password"] for a in plan["agents"]} == {f"{a}@localhost": f"pw-{a}-s3cret" for a in AGENTS}
    assert plan["server"]["register_in_band"] is False
    assert server_status(standing.run_dir).running  # VME left the standing server alone
