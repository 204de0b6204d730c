"""Private XMPP servers: start/stop/status, TLS-verified clients, registration, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.integration.conftest import connect_plain_client, disconnect_all, next_item, server_cli
from vmenergy.runtime import servers
from vmenergy.runtime.servers import (
    EMBEDDED_LIMITATIONS,
    ServerError,
    ServerInfo,
    check_kind,
    read_info,
    register_accounts,
    server_status,
    stop_server,
)

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _check_info(info: ServerInfo, kind: str) -> None:
    run_dir = Path(info.run_dir)
    recorded = json.loads((run_dir / "server.json").read_text())
    assert recorded["kind"] == kind and recorded["port"] == info.port and recorded["pid"] == info.pid
    assert recorded["host"] == "127.0.0.1" and recorded["domain"] == "localhost"
    assert Path(recorded["ca_file"]).is_file() and Path(recorded["log_path"]).is_file()
    st = server_status(run_dir)
    assert st.running and st.accepting, st.detail


# ---------------------------------------------------------------------------------------------
# Availability


def test_check_kind_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_kind("nope")[0] is False and "prosody" in check_kind("nope")[1]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda *a: False)
    for kind, package in (("prosody", "openssl"), ("ejabberd", "openssl")):
        ok, reason = check_kind(kind)
        assert not ok and f"sudo apt-get install {package}" in reason
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/openssl" if name == "openssl" else None)
    assert check_kind("prosody") == (False, "prosody is not installed: sudo apt-get install prosody")
    assert check_kind("ejabberd") == (False, "ejabberd is not installed: sudo apt-get install ejabberd")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    if not check_kind("prosody")[0]:
        pytest.skip(check_kind("prosody")[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            servers.start_server("prosody", tmp_path / "busy", port=port)
    assert read_info(tmp_path / "busy") is None


def test_a_port_taken_meanwhile_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process grabs the chosen free port before the server binds it: a new one is tried."""
    if not check_kind("prosody")[0]:
        pytest.skip(check_kind("prosody")[1])
    real_free_port = servers.process.free_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(servers.process, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port())
        info = servers.start_server("prosody", tmp_path / "race")
        try:
            assert info.port != taken and server_status(info.run_dir).accepting
            assert "this port is in use" in Path(info.log_path).read_text()  # the first attempt failed
        finally:
            stop_server(info.run_dir)


def test_a_server_that_dies_reports_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not check_kind("prosody")[0]:
        pytest.skip(check_kind("prosody")[1])
    templates = tmp_path / "templates"
    (templates / "prosody").mkdir(parents=True)
    good = (servers.templates.TEMPLATES / "prosody" / "prosody.cfg.lua.in").read_text()
    (templates / "prosody" / "prosody.cfg.lua.in").write_text(good + "\nthis is not lua = = =\n")
    monkeypatch.setattr(servers.templates, "TEMPLATES", templates)
    run_dir = tmp_path / "broken"
    try:
        with pytest.raises(ServerError) as err:
            servers.start_server("prosody", run_dir, timeout=10)
    finally:
        stop_server(run_dir)
    msg = str(err.value)
    assert "prosody exited with code" in msg and "server.log" in msg, msg
    assert "prosody.cfg.lua" in msg  # the log tail names the broken config
    assert not server_status(run_dir).running


# ---------------------------------------------------------------------------------------------
# Prosody and ejabberd: lifecycle, clients, registration


def test_prosody_start_status_stop(fresh_xmpp_server) -> None:
    info = fresh_xmpp_server("prosody")
    _check_info(info, "prosody")
    assert "c2s" in Path(info.config_path).read_text()
    assert stop_server(info.run_dir) is True
    assert not _listening(info.port)
    assert stop_server(info.run_dir) is False  # idempotent
    st = server_status(info.run_dir)
    assert not st.running and "not running" in st.detail


def test_two_servers_side_by_side(fresh_xmpp_server, tmp_path: Path) -> None:
    """Parallel test runs each get their own server: no shared port, node name or state."""
    kinds = [k for k in ("prosody", "ejabberd") if check_kind(k)[0]] or pytest.skip("no server installed")
    infos = [fresh_xmpp_server(kind) for kind in kinds for _ in range(2)]
    assert len({i.port for i in infos}) == len(infos)
    assert len({i.pid for i in infos}) == len(infos)
    for info in infos:
        assert server_status(info.run_dir).accepting
    ej = [i for i in infos if i.kind == "ejabberd"]
    if ej:
        assert ej[0].extra["node"] != ej[1].extra["node"]
        assert ej[0].extra["dist_port"] != ej[1].extra["dist_port"]
    stop_server(infos[0].run_dir)
    assert all(server_status(i.run_dir).accepting for i in infos[1:])


def test_refuses_second_start_in_same_dir(prosody_server: ServerInfo) -> None:
    with pytest.raises(ServerError, match="already running"):
        servers.start_server("prosody", prosody_server.run_dir)


async def _pair_exchange(info: ServerInfo, tag: str) -> None:
    """Two plain clients register in-band, authenticate over verified STARTTLS, subscribe to
    each other's presence and exchange a message."""
    alice = await connect_plain_client(info, f"alice-{tag}", "pw-a")
    bob = await connect_plain_client(info, f"bob-{tag}", "pw-b")
    try:
        for c in (alice, bob):
            cert = c.tls_peer_certificate()
            assert cert is not None, "the stream is not encrypted"
            assert ("DNS", info.domain) in cert["subjectAltName"]
            assert c.ssl_context.verify_mode.name == "CERT_REQUIRED" and c.ssl_context.check_hostname
        alice.send_presence_subscription(pto=bob.boundjid.bare)
        # bob auto-authorizes and subscribes back (slixmpp's defaults), then each sees the other.
        while True:
            p = await next_item(alice.presences, what=f"presence of bob on {info.kind}")
            if p["from"].bare == bob.boundjid.bare:
                break
        alice.send_message(mto=bob.boundjid.bare, mbody=f"hello on {info.kind}", mtype="chat")
        msg = await next_item(bob.messages, what="message")
        assert msg["body"] == f"hello on {info.kind}" and msg["from"].bare == alice.boundjid.bare
    finally:
        await disconnect_all([alice, bob])


async def test_prosody_clients_tls_register_message_presence(prosody_server: ServerInfo) -> None:
    await _pair_exchange(prosody_server, "p")


async def test_ejabberd_clients_tls_register_message_presence(ejabberd_server: ServerInfo) -> None:
    await _pair_exchange(ejabberd_server, "e")


async def test_wrong_ca_is_refused(prosody_server: ServerInfo, tmp_path: Path) -> None:
    """Verification is really on: a client trusting another certificate cannot connect."""
    other_cert, _ = servers.make_certificate(tmp_path, "localhost")
    fake = ServerInfo(**{**prosody_server.__dict__, "ca_file": str(other_cert)})
    with pytest.raises(ConnectionError):
        await connect_plain_client(fake, "mallory", "pw", timeout=10)


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
async def test_tool_registration(kind: str, xmpp_server) -> None:
    """Accounts made with prosodyctl/ejabberdctl (one or two) and with the bulk path (many)
    authenticate without in-band registration; registering again resets the password."""
    info = xmpp_server(kind)
    register_accounts(info, [("tool1", "first"), ("tool2", "pw2")])
    register_accounts(info, [("tool1", "second")])
    many = [(f"bulk{i}", f"pw{i}!'\"") for i in range(25)]
    register_accounts(info, many)
    clients = [
        await connect_plain_client(info, "tool1", "second", register=False),
        await connect_plain_client(info, "tool2", "pw2", register=False),
        await connect_plain_client(info, "bulk24", "pw24!'\"", register=False),
    ]
    await disconnect_all(clients)
    with pytest.raises(ConnectionError, match="failed_all_auth"):
        await connect_plain_client(info, "tool1", "first", register=False)
    with pytest.raises(ServerError, match="invalid account name"):
        register_accounts(info, [("bad@name", "x")])


def test_ejabberd_lifecycle_and_node(fresh_xmpp_server) -> None:
    info = fresh_xmpp_server("ejabberd")
    _check_info(info, "ejabberd")
    assert info.extra["node"].startswith("vme") and info.extra["node"] != "ejabberd@localhost"
    cfg = Path(info.config_path).read_text()
    assert "backlog: 1024" in cfg and "ip_access: all" in cfg and "registration_timeout: infinity" in cfg
    pid = info.pid
    assert stop_server(info.run_dir) is True
    assert servers.process.group_members(pid) == []  # beam and its helpers are gone too
    assert stop_server(info.run_dir) is False


# ---------------------------------------------------------------------------------------------
# Embedded server


async def test_embedded_server_starts_and_says_what_does_not_work(
    fresh_xmpp_server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vmenergy.runtime.servers"):
        info = fresh_xmpp_server("embedded")
    _check_info(info, "embedded")
    assert info.limitations == list(EMBEDDED_LIMITATIONS)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("presence does not work" in w for w in warned)
    assert any("XEP-0050" in w for w in warned)
    alice = await connect_plain_client(info, "alice", "pw-a")
    bob = await connect_plain_client(info, "bob", "pw-b")
    try:
        assert alice.tls_peer_certificate() is not None  # TLS, verified with our certificate
        alice.send_message(mto=bob.boundjid.bare, mbody="hi", mtype="chat")
        assert (await next_item(bob.messages, what="message"))["body"] == "hi"
        # The first two limitations, as announced (if pyjabber fixes them, update the list).
        alice.send_presence_subscription(pto=bob.boundjid.bare)
        seen = await _presences_from(alice, bob.boundjid.bare, 2.0)
        assert seen == [], "presence works on the embedded server now: update EMBEDDED_LIMITATIONS"
        from slixmpp.exceptions import IqTimeout

        with pytest.raises(IqTimeout):
            await alice.plugin["xep_0199"].ping(jid=bob.boundjid.full, timeout=2)
    finally:
        await disconnect_all([alice, bob])
    with pytest.raises(ServerError, match="in-band"):
        register_accounts(info, [("x", "y")])
    assert stop_server(info.run_dir) and not stop_server(info.run_dir)


async def _presences_from(client, bare: str, within: float) -> list:
    found = []
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while (left := end - loop.time()) > 0:
        try:
            p = await asyncio.wait_for(client.presences.get(), left)
        except asyncio.TimeoutError:
            break
        if p["from"].bare == bare:
            found.append(p)
    return found


# ---------------------------------------------------------------------------------------------
# The `vmenergy server` commands



def test_cli_start_status_register_stop(tmp_path: Path) -> None:
    if not check_kind("prosody")[0]:
        pytest.skip(check_kind("prosody")[1])
    d = str(tmp_path / "cli")
    try:
        code, out = server_cli(["server", "start", "--kind", "prosody", "--dir", d])
        assert code == 0 and "127.0.0.1:" in out and "server.crt" in out, out
        info = read_info(d)
        assert info is not None and info.kind == "prosody"
        code, out = server_cli(["server", "status", "--dir", d])
        assert code == 0 and "accepting" in out
        code, out = server_cli(["server", "register", "--dir", d, "carol", "s3cret"])
        assert code == 0 and "carol@localhost" in out
        asyncio.run(_auth_only(info, "carol", "s3cret"))
        code, out = server_cli(["server", "start", "--kind", "prosody", "--dir", d])
        assert code == 1 and "already running" in out
    finally:
        code, out = server_cli(["server", "stop", "--dir", d])
    assert code == 0 and "stopped" in out
    code, out = server_cli(["server", "stop", "--dir", d])
    assert code == 0 and "not running" in out
    code, out = server_cli(["server", "status", "--dir", d])
    assert code == 1


async def _auth_only(info: ServerInfo, user: str, password: str) -> None:
    c = await connect_plain_client(info, user, password, register=False)
    await disconnect_all([c])


def test_cli_missing_kind_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(servers.lifecycle, "check_kind", lambda kind: (False, "prosody is not installed: sudo apt-get install prosody"))
    code, out = server_cli(["server", "start", "--kind", "prosody", "--dir", str(tmp_path)])
    assert code == 1 and "sudo apt-get install prosody" in out
