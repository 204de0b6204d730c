"""Finding 7 of the hostile-input probe (issue 16): a legal 256 KiB polytope offer cost about a
second of LP on the event loop every agent of a process shares. Big payloads are now decoded
in a worker thread (in arrival order), and a polytope whose check would take more than the
solver budget is refused, naming it."""

from __future__ import annotations

import random
import threading
import xml.etree.ElementTree as ET

import pytest
from slixmpp import Message as Stanza

from vmenergy.agents import AggregatorAgent
from vmenergy.agents import base
from vmenergy.flexoffer import FlexOffer, FlexOfferError
from vmenergy.flexoffer.limits import CHECK_SECONDS, set_check_seconds
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.messages import OfferMessage
from vmenergy.runtime.clock import VirtualClock
from vmenergy.runtime.driver import VirtualDriver
from vmenergy.wire.messages import to_xml

NOW = parse_utc("2026-11-22T18:00:00Z", "now")
FMAN, HOUSE = "fman@localhost", "house1@localhost"


def polytope_offer(n: int, rows: int, version: int = 0) -> FlexOffer:
    rng = random.Random(7)
    return FlexOffer.from_dict({
        "id": "big-1", "issuer": HOUSE, "resolution": 900, "version": version,
        "start_after": "2026-11-22T22:00:00Z", "start_before": "2026-11-23T04:00:00Z",
        "profiles": [{"slices": [{"duration": 1, "min": 0.0, "max": 1.0}] * n,
                      "polytope": {"A": [[rng.choice([0.1, 0.2, -0.3, 0.5, 1.0, -1.0]) for _ in range(n)]
                                         for _ in range(rows)],
                                   "b": [rng.uniform(0.5, 5.0) for _ in range(rows)]}}]})


def stanza(msg) -> Stanza:
    st = Stanza()
    st["from"], st["to"], st["type"] = HOUSE, FMAN, "chat"
    st.append(ET.fromstring(to_xml(msg)))
    return st


async def test_a_big_payload_is_decoded_off_the_event_loop_and_messages_keep_their_order(monkeypatch, tmp_path):
    clock = VirtualClock(NOW)
    agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(enrolment=(HOUSE,)), clock=clock)
    driver = VirtualDriver(clock, {FMAN: "aggregators", HOUSE: "prosumers-0"})
    driver.add(agent)
    driver.start()
    threads: list[tuple[int, str]] = []

    def decode(el):  # the real decoder; the test only notes where it ran
        out = real(el)
        threads.append((threading.get_ident(), type(out).__name__))
        return out

    real = base.decode
    monkeypatch.setattr(base, "decode", decode)
    big = polytope_offer(100, 400)
    insert = OfferMessage("insert", big.id, big)
    assert base.DECODE_INLINE_BYTES < len(to_xml(insert)) < base.MAX_PAYLOAD_BYTES
    agent._message_received(stanza(insert))
    update = polytope_offer(2, 1, version=1)  # small: decoded inline, but after the big one
    agent._message_received(stanza(OfferMessage("update", update.id, update)))
    while agent._decoding is not None:
        await agent._decoding
    loop_thread = threading.get_ident()
    assert [name for _, name in threads] == ["OfferMessage", "OfferMessage"]
    assert threads[0][0] != loop_thread
    await driver.run_round(NOW, 0, 0)  # the agent handles both, in the order they arrived
    rec = agent.engine.ledger.get("offers", "big-1")
    assert rec is not None and rec.offer.version == 1 and rec.offer.profiles[0].n_slices == 2


def test_a_polytope_beyond_the_solver_budget_is_refused_by_name():
    set_check_seconds(1e-6)
    try:
        with pytest.raises(FlexOfferError) as info:
            polytope_offer(120, 480)
        assert info.value.path == "profiles[0].polytope" and "too costly" in info.value.reason
    finally:
        set_check_seconds(CHECK_SECONDS)
    assert polytope_offer(120, 480).profiles[0].polytope is not None
