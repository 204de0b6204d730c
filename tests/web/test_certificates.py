"""Client certificates instead of tokens: the console over HTTPS, a certificate signed by the
configured CA stands for the JID it names, and the operators' list decides what it may do."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from vmenergy.agents import AggregatorAgent
from vmenergy.agents.web import WebConfig
from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.operators import Operators

ALICE, BOB = "alice@localhost", "bob@localhost"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A CA, the server's certificate (127.0.0.1) and client certificates for alice, bob (not an
    operator) and mallory (signed by another CA)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=VME test {ca}", cwd=d)
    people = (("server", "ca", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
              ("alice", "ca", "/CN=Alice", f"subjectAltName=email:{ALICE}\nextendedKeyUsage=clientAuth"),
              ("bob", "ca", f"/CN={BOB}", "extendedKeyUsage=clientAuth"),
              ("mallory", "other-ca", f"/CN={ALICE}", "extendedKeyUsage=clientAuth"))
    for name, ca, subject, ext in people:
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
        os.chmod(d / f"{name}.key", 0o600)


@pytest.fixture
async def tls_agent(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (apt-get install openssl)")
    make_pki(tmp_path)
    agent = AggregatorAgent("agg@localhost", "pw", config=AggregatorConfig(cycle=10_000, enrolment="open"),
                            operators=Operators((ALICE,)),
                            web=WebConfig(certificate=str(tmp_path / "server.pem"), key=str(tmp_path / "server.key"),
                                          client_ca=str(tmp_path / "ca.pem")))
    await agent.start_web()
    yield agent, tmp_path
    await agent.web.runner.cleanup()


def client_tls(d: Path, who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    if who is not None:
        ctx.load_cert_chain(str(d / f"{who}.pem"), str(d / f"{who}.key"))
    return ctx


async def status(url: str, ctx: ssl.SSLContext, method: str = "GET", path: str = "/flexoffer") -> int:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url + path, ssl=ctx, json={"aggregation": False}) as r:
            return r.status


async def test_a_client_certificate_signed_by_the_ca_stands_for_the_jid_it_names(tls_agent):
    agent, d = tls_agent
    url = agent.console.url
    assert url.startswith("https://127.0.0.1:")
    assert await status(url, client_tls(d, "alice")) == 200
    assert await status(url, client_tls(d, "alice"), "POST", "/settings") == 200  # alice controls
    assert agent.engine.paused
    assert await status(url, client_tls(d, None)) == 401  # no certificate, no token
    assert await status(url, client_tls(d, "bob")) == 401  # a valid certificate of no operator


async def test_a_certificate_of_another_ca_is_refused_in_the_handshake(tls_agent):
    agent, d = tls_agent
    with pytest.raises(aiohttp.ClientError):
        await status(agent.console.url, client_tls(d, "mallory"))


def test_https_settings_are_checked_and_a_readable_key_is_refused(tmp_path):
    with pytest.raises(FlexOfferError) as exc:
        WebConfig(certificate="server.pem")
    assert exc.value.path == "key"
    with pytest.raises(FlexOfferError) as exc:
        WebConfig(client_ca="ca.pem")
    assert exc.value.path == "client_ca"
    key = tmp_path / "server.key"
    key.write_text("not a key")
    os.chmod(key, 0o644)
    agent = AggregatorAgent("agg@localhost", "pw", web=WebConfig(certificate=str(key), key=str(key)))
    agent.mount_web()
    with pytest.raises(FlexOfferError) as exc:
        agent.console.tls()
    assert exc.value.path == "key" and "chmod 600" in exc.value.reason
