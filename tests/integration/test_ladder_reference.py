"""The scale ladder's plain-XMPP reference clients (bench/ladder_reference.py) on a real Prosody:
ten clients in four processes, as a run's plan lays them out, exchange exactly what their
quotas say, each client receiving what its peers owe it."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest

from tests.bench.test_ladder_reference import Spec
from vmenergy.runtime.servers import new_password, register_accounts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ladder_reference import exchange, expected, quotas  # noqa: E402

pytestmark = pytest.mark.integration


def test_ten_reference_clients_exchange_their_quotas_through_the_server(prosody_server, tmp_path):
    tag = secrets.token_hex(3)  # the session's server is shared: accounts of this test alone
    domain = prosody_server.domain
    agents = [Spec("market", f"m{tag}@{domain}", "market"),
              Spec("aggregator", f"a{tag}@{domain}", "aggregators", {"upstream_jid": f"m{tag}@{domain}"})]
    agents += [Spec("prosumer", f"p{i}{tag}@{domain}", f"prosumers-{i % 2}", {"aggregator": f"a{tag}@{domain}"})
               for i in range(8)]
    passwords = {a.jid: new_password() for a in agents}
    register_accounts(prosody_server, [(jid.partition("@")[0], pw) for jid, pw in passwords.items()])
    sends, unplaced = quotas(agents, {("prosumer", "aggregator"): 30, ("aggregator", "prosumer"): 27,
                                      ("aggregator", "market"): 3, ("market", "aggregator"): 2})
    assert unplaced == {}
    result = exchange(agents, sends, prosody_server, passwords, span=2.0, base=tmp_path, timeout=120)
    assert "error" not in result, result
    assert result["clients"] == 10 and set(result["by_part"]) == {"market", "aggregators", "prosumers-0", "prosumers-1"}
    assert result["messages_sent"] == 62
    assert result["received_by"] == expected(sends)
    assert result["start_clients_per_s"] and result["client_cpu_s"] > 0
