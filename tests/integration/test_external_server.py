"""External servers: a run against a standing server VME did not start, with accounts from a file
or registered in-band. A private Prosody started by the fixtures plays the standing server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import connect_plain_client, disconnect_all, next_item, server_cli
from vmenergy.runtime.servers import (
    ServerInfo,
    ServerTableError,
    check_kind,
    make_certificate,
    prepare_server,
    read_accounts_file,
    register_accounts,
    server_status,
    stop_server,
)

pytestmark = pytest.mark.integration

AGENTS = ["market@localhost", "agg1@localhost", "house1@localhost", "house2@localhost"]



def _external_table(standing: ServerInfo, **more: object) -> dict:
    return {"kind": "external", "domain": standing.domain, "host": standing.host, "port": standing.port,
            "ca_file": standing.ca_file, **more}


def _write_accounts(path: Path, jids: list[str]) -> Path:
    lines = ["# accounts the operator of the standing server made", "jid,password"]
    lines += [f'{jid},"pw-{jid.split("@")[0]}, with comma"' for jid in jids]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


async def _log_in_all(info: ServerInfo, passwords: dict[str, str], register: bool) -> None:
    """Every agent's account authenticates over verified TLS; two of them exchange a message."""
    clients = [await connect_plain_client(info, jid.split("@")[0], pw, register=register)
               for jid, pw in passwords.items()]
    try:
        a, b = clients[0], clients[-1]
        a.send_message(mto=b.boundjid.bare, mbody="over the standing server", mtype="chat")
        assert (await next_item(b.messages, what="message"))["body"] == "over the standing server"
    finally:
        await disconnect_all(clients)


async def test_accounts_from_a_file_on_an_external_prosody(fresh_xmpp_server, tmp_path: Path) -> None:
    """The operator registers the file's accounts with prosodyctl; the run takes its agents'
    passwords from the file, logs in without registering, and leaves the server running."""
    standing = fresh_xmpp_server("prosody")
    accounts = _write_accounts(tmp_path / "accounts.csv", AGENTS + ["other-study@localhost"])
    register_accounts(standing, [(jid.split("@")[0], pw) for jid, pw in read_accounts_file(accounts).items()])

    run = prepare_server(_external_table(standing, accounts="accounts.csv"), AGENTS, tmp_path / "run" / "xmpp",
                         base_dir=tmp_path)
    assert run.info.kind == "external" and not run.owned and run.register_in_band is False
    assert (run.info.host, run.info.port, run.info.domain) == (standing.host, standing.port, "localhost")
    assert run.passwords == {jid: f"pw-{jid.split('@')[0]}, with comma" for jid in AGENTS}
    await _log_in_all(run.info, dict(run.passwords), register=False)

    run_dir = tmp_path / "run" / "xmpp"
    st = server_status(run_dir)
    assert st.running and st.accepting and "reachable" in st.detail and "certificate verified" in st.detail
    assert stop_server(run_dir) is False
    code, out = server_cli(["server", "stop", "--dir", str(run_dir)])
    assert code == 0 and "left running" in out
    assert server_status(standing.run_dir).accepting  # the standing server is untouched
    code, out = server_cli(["server", "status", "--dir", str(run_dir)])
    assert code == 0 and "external server for localhost" in out and "VME does not start or stop it" in out
    code, out = server_cli(["server", "register", "--dir", str(run_dir), "newuser", "pw"])
    assert code == 1 and "operator" in out


async def test_in_band_registration_on_an_external_prosody(prosody_server: ServerInfo, tmp_path: Path) -> None:
    """accounts = "register": generated passwords, and agents register themselves in-band."""
    jids = ["ib-market@localhost", "ib-house1@localhost"]
    run = prepare_server(_external_table(prosody_server), jids, tmp_path / "xmpp")
    assert run.register_in_band is True and set(run.passwords) == set(jids)
    assert len(set(run.passwords.values())) == 2
    await _log_in_all(run.info, dict(run.passwords), register=True)


def test_an_external_server_whose_certificate_does_not_verify_is_refused(
    prosody_server: ServerInfo, tmp_path: Path
) -> None:
    other_ca, _ = make_certificate(tmp_path, "localhost")
    with pytest.raises(ServerTableError) as err:
        prepare_server(_external_table(prosody_server, ca_file=str(other_ca)), ["a@localhost"], tmp_path / "xmpp")
    assert err.value.path == "server" and "certificate does not verify" in err.value.reason
    assert not (tmp_path / "xmpp" / "server.json").exists()
    code, out = server_cli(["server", "status", "--host", "127.0.0.1", "--port", str(prosody_server.port),
                      "--domain", "localhost", "--ca-file", str(other_ca)])
    assert code == 1 and "NOT reachable" in out and "certificate does not verify" in out
    code, out = server_cli(["server", "status", "--host", "127.0.0.1", "--port", str(prosody_server.port),
                      "--domain", "localhost", "--ca-file", prosody_server.ca_file])
    assert code == 0 and "certificate verified" in out


def test_a_wrong_domain_on_an_external_server_is_refused(prosody_server: ServerInfo, tmp_path: Path) -> None:
    table = _external_table(prosody_server, domain="vme.example.org")
    with pytest.raises(ServerTableError, match="stream error host-unknown for domain 'vme.example.org'"):
        prepare_server(table, ["a@vme.example.org"], tmp_path / "xmpp")


async def test_a_private_prosody_takes_its_accounts_from_a_file(tmp_path: Path) -> None:
    """A private server with an accounts file: the file's accounts are made with prosodyctl before
    the run, agents log in without in-band registration, and the run stops its own server."""
    if not check_kind("prosody")[0]:
        pytest.skip(check_kind("prosody")[1])
    accounts = _write_accounts(tmp_path / "acc.csv", AGENTS)
    run = prepare_server({"kind": "prosody", "accounts": str(accounts)}, AGENTS, tmp_path / "xmpp")
    try:
        assert run.owned and run.register_in_band is False and run.info.kind == "prosody"
        await _log_in_all(run.info, dict(run.passwords), register=False)
    finally:
        assert stop_server(tmp_path / "xmpp") is True
    assert not server_status(tmp_path / "xmpp").running


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
async def test_a_private_server_makes_the_runs_accounts_and_a_stranger_cannot_register(tmp_path: Path,
                                                                                       kind: str) -> None:
    """Finding 5 of issue 16: in-band registration stayed open on the servers VME starts, so a
    stranger registered and took part. Now the run's accounts are made with the admin tool and
    registration stays closed."""
    if not check_kind(kind)[0]:
        pytest.skip(check_kind(kind)[1])
    jids = [j.replace("pa", f"{kind[:3]}-pa") for j in AGENTS] + [f"{kind[:3]}-extra{i}@localhost" for i in range(3)]
    run = prepare_server({"kind": kind}, jids, tmp_path / "xmpp")
    try:
        assert run.owned and not run.register_in_band and not run.info.registration
        await _log_in_all(run.info, dict(run.passwords), register=False)
        with pytest.raises(ConnectionError):
            await connect_plain_client(run.info, "stranger", "stranger-pw", register=True, timeout=20)
    finally:
        stop_server(tmp_path / "xmpp")