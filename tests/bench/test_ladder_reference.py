"""The scale ladder's plain-XMPP reference (bench/ladder_reference.py): the stanza counts it takes
from a run, how it spreads them over the plan's links, and its clients' exchange on a real Prosody."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from ladder_reference import expected, links, message_counts, quotas, send_times  # noqa: E402


@dataclass
class Spec:
    """What the reference reads of a plan's agent (vmenergy.runtime.scenario.AgentSpec)."""

    role: str
    jid: str
    part: str
    config: dict = field(default_factory=dict)


def city(prosumers: int, parts: int = 2) -> list[Spec]:
    """A market, two aggregators under it, ``prosumers`` alternating between them, as a plan
    names them (a prosumer's ``aggregator``, an aggregator's ``upstream_jid``)."""
    agents = [Spec("market", "market@localhost", "market", {"mechanism": "many-to-many"})]
    agents += [Spec("aggregator", f"{n}@localhost", "aggregators", {"upstream_jid": "market@localhost", "cycle": 900})
               for n in ("north", "south")]
    agents += [Spec("prosumer", f"p{i}@localhost", f"prosumers-{i % parts}",
                    {"aggregator": ("north", "south")[i % 2] + "@localhost"}) for i in range(prosumers)]
    return agents


def test_the_counts_are_the_runs_messages_by_sender_and_receiver_role():
    work = {"prosumer_steps": 366, "messages_prosumer_to_aggregator": 225, "messages_aggregator_to_market": 22,
            "aggregator_commits": 459}
    assert message_counts(work) == {("prosumer", "aggregator"): 225, ("aggregator", "market"): 22}


def test_a_malformed_message_counter_is_an_error_naming_it():
    with pytest.raises(ValueError, match="work.messages_prosumer"):
        message_counts({"messages_prosumer": 3})


def test_agents_are_linked_to_the_agents_their_configuration_names():
    pairs = links(city(4))
    assert ("north@localhost", "market@localhost") in pairs and ("south@localhost", "market@localhost") in pairs
    assert ("p0@localhost", "north@localhost") in pairs and ("p1@localhost", "south@localhost") in pairs
    assert ("p0@localhost", "south@localhost") not in pairs
    assert len(pairs) == 6  # each pair once


def test_each_count_is_spread_over_the_links_of_its_roles_in_its_direction():
    agents = city(4)
    sends, unplaced = quotas(agents, {("prosumer", "aggregator"): 10, ("aggregator", "prosumer"): 7,
                                      ("market", "aggregator"): 5})
    assert unplaced == {}
    up = {jid: peers for jid, peers in sends.items() if jid.startswith("p")}
    assert sorted(sum(p.values()) for p in up.values()) == [2, 2, 3, 3]
    assert up["p0@localhost"] == {"north@localhost": up["p0@localhost"]["north@localhost"]}  # to its own aggregator
    down = {peer: n for jid in ("north@localhost", "south@localhost")
            for peer, n in sends[jid].items() if peer.startswith("p")}
    assert sum(down.values()) == 7 and max(down.values()) - min(down.values()) <= 1
    assert sum(sends["market@localhost"].values()) == 5
    got = expected(sends)  # the aggregators get the prosumers' 10 and the market's 5; the market nothing
    assert got["north@localhost"] + got["south@localhost"] == 15 and "market@localhost" not in got


def test_counts_between_roles_the_plan_does_not_link_are_reported():
    sends, unplaced = quotas(city(2), {("prosumer", "market"): 4, ("prosumer", "aggregator"): 2})
    assert unplaced == {("prosumer", "market"): 4}
    assert sum(n for peers in sends.values() for n in peers.values()) == 2


@given(st.integers(1, 40), st.dictionaries(st.sampled_from([("prosumer", "aggregator"), ("aggregator", "prosumer"),
                                                             ("aggregator", "market"), ("market", "aggregator")]),
                                           st.integers(0, 10_000)))
def test_every_counted_message_is_sent_once_and_clients_of_a_role_differ_by_at_most_one(prosumers, counts):
    agents = city(prosumers)
    role = {a.jid: a.role for a in agents}
    sends, unplaced = quotas(agents, counts)
    assert unplaced == {}
    for (s_role, r_role), total in counts.items():
        per_sender_link = [n for s, peers in sends.items() if role[s] == s_role
                           for peer, n in peers.items() if role[peer] == r_role]
        assert sum(per_sender_link) == total
        links_of_roles = sum(1 for x, y in links(agents) for a, b in ((x, y), (y, x))
                             if role[a] == s_role and role[b] == r_role)
        assert len(per_sender_link) <= links_of_roles
        if len(per_sender_link) == links_of_roles and per_sender_link:
            assert max(per_sender_link) - min(per_sender_link) <= 1
    received = expected(sends)
    assert sum(received.values()) == sum(counts.values())


@given(st.text(min_size=1, max_size=30), st.integers(0, 200), st.floats(0.1, 10_000))
def test_a_clients_send_times_are_spread_over_the_span_at_its_own_phase(jid, n, spread):
    times = send_times(jid, n, spread)
    assert len(times) == n and times == sorted(times)
    assert all(0 <= t < spread for t in times)
    assert times == send_times(jid, n, spread)  # a rerun sends at the same times
