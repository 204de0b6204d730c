"""Finding 1 of the hostile-input probe (issue 16): one message nested 1,000 elements deep, from
any registered user, cut an agent's stream for good (RecursionError in the agent's handler,
then in slixmpp's error reply, a deep copy). Now it gets an error reply and the agent lives on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_plain_client import NS, _grid, offer_xml, payloads, start_aggregator, stop, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aggregator(prosody_server, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("deep")
    proc = start_aggregator(prosody_server, tmp_path, "deepfman", """
enrolment = "open"
upstream = "plan"
cycle = 2
lead = 60
""")
    yield prosody_server.jid("deepfman"), proc
    stop(proc)


def deep_message(to: str, tag: str, ns: str, depth: int) -> str:
    """The raw stanza (slixmpp itself cannot serialise it: its writer recurses too)."""
    return (f'<message to="{to}" type="chat" id="deep-1"><body>?</body><{tag} xmlns="{ns}">'
            + f"<{tag}>" * (depth - 1) + f"</{tag}>" * depth + "</message>")


@pytest.mark.parametrize("tag, ns", [("profile", NS), ("x", "urn:example:other")])
async def test_a_message_nested_a_thousand_deep_gets_an_error_reply_and_the_agent_lives_on(
        prosody_server, aggregator, xmpp_client, tag, ns):
    fman, proc = aggregator
    client = await xmpp_client(prosody_server, f"deep-{tag}", "box-secret")
    for _ in range(3):  # the probe cut the stream 3 times out of 3
        client.send_raw(deep_message(fman, tag, ns, 1000))
        err = await wait_for(client, lambda m: m["type"] == "error", what="error reply")
        assert err["error"]["condition"] == "bad-request"
        assert "nested more than" in err["error"]["text"]
    now = datetime.now(timezone.utc)
    ok = client.make_message(mto=fman, mbody="flex-offer", mtype="chat")
    ok.append(ET.fromstring(offer_xml(f"after-deep-{tag}", prosody_server.jid(f"deep-{tag}"),
                                      _grid(now + timedelta(minutes=30)), _grid(now + timedelta(hours=1)))))
    ok.send()
    ack = await wait_for(client, lambda m: any(p.tag == f"{{{NS}}}ack" for p in payloads(m)), what="ack")
    assert payloads(ack)[0].get("status") == "accepted"
    assert proc.poll() is None
