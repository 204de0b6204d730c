"""A DSO started by ``vmenergy agent dso --config`` talks to plain XMPP clients (slixmpp, no VME
code): its aggregator gets a flex request on the wire and answers it with a hand-written
flex-reply, which the DSO accepts; a stranger's flex-reply is refused with the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_plain_client import NS, payloads, start_agent, stop, wait_for

pytestmark = pytest.mark.integration


def start_dso(prosody_server, tmp_path, aggregator: str):
    return start_agent(prosody_server, tmp_path, "dso", "grid-dso", f"""
request_every = 3600
horizon = 3600
respond_within = 600
points.feeder-7 = {{ limit = 12.5 }}
aggregators = {{ "{aggregator}" = ["feeder-7"] }}
""")


def is_(tag: str):
    return lambda m: any(p.tag == f"{{{NS}}}{tag}" for p in payloads(m))


async def test_a_plain_aggregator_answers_a_flex_request_and_a_stranger_is_refused(prosody_server, xmpp_client,
                                                                                 tmp_path):
    agg = await xmpp_client(prosody_server, "plainagg", "agg-secret")
    stranger = await xmpp_client(prosody_server, "grid-stranger", "grid-stranger-secret")
    proc = start_dso(prosody_server, tmp_path, prosody_server.jid("plainagg"))
    dso = prosody_server.jid("grid-dso")
    try:
        got = await wait_for(agg, is_("flex-request"), timeout=30, what="flex request")
        (req,) = payloads(got)
        assert req.get("point") == "feeder-7" and "flex request" in got["body"]
        limits = [float(x) for x in req.find(f"{{{NS}}}max").text.split()]
        assert limits == [12.5] * 4  # an hour of 15-minute intervals
        # acknowledge the request, then answer it: nothing to offer, a prognosis of 3 kWh
        ack = agg.make_message(mto=dso, mbody="flex request received", mtype="chat")
        ack.append(ET.fromstring(f'<ack xmlns="{NS}" kind="flex-request" ref="{req.get("id")}" status="accepted"/>'))
        ack.send()
        reply_xml = (f'<flex-reply xmlns="{NS}" id="plain-reply-1" request="{req.get("id")}" point="feeder-7" '
                     f'start="{req.get("start")}"><baseline>3.0 3.0 3.0 3.0</baseline>'
                     '<committed>0.0 0.0 0.0 0.0</committed></flex-reply>')
        reply = agg.make_message(mto=dso, mbody="flex reply", mtype="chat")
        reply.append(ET.fromstring(reply_xml))
        reply.send()
        answer = await wait_for(agg, is_("ack"), what="ack of the reply")
        (a,) = payloads(answer)
        assert (a.get("kind"), a.get("ref"), a.get("status")) == ("flex-reply", "plain-reply-1", "accepted")
        # the same reply from someone the DSO does not know
        fake = stranger.make_message(mto=dso, mbody="flex reply", mtype="chat")
        fake.append(ET.fromstring(reply_xml.replace("plain-reply-1", "fake-reply-1")))
        fake.send()
        refused = await wait_for(stranger, is_("ack"), what="refusal")
        (r,) = payloads(refused)
        assert (r.get("kind"), r.get("status")) == ("flex-reply", "rejected")
        assert r.get("reason") == f"{prosody_server.jid('grid-stranger')} is not an aggregator of this DSO"
        assert proc.poll() is None
    finally:
        stop(proc)
