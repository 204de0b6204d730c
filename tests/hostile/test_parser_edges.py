"""Finding 8 of the hostile-input probe (issue 16): the parsers' edges. Whatever a document
holds, only FlexOfferError escapes, and it names the field; ids refuse every kind of Unicode
whitespace, control and format character; nothing is accepted that cannot be written back."""

from __future__ import annotations

import json

import pytest

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.protocol.messages import BillLine, BillMessage, MarketSessionNotice
from vmenergy.wire import xml as wxml
from vmenergy.wire.messages import parse_message

OFFER = {"id": "fo-1", "issuer": "h@localhost", "resolution": 900,
         "start_after": "2026-11-22T22:00:00Z", "start_before": "2026-11-23T04:00:00Z",
         "profiles": [{"slices": [{"duration": 1, "min": 0.0, "max": 2.8}]}]}
SCHEDULE = {"offer_id": "fo-1", "schedule_id": "s-1", "update_id": 0, "profile": 0,
            "start": "2026-11-23T01:15:00Z", "energy": [2.0]}


def nested(depth: int) -> list:
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


def refused(fn, path: str) -> FlexOfferError:
    with pytest.raises(FlexOfferError) as info:
        fn()
    assert info.value.path == path, str(info.value)
    return info.value


def test_deep_nesting_in_a_decoded_object_is_refused_by_field_not_with_recursion_error():
    refused(lambda: FlexOffer.from_dict(dict(OFFER, label=nested(100_000))), "label")
    refused(lambda: Schedule.from_dict(dict(SCHEDULE, schedule_id=nested(100_000))), "schedule_id")


@pytest.mark.parametrize("field, value, path", [
    ("profiles", [{"slices": [{"duration": 1, "min": 0.0, "max": 10 ** 400}]}], "profiles[0].slices[0].max"),
    ("profiles", [{"slices": [{"duration": 10 ** 5000, "min": 0.0, "max": 1.0}]}], "profiles[0].slices[0].duration"),
    ("version", 10 ** 400, "version"),
])
def test_integers_beyond_any_float_or_printable_length_are_refused_by_field(field, value, path):
    err = refused(lambda: FlexOffer.from_dict(dict(OFFER, **{field: value})), path)
    assert "out of range" in err.reason


def test_schedule_energy_beyond_any_float_is_refused_by_field():
    refused(lambda: Schedule.from_dict(dict(SCHEDULE, energy=[10 ** 400])), "energy[0]")
    refused(lambda: Schedule.from_dict(dict(SCHEDULE, update_id=10 ** 400)), "update_id")


def test_huge_json_integers_name_their_field():
    text = json.dumps(OFFER).replace('"duration": 1', '"duration": ' + "9" * 5000)
    err = refused(lambda: FlexOffer.from_json(text), "profiles[0].slices[0].duration")
    assert "5000 digits" in err.reason


def test_huge_xml_integers_name_their_field():
    text = wxml.to_xml(FlexOffer.from_dict(OFFER)).replace('duration="1"', 'duration="' + "9" * 4400 + '"')
    refused(lambda: wxml.parse(text), "profiles[0].slices[0].duration")
    bill = ('<bill xmlns="urn:vmenergy:flexoffer:1" id="b-1" period-start="2026-11-23T00:00:00Z" '
            'period-end="2026-11-23T01:00:00Z" total="1.00"><line kind="x" amount="1.00">a</line></bill>')
    assert parse_message(bill).total_cents == 100


def test_an_empty_energy_list_is_refused_so_every_schedule_can_be_written_back():
    refused(lambda: Schedule.from_dict(dict(SCHEDULE, energy=[])), "energy")
    s = Schedule.from_dict(SCHEDULE)
    assert wxml.parse(wxml.to_xml(s)) == s


@pytest.mark.parametrize("char", ["\u0085", "\u2028", "\u2029", "\u00a0", "\u202e", "\u200b", "\ufeff", "\u3000",
                                  "\U000e0001", "\ue000"])
def test_ids_refuse_unicode_whitespace_control_and_format_characters(char):
    refused(lambda: FlexOffer.from_dict(dict(OFFER, id=f"fo{char}1")), "id")
    refused(lambda: Schedule.from_dict(dict(SCHEDULE, offer_id=f"fo{char}1")), "offer_id")


def test_ids_keep_letters_of_any_script():
    assert FlexOffer.from_dict(dict(OFFER, id="ladestation-ø-東京-1")).id == "ladestation-ø-東京-1"


@pytest.mark.parametrize("kind", ["flexible\x00energy", "pen\x1balty", "", "a b"])
def test_bill_line_kind_refuses_control_characters_and_spaces(kind):
    refused(lambda: BillLine(kind, "text", 1), "kind")


@pytest.mark.parametrize("currency", ["EU\x00", "eur", "EURO", "\x1bEUR", ""])
def test_bill_and_session_currency_is_an_iso_4217_code(currency):
    refused(lambda: BillMessage("b-1", 0, 900, (BillLine("x", "y", 1),), currency), "currency")
    refused(lambda: MarketSessionNotice("s-1", "open", "pay-as-clear", 0, 900, 1800, currency=currency), "currency")


def test_bill_line_description_refuses_control_characters():
    refused(lambda: BillLine("x", "paid\x1b[2J", 1), "description")
    assert BillLine("x", "two\nlines\tand a tab", 1).description == "two\nlines\tand a tab"
