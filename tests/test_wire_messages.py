"""Market messages on the wire carry the resolution of their times: an hourly market's bid,
reservation and activation say so, and read back to the same intervals."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.messages import ActivationMessage, BidMessage, ReservationMessage
from vmenergy.wire.messages import parse_message, to_xml

HOUR = 3600
T = parse_utc("2026-11-22T20:00:00Z", "t") // HOUR  # an interval on the hourly grid

HOURLY = [
    BidMessage("bid-8", "s-3", "buy", volume=40.0, price=0.25, start=T, end=T + 2, resolution=HOUR),
    ReservationMessage("r-1", "s-3", "bid-8", T, T + 2, 10.0, 0.05, resolution=HOUR),
    ActivationMessage("a-1", "r-1", T, T + 1, 5.0, resolution=HOUR),
]


@pytest.mark.parametrize("msg", HOURLY, ids=lambda m: type(m).__name__)
def test_hourly_market_messages_round_trip_with_their_resolution(msg):
    text = to_xml(msg)
    el = ET.fromstring(text)
    assert el.get("resolution") == "3600"
    assert el.get("start") == "2026-11-22T20:00:00Z"  # interval T at 3600 s, not at 900 s
    assert parse_message(text) == msg


@pytest.mark.parametrize("msg", HOURLY, ids=lambda m: type(m).__name__)
def test_messages_at_the_default_resolution_leave_it_out(msg):
    from dataclasses import replace

    quarter = replace(msg, start=msg.start * 4, end=msg.end * 4, resolution=900)
    text = to_xml(quarter)
    assert "resolution" not in ET.fromstring(text).attrib
    assert ET.fromstring(text).get("start") == "2026-11-22T20:00:00Z"
    assert parse_message(text) == quarter
