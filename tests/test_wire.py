"""Strict and safe parsing of the JSON and XML wire formats, and the stanza plugins."""

from __future__ import annotations

import math
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import EXAMPLES
from vmenergy.flexoffer import DOCUMENT, FlexOffer, FlexOfferError, Schedule
from vmenergy.wire import json as wjson
from vmenergy.wire import xml as wxml
from vmenergy.wire.stanzas import NS, register_message_plugins

EV = json.loads((EXAMPLES / "ev-overnight.json").read_text())


def bad_json(mutate) -> str:
    d = json.loads(json.dumps(EV))
    mutate(d)
    return json.dumps(d)


def err(fn, *args) -> FlexOfferError:
    with pytest.raises(FlexOfferError) as info:
        fn(*args)
    return info.value


# -- JSON -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mutate, path, why",
    [
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d["profiles"][0]["slices"][1].update(mn=1), "profiles[0].slices[1].mn", "unknown field"),
        (lambda d: d["profiles"][0]["slices"][0].pop("max"), "profiles[0].slices[0].max", "required"),
        (lambda d: d["profiles"][0]["slices"][0].update(min=True), "profiles[0].slices[0].min", "not a number"),
        (lambda d: d["profiles"][0]["slices"][0].update(duration=1.0), "profiles[0].slices[0].duration", "integer"),
        (lambda d: d["profiles"][0]["slices"][0].update(duration=-2), "profiles[0].slices[0].duration", ">= 1"),
        (lambda d: d["profiles"][0].update(slices={}), "profiles[0].slices", "JSON array"),
        (lambda d: d.update(profiles={"a": 1}), "profiles", "JSON array"),
        (lambda d: d.pop("profiles"), "profiles", "required"),
        (lambda d: d["profiles"].__setitem__(0, 7), "profiles[0]", "JSON object"),
        (lambda d: d.update(profiles=[d["profiles"][0]] * 17), "profiles", "more than 16"),
        (lambda d: d["profiles"][0].update(slices=[{"duration": 1, "min": 0, "max": 1}] * 10_001),
         "profiles[0].slices", "more than 10000"),
        (lambda d: d.update(start_after="2026-11-22T22:00:00+01:00"), "start_after", "ISO 8601 UTC"),
        (lambda d: d.update(start_after=1795384800), "start_after", "ISO 8601 UTC"),
        (lambda d: d.update(start_before_duration="PT1H"), "start_before_duration", "not both"),
        (lambda d: d.update(start_before=None, start_before_duration="PT10M"), "start_before_duration", "whole number"),
        (lambda d: d.update(state="lost"), "state", "unknown state"),
        (lambda d: d.update(id=5), "id", "string"),
        (lambda d: d.update(resolution="900"), "resolution", "integer"),
        (lambda d: d["prices"]["slices"][0].pop("up"), "prices.slices[0].up", "required"),
        (lambda d: d["baseline"].update(energy=[1, 2]), "baseline.energy", "must be feasible"),
        (lambda d: d["baseline"].pop("energy"), "baseline.energy", "required"),
        (lambda d: d["profiles"][0].update(total={}), "profiles[0].total", "give min, max or both"),
        (lambda d: d["profiles"][0].update(polytope={"A": [[1, 0, 0, 0]]}), "profiles[0].polytope.b", "required"),
        (lambda d: d["profiles"][0].update(polytope={"A": "x", "b": [1]}), "profiles[0].polytope.A", "JSON array"),
    ],
)
def test_json_strictness(mutate, path, why):
    e = err(FlexOffer.from_json, bad_json(mutate))
    assert e.path == path and why in e.reason, str(e)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "malformed JSON"),
        ("{", "malformed JSON"),
        ("[1, 2", "malformed JSON"),
        ('{"id": NaN}', "NaN is not a number"),
        ('{"id": Infinity}', "Infinity is not a number"),
        ("42", "must be a JSON object"),
        ("[]", "must be a JSON object"),
        ("null", "must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"id": "a", "id": "b"}', "duplicate key"),
    ],
)
def test_json_document_errors(text, why):
    e = err(FlexOffer.from_json, text)
    assert why in e.reason and e.path in (DOCUMENT, "", "id")


def test_json_oversize_and_bad_bytes():
    e = err(FlexOffer.from_json, " " * (wjson.MAX_DOCUMENT_BYTES + 1))
    assert e.path == DOCUMENT and "oversize" in e.reason
    e = err(FlexOffer.from_json, b"\xff\xfe{}")
    assert "UTF-8" in e.reason
    e = err(FlexOffer.from_json, 12)
    assert e.path == DOCUMENT


def test_json_huge_numbers_are_refused_cleanly():
    e = err(FlexOffer.from_json, bad_json(lambda d: d["profiles"][0]["slices"][0].update(max=1e300)))
    assert e.path == "profiles[0].slices[0].max" and "out of range" in e.reason
    text = json.dumps(EV).replace('"duration": 4', '"duration": ' + "9" * 5000, 1)
    e = err(FlexOffer.from_json, text)  # Python refuses >4300-digit ints: still our error type
    assert isinstance(e, FlexOfferError)


def test_parse_any_lists_and_schedules():
    items = wjson.parse_any(json.dumps([EV, {"offer_id": "x", "start": "2026-11-22T22:00:00Z", "energy": [1]}]))
    assert isinstance(items[0], FlexOffer) and isinstance(items[1], Schedule)
    e = err(wjson.parse_any, json.dumps([EV, {"id": "y"}]))
    assert e.path == "[1].profiles"


def test_schedule_json_rules():
    ok = {"offer_id": "x", "start": "2026-11-22T22:00:00Z", "energy": [1, 2]}
    s = Schedule.from_json(json.dumps(ok))
    assert (s.schedule_id, s.update_id, s.profile, s.resolution) == (None, 0, 0, 900)
    assert Schedule.from_json(json.dumps(ok), resolution=3600).resolution == 3600
    assert Schedule.from_json(json.dumps({**ok, "resolution": 300})).resolution == 300
    assert json.loads(Schedule.from_json(json.dumps({**ok, "resolution": 300})).to_json())["resolution"] == 300
    for key in ("offer_id", "start", "energy"):
        bad = dict(ok)
        bad.pop(key)
        assert err(Schedule.from_json, json.dumps(bad)).path == key
    assert err(Schedule.from_json, json.dumps({**ok, "energy": [1, "x"]})).path == "energy[1]"
    assert err(Schedule.from_json, json.dumps({**ok, "update_id": -1})).path == "update_id"
    assert err(Schedule.from_json, json.dumps({**ok, "start": "2026-11-22T22:05:00Z"})).path == "start"
    assert err(Schedule.from_json, json.dumps({**ok, "extra": 1})).path == "extra"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_gives_an_offer_or_flexoffererror(value):
    try:
        text = json.dumps(value)
    except ValueError:
        return
    try:
        FlexOffer.from_json(text)
    except FlexOfferError:
        pass


@given(st.sampled_from(["profiles", "slices", "min", "max", "duration", "total", "baseline", "prices", "start_after",
                        "id", "resolution", "polytope", "values", "energy", "b", "A"]),
       json_values)
def test_replacing_any_field_with_junk_gives_flexoffererror_or_an_offer(key, junk):
    def walk(node):
        if isinstance(node, dict):
            for k in list(node):
                if k == key:
                    node[k] = junk
                else:
                    walk(node[k])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    d = json.loads(json.dumps(EV))
    walk(d)
    try:
        FlexOffer.from_json(json.dumps(d))
    except FlexOfferError as e:
        assert e.reason


# -- XML ------------------------------------------------------------------------------------------

EV_XML = (EXAMPLES / "ev-overnight.xml").read_text()


@pytest.mark.parametrize(
    "old, new, path, why",
    [
        ('max="11.0"', 'max="lots"', "profiles[0].slices[0].max", "not a number"),
        ('max="11.0"', 'max="NaN"', "profiles[0].slices[0].max", "NaN"),
        ('duration="4"', 'duration="0"', "profiles[0].slices[0].duration", ">= 1"),
        ('resolution="900"', 'resolution="900" colour="red"', "colour", "unknown attribute"),
        ("<total", "<foo/><total", "profiles[0].foo", "unknown element"),
        ("<total", '<total min="1"/><total', "profiles[0].total", "more than one"),
        ('op="insert"', 'op="upsert"', "op", "unknown operation"),
        (f'xmlns="{NS}"', 'xmlns="urn:other"', DOCUMENT, "unknown namespace"),
        (f'xmlns="{NS}"', "", DOCUMENT, "no namespace"),
        ('start-after="2026-11-22T22:00:00Z"', 'start-after="2026-11-22T22:10:00Z"', "start_after", "resolution grid"),
        ("<energy>11.0 11.0 11.0 3.0</energy>", "<energy>11.0 x</energy>", "baseline.energy[1]", "not a number"),
        ('<price up="0.04" down="0.06" />', '<price up="0.04" />', "prices.slices[0].down", "required"),
        ("<profile>", "<profile>stray", "profiles[0]", "unexpected text"),
    ],
)
def test_xml_strictness(old, new, path, why):
    assert old in EV_XML
    e = err(wxml.parse, EV_XML.replace(old, new, 1))
    assert e.path == path and why in e.reason, str(e)


@pytest.mark.parametrize(
    "text, why",
    [
        ("<flexoffer", "malformed XML"),
        ("", "malformed XML"),
        ("not xml", "malformed XML"),
        (f'<!DOCTYPE f [<!ENTITY a "{"x" * 10}">]><flexoffer xmlns="{NS}" id="&a;"/>', "DTD"),
        (f'<!DOCTYPE f SYSTEM "http://example.com/x.dtd"><flexoffer xmlns="{NS}" id="a"/>', "DTD"),
        (f'<bid xmlns="{NS}"/>', "unknown root element"),
        ("<a><b></a>", "malformed XML"),
    ],
)
def test_xml_document_errors(text, why):
    e = err(wxml.parse, text)
    assert e.path == DOCUMENT and why in e.reason


def test_xml_oversize():
    e = err(wxml.parse, "<a>" + " " * wjson.MAX_DOCUMENT_BYTES + "</a>")
    assert "oversize" in e.reason


def test_polytope_row_needs_b():
    text = (EXAMPLES / "battery-dependency.json").read_text()
    xml_text = wxml.to_xml(FlexOffer.from_json(text))
    import re

    broken = re.sub(r'<row b="[^"]*">', "<row>", xml_text, count=1)
    e = err(wxml.parse, broken)
    assert e.path == "profiles[0].polytope.b[0]" and "required" in e.reason


def test_assignment_xml():
    s = Schedule.from_json((EXAMPLES / "ev-overnight-schedule.json").read_text())
    text = wxml.to_xml(s)
    assert text.startswith(f'<assignment xmlns="{NS}"') and "<energy>8.0 11.0 11.0 5.0</energy>" in text
    assert wxml.parse(text) == s
    assert wxml.parse_schedule(text) == s
    with pytest.raises(FlexOfferError):
        wxml.parse_offer(text)
    with pytest.raises(FlexOfferError):
        wxml.to_xml(s, op="insert")


def test_stanzas_ride_on_a_slixmpp_message():
    from slixmpp import Message
    from slixmpp.xmlstream import ET

    register_message_plugins()
    fo = FlexOffer.from_json((EXAMPLES / "ev-overnight.json").read_text())
    msg = Message()
    msg["to"] = "aggregator@vme.localhost"
    msg["body"] = "flex-offer fo-ev-17"
    msg.append(wxml.offer_to_stanza(fo, op="insert"))
    wire = str(msg)
    # what a receiver sees: parse the message and read the plugin
    received = Message(xml=ET.fromstring(wire))
    op, back = wxml.read_flexoffer(received["flexoffer"])
    assert op == "insert" and back == fo
    assert received["flexoffer"]["id"] == "fo-ev-17"


@given(st.binary(max_size=200))
def test_any_bytes_give_flexoffererror_or_a_model_object(data):
    try:
        wxml.parse(data)
    except FlexOfferError:
        pass


@given(st.integers(0, len(EV_XML) - 1), st.integers(1, 20), st.text(max_size=5))
def test_mangled_xml_gives_flexoffererror_or_a_model_object(pos, length, insert):
    text = EV_XML[:pos] + insert + EV_XML[pos + length:]
    try:
        wxml.parse(text)
    except FlexOfferError as e:
        assert e.reason


def test_repeated_number_texts_read_as_one_object_and_signed_zero_stays_signed():
    from vmenergy.wire.xml import _value
    cells = _value("0.0 0.0 -0.0 2.5 2.5 7", "l", "A[0]")
    assert cells == [0.0, 0.0, -0.0, 2.5, 2.5, 7] and [type(c) for c in cells] == [float] * 5 + [int]
    assert cells[0] is cells[1] and cells[3] is cells[4]
    assert math.copysign(1.0, cells[2]) == -1.0 and math.copysign(1.0, cells[0]) == 1.0
    assert _value("lots", "f", "min") == "lots"  # no number: the model names the field
