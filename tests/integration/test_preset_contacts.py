"""Subscriptions written into a private Prosody's rosters before a run (servers.preset_contacts):
the contacts see each other's presence at once, and a subscription request to a preset contact
changes no roster (the server answers it), which is what keeps a city's start-up linear."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import connect_plain_client, disconnect_all, next_item
from vmenergy.runtime.servers import ServerError, preset_contacts, register_accounts, start_server, stop_server

pytestmark = pytest.mark.integration


@pytest.fixture
def closed_prosody(tmp_path: Path):
    info = start_server("prosody", tmp_path / "xmpp")  # registration closed, as for a run
    try:
        register_accounts(info, [("agg", "pw-agg"), ("p1", "pw-p1"), ("p2", "pw-p2")])
        yield info
    finally:
        stop_server(tmp_path / "xmpp")


def _roster_file(info, user: str) -> Path:
    return Path(info.run_dir) / "prosody-data" / info.domain.replace(".", "%2e") / "roster" / f"{user}.dat"


async def test_preset_contacts_share_presence_both_ways_from_the_first_login(closed_prosody) -> None:
    info = closed_prosody
    assert preset_contacts(info, {"p1": [info.jid("agg")], "p2": [info.jid("agg")]}) is True
    agg = await connect_plain_client(info, "agg", "pw-agg", register=False)
    p1 = await connect_plain_client(info, "p1", "pw-p1", register=False)
    try:
        roster = agg.client_roster
        assert {jid: roster[jid]["subscription"] for jid in roster if jid != info.jid("agg")} == {
            info.jid("p1"): "both",
            info.jid("p2"): "both"}
        assert p1.client_roster[info.jid("agg")]["subscription"] == "both"
        # p1 came online after agg: agg is told, with no request or approval in between
        while (await next_item(agg.presences, what="p1's presence at agg"))["from"].bare != info.jid("p1"):
            pass
        # a request to a contact already subscribed changes no roster (the server answers it)
        before = _roster_file(info, "agg").read_bytes()
        p1.send_presence(pto=info.jid("agg"), ptype="subscribe")
        await p1.get_roster()  # an IQ on the same stream: the server handled the request before it
        assert _roster_file(info, "agg").read_bytes() == before
        assert p1.client_roster[info.jid("agg")]["subscription"] == "both"
    finally:
        await disconnect_all([agg, p1])


def test_a_contact_on_another_domain_or_a_bad_account_name_is_refused(closed_prosody) -> None:
    info = closed_prosody
    with pytest.raises(ServerError, match="not on the server's domain"):
        preset_contacts(info, {"p1": ["agg@elsewhere.example"]})
    with pytest.raises(ServerError, match="invalid account name"):
        preset_contacts(info, {"P 1": [info.jid("agg")]})


def test_presetting_merges_with_the_roster_an_account_has(closed_prosody) -> None:
    info = closed_prosody
    preset_contacts(info, {"p1": [info.jid("agg")]})
    preset_contacts(info, {"p2": [info.jid("agg")]})
    text = _roster_file(info, "agg").read_text()
    assert info.jid("p1") in text and info.jid("p2") in text
