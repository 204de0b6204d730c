"""The examples in docs/protocol.md are part of the contract: they must parse and be valid."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.wire import json as wjson
from vmenergy.wire import xml as wxml

DOC = (ROOT / "docs" / "protocol.md").read_text()
BLOCKS = re.findall(r"```(json|xml)\n(.*?)```", DOC, flags=re.S)
JSON_BLOCKS = [b for kind, b in BLOCKS if kind == "json"]
XML_DOCS = [b for kind, b in BLOCKS if kind == "xml" and b.lstrip().startswith(("<flexoffer", "<assignment"))]


def test_doc_has_examples_of_both_formats():
    assert len(JSON_BLOCKS) >= 2 and len(XML_DOCS) >= 2


@pytest.mark.parametrize("block", JSON_BLOCKS)
def test_json_examples_are_valid(block):
    (item,) = wjson.parse_any(block)
    assert isinstance(item, (FlexOffer, Schedule))


@pytest.mark.parametrize("block", XML_DOCS)
def test_xml_examples_are_valid(block):
    assert isinstance(wxml.parse(block), (FlexOffer, Schedule))


def test_json_and_xml_examples_describe_the_same_offer_and_schedule():
    offers = [x for x in (wjson.parse_any(b)[0] for b in JSON_BLOCKS) if isinstance(x, FlexOffer)]
    xml_items = [wxml.parse(b) for b in XML_DOCS]
    assert offers[0] in xml_items
    schedules = [x for x in (wjson.parse_any(b)[0] for b in JSON_BLOCKS) if isinstance(x, Schedule)]
    assert schedules[0] in xml_items
    assert offers[0].is_feasible(schedules[0])


MESSAGE_DOCS = [b for kind, b in BLOCKS if kind == "xml" and b.lstrip().startswith(
    ("<ack", "<measurement", "<device-fault", "<bill", "<rejection", "<bid", "<reservation", "<activation",
     "<flex-"))]


@pytest.mark.parametrize("block", MESSAGE_DOCS)
def test_agent_message_examples_are_valid(block):
    from vmenergy.wire.messages import parse_message, to_xml

    msg = parse_message(block)
    assert parse_message(to_xml(msg)) == msg


def test_bill_example_adds_up():
    from vmenergy.wire.messages import parse_message

    (bill_doc,) = [b for b in MESSAGE_DOCS if b.lstrip().startswith("<bill")]
    bill = parse_message(bill_doc)
    assert bill.total_cents == 98 and any(line.offer_id == "fo-ev-17" for line in bill.lines)


def test_the_message_table_lists_every_message_type_with_its_declared_performative():
    from vmenergy.protocol.messages import message_types

    rows = dict(re.findall(r"^\| `([a-z-]+)` \|.*\| `([a-z-]+)` \|$", DOC, flags=re.M))
    declared = {t.element: t.performative for t in message_types() if t.element != "ack"}
    assert rows == declared


def test_the_rejection_example_is_the_message_an_aggregator_sends():
    from vmenergy.protocol.aggregator import NOT_ASSIGNED_IN_TIME
    from vmenergy.protocol.messages import OfferRejection
    from vmenergy.wire.messages import parse_message

    (doc,) = [b for b in MESSAGE_DOCS if b.lstrip().startswith("<rejection")]
    assert parse_message(doc) == OfferRejection("fo-ev-17", 0, NOT_ASSIGNED_IN_TIME)


def test_hourly_market_examples_keep_their_times():
    from vmenergy.wire.messages import parse_message

    hourly = [parse_message(b) for b in MESSAGE_DOCS if 'resolution="3600"' in b]
    assert len(hourly) == 3 and all(m.resolution == 3600 for m in hourly)
    assert all(m.start * m.resolution == parse_utc("2026-11-22T20:00:00Z", "t") for m in hourly)


def test_the_dso_examples_are_one_consistent_exchange():
    """The reply answers the request over its intervals, the order's schedule is feasible for the
    reply's aggregate and takes the ordered kWh off the baseline, and the settlement is what the
    DSO computes from the metering."""
    import numpy as np

    from vmenergy.protocol.dso import DsoConfig, DsoOrder, verify
    from vmenergy.protocol.gridload import place, schedule_load
    from vmenergy.wire.messages import parse_message

    docs = {b.split()[0].strip("<"): [] for b in MESSAGE_DOCS}
    for b in MESSAGE_DOCS:
        docs[b.split()[0].strip("<")].append(parse_message(b))
    (req,), (reply,), (order, declined), (settlement,) = (docs["flex-request"], docs["flex-reply"],
                                                          docs["flex-order"], docs["flex-settlement"])
    metering = [m for m in docs["measurement"] if m.offer_id == order.order_id][0]
    assert reply.request_id == req.request_id and len(reply.baseline) == len(req.max_kwh)
    assert declined.status == "declined" and declined.reason
    (fo,), (s,) = reply.offers, order.schedules
    assert fo.is_feasible(s)
    scheduled = place(np.zeros(len(req.max_kwh)), req.start, *schedule_load(fo, s))
    ordered = np.clip(np.asarray(reply.baseline) - scheduled, 0, None)
    assert ordered.sum() == order.ordered_kwh
    assert (scheduled + np.asarray(reply.committed) <= np.asarray(req.max_kwh)).all()
    rec = DsoOrder(order, "aggregator@vme.localhost", req.start, reply.baseline, tuple(scheduled),
                      tuple(ordered), 900, measurement=metering)
    assert verify(rec, DsoConfig(points={"feeder-1": {"limit": 40.0}}), settlement.settlement_id)[0] == settlement


def test_the_spade_metadata_example_is_the_form_an_agent_set_to_send_it_writes():
    import xml.etree.ElementTree as ET

    from vmenergy.agents.base import metadata_form

    (doc,) = [b for kind, b in BLOCKS if kind == "xml" and "jabber:x:data" in b]
    form = re.search(r"<x xmlns=\"jabber:x:data\".*?</x>", doc, flags=re.S).group(0)

    def canonical(el):
        for node in el.iter():
            node.tail = None
            if node.text is not None and not node.text.strip():
                node.text = None
        return ET.tostring(el)

    assert canonical(ET.fromstring(form)) == canonical(metadata_form("flexoffer"))
