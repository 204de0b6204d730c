"""Accounts files, the [server] table and external-server records: the rules that need no XMPP
server running (tests against a real one are in tests/integration/test_external_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmenergy.runtime.servers import (
    ServerError,
    ServerSpec,
    ServerTableError,
    check_reachable,
    external_server,
    free_port,
    new_password,
    prepare_server,
    read_accounts_file,
    read_info,
    record_external,
    server_status,
    start_server,
    stop_server,
)


def _accounts(tmp_path: Path, text: str, mode: int = 0o600, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------------------------------
# The accounts file


def test_accounts_file_gives_passwords_by_bare_jid_skipping_header_comments_and_blank_lines(tmp_path):
    path = _accounts(tmp_path, (
        "# accounts of a study\n"
        "jid,password\n"
        "house1@vme.example.org,s3cret\n"
        "\n"
        "  # an indented comment\n"
        '"House2@VME.example.org","with, comma and ""quote"""\n'
        "market@vme.example.org,  spaces kept  \n"
    ))
    assert read_accounts_file(path) == {
        "house1@vme.example.org": "s3cret",
        "house2@vme.example.org": 'with, comma and "quote"',
        "market@vme.example.org": "  spaces kept  ",
    }


def test_accounts_file_without_header_is_read_too(tmp_path):
    assert read_accounts_file(_accounts(tmp_path, "a@d,x\n")) == {"a@d": "x"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o660])
def test_accounts_file_open_to_group_or_others_is_refused(tmp_path, mode):
    path = _accounts(tmp_path, "a@d,x\n", mode=mode)
    with pytest.raises(ServerError) as err:
        read_accounts_file(path)
    msg = str(err.value)
    assert str(path) in msg and f"{mode:04o}" in msg and "chmod 600" in msg


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_accounts_file_private_to_its_owner_is_read(tmp_path, mode):
    assert read_accounts_file(_accounts(tmp_path, "a@d,x\n", mode=mode)) == {"a@d": "x"}


@pytest.mark.parametrize("text, line, reason", [
    ("a@d,x,y\n", 1, "expected 2 fields (jid,password), found 3"),
    ("# c\na@d\n", 2, "expected 2 fields"),
    ("a@d,x\nhouse1,x\n", 2, "is not a bare JID (user@domain)"),
    ("a@d/phone,x\n", 1, "no resource"),
    ("a@d,\n", 1, "empty password for a@d"),
    ("a@d,x\n\nA@D,y\n", 3, "a@d is listed twice (first on line 1)"),
    ('"a@d"x,y\n', 1, "not valid CSV"),
])
def test_accounts_file_errors_name_file_and_line(tmp_path, text, line, reason):
    path = _accounts(tmp_path, text)
    with pytest.raises(ServerError) as err:
        read_accounts_file(path)
    assert f"{path}:{line}: " in str(err.value) and reason in str(err.value)


def test_missing_or_binary_accounts_file_is_a_clear_error(tmp_path):
    with pytest.raises(ServerError, match="cannot read accounts file .*nope.csv"):
        read_accounts_file(tmp_path / "nope.csv")
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"a@d,\xff\xfe\n")
    bad.chmod(0o600)
    with pytest.raises(ServerError, match="is not UTF-8 text"):
        read_accounts_file(bad)


def test_generated_passwords_differ():
    pws = {new_password() for _ in range(100)}
    assert len(pws) == 100 and all(len(p) >= 16 for p in pws)


# ---------------------------------------------------------------------------------------------
# The [server] table


@pytest.mark.parametrize("table, path, reason", [
    ({"kind": "openfire"}, "server.kind", "is not one of prosody, ejabberd, embedded, external"),
    ({"knd": "prosody"}, "server.knd", "unknown key"),
    ({"kind": "external", "port": 0}, "server.port", "not a TCP port"),
    ({"kind": "external", "port": 70000}, "server.port", "not a TCP port"),
    ({"kind": "external", "port": "5222"}, "server.port", "not a TCP port"),
    ({"kind": "external", "port": True}, "server.port", "not a TCP port"),
    ({"kind": "external", "domain": "a b"}, "server.domain", "not an XMPP domain"),
    ({"kind": "external", "host": 5}, "server.host", "must be a string"),
    ({"kind": "prosody", "host": "xmpp.example.org"}, "server.host", 'only for kind = "external"'),
    ({"kind": "ejabberd", "ca_file": "ca.pem"}, "server.ca_file", 'only for kind = "external"'),
    ({"kind": "embedded", "accounts": "a.csv"}, "server.accounts", "no account tool"),
    ({"kind": "external", "accounts": ""}, "server.accounts", "the path of an accounts file"),
])
def test_server_table_errors_name_the_key(table, path, reason):
    with pytest.raises(ServerTableError) as err:
        ServerSpec.from_table(table)
    assert err.value.path == path and reason in err.value.reason
    assert str(err.value).startswith(f"{path}: ")


def test_server_table_defaults_and_relative_paths(tmp_path):
    assert ServerSpec.from_table({}) == ServerSpec("prosody", "localhost", "", None, "", "register")
    spec = ServerSpec.from_table(
        {"kind": "external", "domain": "vme.example.org", "ca_file": "certs/ca.pem", "accounts": "acc.csv"},
        base_dir=tmp_path,
    )
    assert spec.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert spec.accounts_file == tmp_path / "acc.csv"
    assert ServerSpec.from_table({"kind": "external"}).accounts_file is None


def test_a_jid_missing_from_the_accounts_file_is_named(tmp_path):
    path = _accounts(tmp_path, "house1@vme.example.org,a\nmarket@vme.example.org,b\n")
    table = {"kind": "external", "domain": "vme.example.org", "host": "127.0.0.1", "port": free_port(),
             "accounts": str(path)}
    jids = ["market@vme.example.org", "house1@vme.example.org", "house2@vme.example.org"]
    with pytest.raises(ServerTableError) as err:
        prepare_server(table, jids, tmp_path / "xmpp")
    assert err.value.path == "server.accounts"
    assert "house2@vme.example.org" in err.value.reason and "house1" not in err.value.reason
    assert "1 of the run's 3 agents" in err.value.reason
    assert read_info(tmp_path / "xmpp") is None  # nothing recorded for a refused table


def test_many_missing_jids_are_counted_not_all_listed(tmp_path):
    path = _accounts(tmp_path, "someone@d,a\n")
    jids = [f"h{i}@d" for i in range(8)]
    with pytest.raises(ServerTableError, match=r"h0@d, h1@d, h2@d, h3@d, h4@d and 3 more \(8 of the run's 8"):
        prepare_server({"kind": "external", "domain": "d", "accounts": str(path)}, jids, tmp_path / "x")


def test_agents_must_be_on_the_servers_domain(tmp_path):
    with pytest.raises(ServerError, match=r"jids\[1\]: 'b@other' is not on the server's domain 'd'"):
        prepare_server({"kind": "external", "domain": "d"}, ["a@d", "b@other"], tmp_path / "x")


# ---------------------------------------------------------------------------------------------
# External servers with nothing listening


def test_an_unreachable_external_server_is_refused_before_the_run(tmp_path):
    port = free_port()
    table = {"kind": "external", "domain": "localhost", "host": "127.0.0.1", "port": port}
    with pytest.raises(ServerTableError) as err:
        prepare_server(table, ["a@localhost"], tmp_path / "xmpp")
    assert err.value.path == "server" and f"nothing reachable at 127.0.0.1:{port}" in err.value.reason
    reach = check_reachable("127.0.0.1", port, "localhost")
    assert not reach.answers and not reach.usable and reach.tls_verified is None


def test_an_external_record_is_probed_never_stopped(tmp_path):
    info = record_external(external_server("127.0.0.1", free_port(), "localhost"), tmp_path / "xmpp")
    recorded = read_info(tmp_path / "xmpp")
    assert recorded == info and recorded.external and recorded.pid == 0
    st = server_status(tmp_path / "xmpp")
    assert not st.running and not st.accepting
    assert "external server for localhost" in st.detail and "NOT reachable" in st.detail
    assert stop_server(tmp_path / "xmpp") is False
    assert read_info(tmp_path / "xmpp") == info  # the record stays; nothing was signalled
    with pytest.raises(ServerError, match="records the external server"):
        start_server("prosody", tmp_path / "xmpp")
