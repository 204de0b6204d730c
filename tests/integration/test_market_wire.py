"""A plain XMPP client (no VME code) trades with a real market agent (``vmenergy agent market``)
on Prosody: a bid before registering is refused naming the sender, registration in a market
with zones needs one of its zones, a bid outside the session is refused with the field and the
reason, a good order clears with its zone's price, and deregistering withdraws a live bid."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_plain_client import NS, payloads, start_agent, stop, wait_for
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration

MARKET = """
registration = "open"
mechanism = "implicit-capacity"
zones = ["north", "south"]
links = [{ a = "north", b = "south", capacity = 50.0, cost = 0.02 }]
liquidity_zone = "north"
session_every = 30
gate_closure = 25
delivery_offset = 900
delivery_length = 7200
time_limit = 5
liquidity.sell = { volume = 100.0, prices = [0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10,
                                             0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10] }
"""


def send(client, to: str, xml: str, body: str = "vme") -> None:
    msg = client.make_message(mto=to, mbody=body, mtype="chat")
    msg.append(ET.fromstring(xml))
    msg.send()


def is_el(tag: str, **attrs):
    def match(m) -> bool:
        return any(p.tag == f"{{{NS}}}{tag}" and all(p.get(k) == v for k, v in attrs.items()) for p in payloads(m))
    return match


def el(msg, tag: str) -> ET.Element:
    return next(p for p in payloads(msg) if p.tag == f"{{{NS}}}{tag}")


async def test_a_plain_client_is_refused_until_registered_in_a_zone_then_its_order_clears(prosody_server,
                                                                                         xmpp_client, tmp_path):
    proc = start_agent(prosody_server, tmp_path, "market", "zmarket", MARKET)
    try:
        market = prosody_server.jid("zmarket")
        client = await xmpp_client(prosody_server, "ztrader", "trader-secret")
        me = prosody_server.jid("ztrader")
        # a bid before registering: refused, naming the sender
        send(client, market, f'<bid xmlns="{NS}" id="early" session="s-1" side="buy" volume="1" price="0.3" '
                             f'start="2030-01-01T00:00:00Z" end="2030-01-01T00:15:00Z"/>')
        ack = el(await wait_for(client, is_el("ack", ref="early"), what="bid ack"), "ack")
        assert ack.get("status") == "rejected" and ack.get("reason") == f"{me} is not a registered participant"
        # registering without a zone: refused with the zones it has
        send(client, market, f'<registration xmlns="{NS}" op="register" participant="{me}" role="buyer"/>')
        ack = el(await wait_for(client, is_el("ack", kind="registration"), what="registration ack"), "ack")
        assert ack.get("status") == "rejected"
        assert ack.get("reason") == "zone: must be one of this market's zones north, south (got None)"
        send(client, market, f'<registration xmlns="{NS}" op="register" participant="{me}" role="buyer" zone="south"/>')
        await wait_for(client, is_el("ack", kind="registration", status="accepted"), timeout=30,
                       what="registration accepted")
        # the next session that opens is announced to it
        notice = el(await wait_for(client, is_el("market-session", state="open"), timeout=90, what="open session"),
                    "market-session")
        sid, first = notice.get("id"), notice.get("delivery-start")
        # an order outside the session's delivery: refused with the field and the reason
        send(client, market, f'<bid xmlns="{NS}" id="far-{sid}" session="{sid}" side="buy" volume="1" price="0.3" '
                             f'start="2030-01-01T00:00:00Z" end="2030-01-01T00:15:00Z"/>')
        ack = el(await wait_for(client, is_el("ack", ref=f"far-{sid}"), what="far bid ack"), "ack")
        assert ack.get("status") == "rejected" and ack.get("reason").startswith("start: delivery")
        # a good order: accepted, then cleared at the south's price (the north's plus transport)
        send(client, market, f'<bid xmlns="{NS}" id="ok-{sid}" session="{sid}" side="buy" volume="2" price="0.3" '
                             f'start="{first}"/>')
        ack = el(await wait_for(client, is_el("ack", ref=f"ok-{sid}"), what="bid ack"), "ack")
        assert ack.get("status") == "accepted", ack.attrib
        clearing = el(await wait_for(client, is_el("clearing", bid=f"ok-{sid}"), timeout=90, what="clearing"),
                      "clearing")
        assert clearing.get("status") == "accepted" and float(clearing.get("volume")) == pytest.approx(2.0)
        assert float(clearing.get("price")) == pytest.approx(0.12)
        # in the next session: an order, then deregistering withdraws it
        notice = el(await wait_for(client, lambda m: is_el("market-session", state="open")(m)
                                   and el(m, "market-session").get("id") != sid, timeout=90, what="next session"),
                    "market-session")
        nid = notice.get("id")
        send(client, market, f'<bid xmlns="{NS}" id="gone-{nid}" session="{nid}" side="buy" volume="1" price="0.3" '
                             f'start="{notice.get("delivery-start")}"/>')
        await wait_for(client, is_el("ack", ref=f"gone-{nid}", status="accepted"), what="bid ack")
        send(client, market, f'<registration xmlns="{NS}" op="deregister" participant="{me}" role="buyer" zone="south"/>')
        await wait_for(client, is_el("ack", kind="registration", status="accepted"), what="deregistration ack")
        assert proc.poll() is None
    finally:
        stop(proc)
    ledger = read_ledger(tmp_path / "zmarket.sqlite")
    gone = ledger.get("bids", f"gone-{nid}")
    assert gone.status == "withdrawn" and gone.clearing.reason == "withdrawn: the participant deregistered"
    assert me not in ledger.table("participants")
