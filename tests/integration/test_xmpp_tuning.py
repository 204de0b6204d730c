"""Start-up tuning: fast SCRAM gives slixmpp's exact keys; the shared TLS context verifies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
from pathlib import Path

import pytest

from tests.integration.conftest import next_item
from vmenergy.runtime import xmpp_tuning as tuning
from vmenergy.runtime.servers import ServerInfo, make_certificate

pytestmark = pytest.mark.integration


@pytest.fixture
def scram_restored():
    """Each test leaves slixmpp as it found it."""
    was = tuning.fast_scram_installed()
    yield
    (tuning.install_fast_scram if was else tuning.uninstall_fast_scram)()


def _mech(hash_name: str):
    from slixmpp.util.sasl.mechanisms import SCRAM

    mech = SCRAM.__new__(SCRAM)
    from slixmpp.util import hash as slix_hash

    mech.hash_name, mech.hash = hash_name, slix_hash(hash_name)
    return mech


CASES = [
    ("SHA-1", "pencil", base64.b64decode("QSXCR+Q6sek8bf92"), 4096),  # RFC 5802 example
    ("SHA-1", "pw", b"salt", 1),
    ("SHA-1", "", b"\x00" * 16, 2),
    ("SHA-256", "pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096),  # RFC 7677 example
    ("SHA-256", "pässwörd \u2603", b"\xff\x01salt", 10000),
    ("SHA-512", "long" * 100, b"s" * 64, 257),
    ("SHA-1", b"bytes-password", b"abc", 3),
]


def test_fast_scram_same_keys_as_slixmpp(scram_restored) -> None:
    original = tuning.original_scram_hi()
    tuning.uninstall_fast_scram()
    expected = [original(_mech(h), text, salt, it) for h, text, salt, it in CASES]
    assert tuning.install_fast_scram() is True
    assert tuning.install_fast_scram() is False  # idempotent
    from slixmpp.util.sasl.mechanisms import SCRAM

    assert SCRAM.Hi is not original and tuning.original_scram_hi() is original
    got = [_mech(h).Hi(text, salt, it) for h, text, salt, it in CASES]
    assert got == expected
    # And against the RFC 5802 test vector, through the client proof it yields.
    salted = got[0]
    client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
    auth = (b"n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
            b"s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j")
    sig = hmac.new(hashlib.sha1(client_key).digest(), auth, hashlib.sha1).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    assert base64.b64encode(proof) == b"v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    # Zero iterations behave like slixmpp's loop (one round), not like a ValueError.
    assert _mech("SHA-1").Hi("x", b"s", 0) == original(_mech("SHA-1"), "x", b"s", 0)
    assert tuning.uninstall_fast_scram() is True and SCRAM.Hi is original


def test_fast_scram_derives_the_key_in_one_call_not_one_hmac_per_iteration(scram_restored) -> None:
    # what makes it fast, counted rather than timed (a timed comparison failed on a busy machine):
    # slixmpp's loop computes 4,096 HMACs in Python, the fast path hands PBKDF2 to OpenSSL at once
    mech = _mech("SHA-1")
    calls: list[int] = []
    hmac_of = mech.HMAC

    def counting(key, msg):
        calls.append(1)
        return hmac_of(key, msg)

    mech.HMAC = counting
    tuning.uninstall_fast_scram()
    slow = mech.Hi("password", b"salt", 4096)
    python_hmacs = len(calls)
    calls.clear()
    tuning.install_fast_scram()
    fast = mech.Hi("password", b"salt", 4096)
    assert fast == slow
    assert python_hmacs == 4096 and calls == []


def test_shared_context_one_per_ca_file_and_stays_verifying(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path, "localhost")
    ctx = tuning.client_ssl_context(str(cert))
    assert tuning.client_ssl_context(str(cert)) is ctx
    assert tuning.client_ssl_context(str(tmp_path / "." / cert.name)) is ctx  # same file, same context
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # only the private server's certificate is trusted
    system = tuning.client_ssl_context(None)
    assert system is not ctx and system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    with pytest.raises(ValueError, match="verification on"):
        ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="host-name"):
        ctx.check_hostname = False
    with pytest.raises(ValueError, match="trust anchors"):
        ctx.load_verify_locations(cadata="x")
    with pytest.raises(ValueError, match="context of its own"):
        ctx.load_cert_chain(str(cert))
    ctx.load_verify_locations(cafile=str(cert))  # its own CA file again: accepted, nothing changes
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    with pytest.raises(ValueError, match="cannot load CA file"):
        tuning.client_ssl_context(str(tmp_path / "missing.pem"))


def test_spade_client_keeps_the_shared_context(prosody_server: ServerInfo) -> None:
    """SPADE's XMPPClient with verify_security=True leaves ssl_context alone, and with
    verify_security=False it cannot switch verification off for everybody."""
    from spade.xmpp_client import XMPPClient

    # slixmpp's clients schedule on the current event loop when built; an earlier async test may
    # have left a closed one as current, so this test builds them on a loop of its own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    tuning.install_shared_tls(prosody_server.ca_file)
    try:
        shared = tuning.client_ssl_context(prosody_server.ca_file)
        client = XMPPClient(prosody_server.jid("spadeagent"), "pw", True, True)
        assert client.ssl_context is shared and client.get_ssl_context() is shared
        with pytest.raises(ValueError, match="verify_security=True"):
            XMPPClient(prosody_server.jid("lax"), "pw", False, True)
        assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    finally:
        tuning.uninstall_shared_tls()
    from slixmpp import ClientXMPP

    try:
        own = ClientXMPP(prosody_server.jid("other"), "pw")
        assert own.ssl_context is not shared
        tuning.apply_to_client(own, prosody_server.ca_file)
        assert own.ssl_context is shared and own.ca_certs is None
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def test_clients_with_shared_context_and_fast_scram(
    prosody_server: ServerInfo, scram_restored, xmpp_client
) -> None:
    """Several clients authenticate (SCRAM) over TLS verified by the one shared context."""
    tuning.install_fast_scram()
    ctx = tuning.client_ssl_context(prosody_server.ca_file)
    clients = [await xmpp_client(prosody_server, f"tuned{i}", f"pw{i}", ssl_context=ctx) for i in range(3)]
    assert all(c.ssl_context is ctx and c.tls_peer_certificate() is not None for c in clients)
    assert all("SCRAM" in str(c.plugin["feature_mechanisms"].mech.name) for c in clients)
    clients[0].send_message(mto=clients[1].boundjid.bare, mbody="tuned hello", mtype="chat")
    assert (await next_item(clients[1].messages, what="message"))["body"] == "tuned hello"


def test_connect_address() -> None:
    a = tuning.connect_address("localhost", "127.0.0.1", 5299)
    assert a.spade_ok and (a.host, a.port) == ("127.0.0.1", 5299) and "5299" in a.note
    b = tuning.connect_address("no-such-domain.invalid", "127.0.0.1", 5299)
    assert not b.spade_ok and "connect('127.0.0.1', 5299)" in b.note and "/etc/hosts" in b.note
