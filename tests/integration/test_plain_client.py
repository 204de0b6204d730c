"""A plain XMPP client (slixmpp, no VME code) takes part in the protocol with a real aggregator
started by ``vmenergy agent aggregator --config``: it sends a hand-written flex-offer stanza,
gets the ack and a feasible assignment, acks it, and sees bad stanzas refused with an error
reply while the aggregator keeps running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.conftest import next_item
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration

NS = "urn:vmenergy:flexoffer:1"


def _grid(dt: datetime) -> str:
    dt = dt.replace(second=0, microsecond=0, minute=dt.minute - dt.minute % 15) + timedelta(minutes=15)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def offer_xml(offer_id: str, issuer: str, start_after: str, start_before: str) -> str:
    return (
        f'<flexoffer xmlns="{NS}" op="insert" id="{offer_id}" issuer="{issuer}" resolution="900" '
        f'start-after="{start_after}" start-before="{start_before}">'
        '<profile><slice duration="1" min="0.5" max="2.0"/><slice duration="2" min="1.0" max="3.0"/>'
        '<total min="2.0" max="4.0"/></profile></flexoffer>'
    )


def payloads(msg) -> list[ET.Element]:
    return [el for el in msg.xml if isinstance(el.tag, str) and el.tag.startswith("{" + NS + "}")]


async def wait_for(client, predicate, timeout: float = 20.0, what: str = "message"):
    deadline = time.monotonic() + timeout
    while True:
        msg = await next_item(client.messages, max(0.1, deadline - time.monotonic()), what)
        if predicate(msg):
            return msg


def start_aggregator(prosody_server, tmp_path, name: str, section: str):
    """``vmenergy agent aggregator --config`` with ``section`` as its [aggregator] table."""
    return start_agent(prosody_server, tmp_path, "aggregator", name, section)


def start_agent(prosody_server, tmp_path, role: str, name: str, section: str):
    """``vmenergy agent ROLE --config`` with ``section`` as its [ROLE] table."""
    cfg = tmp_path / f"{role}.toml"
    cfg.write_text(f"""
[agent]
jid = "{prosody_server.jid(name)}"
password = "{name}-secret"
store = "{name}.sqlite"
tick = 0.2
max_payload_bytes = 4000

[server]
host = "{prosody_server.host}"
port = {prosody_server.port}
ca_file = "{prosody_server.ca_file}"

[{role}]
{section}
""")
    cfg.chmod(0o600)  # it holds a password
    log_path = tmp_path / f"{role}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "vmenergy", "agent", role, "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.time() + 30
    while b"event=started" not in log_path.read_bytes():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"{role} did not start:\n" + log_path.read_text())
        time.sleep(0.1)
    return proc


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def aggregator(prosody_server, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fman")
    proc = start_aggregator(prosody_server, tmp_path, "fman", """
enrolment = "open"
upstream = "plan"
cycle = 2
lead = 60
objective = { kind = "peak" }
""")
    yield prosody_server.jid("fman"), proc, tmp_path / "aggregator.log"
    stop(proc)


async def test_plain_client_offers_gets_ack_and_assignment(prosody_server, aggregator, xmpp_client):
    fman, proc, log = aggregator
    client = await xmpp_client(prosody_server, "plainbox", "box-secret")
    me = prosody_server.jid("plainbox")
    now = datetime.now(timezone.utc)
    sa, sb = _grid(now + timedelta(minutes=30)), _grid(now + timedelta(hours=2))
    msg = client.make_message(mto=fman, mbody="flex-offer box-1 (insert)", mtype="chat")
    msg.append(ET.fromstring(offer_xml("box-1", me, sa, sb)))
    msg.send()

    ack = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}ack" for p in payloads(m)), what="ack")
    (a,) = payloads(ack)
    assert (a.get("kind"), a.get("ref"), a.get("status"), a.get("version")) == ("flexoffer", "box-1", "accepted", "0")
    assert "box-1" in ack["body"] and "accepted" in ack["body"]

    asg = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}assignment" for p in payloads(m)), what="assignment")
    (s,) = payloads(asg)
    assert s.get("offer-id") == "box-1" and s.get("schedule-id")
    energy = [float(x) for x in s.find(f"{{{NS}}}energy").text.split()]
    # feasible by plain arithmetic: bounds per slice, total, start in the window
    assert len(energy) == 2 and 0.5 - 1e-6 <= energy[0] <= 2.0 + 1e-6 and 1.0 - 1e-6 <= energy[1] <= 3.0 + 1e-6
    assert 2.0 - 1e-6 <= sum(energy) <= 4.0 + 1e-6
    assert sa <= s.get("start") <= sb
    # answer like any participant: ack the assignment with its schedule id and update id
    reply = client.make_message(mto=fman, mbody="assignment accepted", mtype="chat")
    reply.append(ET.fromstring(f'<ack xmlns="{NS}" kind="assignment" ref="{s.get("schedule-id")}" '
                               f'status="accepted" version="{s.get("update-id")}"/>'))
    reply.send()
    # the same offer again (a resend): the same ack, nothing new happens
    again = client.make_message(mto=fman, mbody="flex-offer box-1 (insert)", mtype="chat")
    again.append(ET.fromstring(offer_xml("box-1", me, sa, sb)))
    again.send()
    ack2 = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}ack" for p in payloads(m)), what="repeated ack")
    assert payloads(ack2)[0].attrib == a.attrib
    assert proc.poll() is None


@pytest.mark.parametrize(
    "payload, expect",
    [
        (f'<flexoffer xmlns="{NS}" op="insert" id="bad-1"><profile><slice duration="0" min="0" max="1"/></profile></flexoffer>',
         "profiles[0].slices[0].duration"),
        (f'<flexoffer xmlns="{NS}" op="insert" id="bad-2" colour="red"/>', "colour"),
        (f'<bogus xmlns="{NS}"/>', "unknown element"),
        (f'<flexoffer xmlns="{NS}" op="insert" id="big">' + "<profile>" + '<slice duration="1" min="0" max="1"/>' * 200
         + "</profile></flexoffer>", "exceeds"),
    ],
)
async def test_bad_stanzas_get_an_error_reply_and_the_aggregator_lives_on(prosody_server, aggregator, xmpp_client,
                                                                           payload, expect):
    fman, proc, log = aggregator
    client = await xmpp_client(prosody_server, "badbox", "box-secret")
    msg = client.make_message(mto=fman, mbody="?", mtype="chat")
    msg.append(ET.fromstring(payload))
    msg.send()
    err = await wait_for(client, lambda m: m["type"] == "error", what="error reply")
    assert err["error"]["condition"] == "bad-request"
    assert expect in err["error"]["text"]
    # still alive and answering
    now = datetime.now(timezone.utc)
    ok = client.make_message(mto=fman, mbody="flex-offer", mtype="chat")
    ok.append(ET.fromstring(offer_xml(f"after-{abs(hash(expect))}", prosody_server.jid("badbox"),
                                      _grid(now + timedelta(minutes=30)), _grid(now + timedelta(hours=1)))))
    ok.send()
    ack = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}ack" for p in payloads(m)), what="ack")
    assert payloads(ack)[0].get("status") == "accepted"
    assert proc.poll() is None
    await asyncio.sleep(0)


async def test_plain_client_is_told_when_an_accepted_offer_expires_and_acks_it(prosody_server, xmpp_client,
                                                                              tmp_path):
    """An aggregator waiting for a market that never opens a session cannot assign the offer
    before its deadline: the plain client gets a <rejection> and answers it like any message."""
    proc = start_aggregator(prosody_server, tmp_path, "fman-nomarket", f"""
enrolment = "open"
upstream = "market"
upstream_jid = "{prosody_server.jid('closed-market')}"
cycle = 2
lead = 60
""")
    try:
        fman = prosody_server.jid("fman-nomarket")
        client = await xmpp_client(prosody_server, "latebox", "box-secret")
        now = datetime.now(timezone.utc)
        sa, sb = _grid(now + timedelta(minutes=30)), _grid(now + timedelta(hours=2))
        deadline = (now + timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
        offer = offer_xml("late-1", prosody_server.jid("latebox"), sa, sb).replace(
            'resolution="900"', f'resolution="900" assignment-before="{deadline}"')
        msg = client.make_message(mto=fman, mbody="flex-offer late-1 (insert)", mtype="chat")
        msg.append(ET.fromstring(offer))
        msg.send()
        ack = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}ack" for p in payloads(m)), what="ack")
        assert payloads(ack)[0].get("status") == "accepted"
        rej = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}rejection" for p in payloads(m)),
                             timeout=30, what="rejection")
        (r,) = payloads(rej)
        assert r.attrib == {"offer-id": "late-1", "version": "0", "reason": "not assigned in time"}
        assert rej["body"] == "offer late-1 (v0) rejected: not assigned in time"
        reply = client.make_message(mto=fman, mbody="rejection noted", mtype="chat")
        reply.append(ET.fromstring(f'<ack xmlns="{NS}" kind="rejection" ref="late-1" status="accepted" version="0"/>'))
        reply.send()
        store = tmp_path / "fman-nomarket.sqlite"
        waited = time.monotonic() + 20
        while True:  # the aggregator stops resending once the ack is in
            ledger = read_ledger(store)
            pending = [e for e in ledger.values("outbox") if e.to == prosody_server.jid("latebox")]
            if not pending or time.monotonic() > waited:
                break
            await asyncio.sleep(0.2)
        assert not pending
        assert ledger.get("offers", "late-1").offer.state.value == "rejected"
        assert proc.poll() is None
    finally:
        stop(proc)
