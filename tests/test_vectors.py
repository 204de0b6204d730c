"""The shared conformance vectors of the flex-offer JSON contract."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from tests.conftest import LOCAL_VECTORS, SHARED_VECTORS, vectors_dir
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.wire import json as wjson
from vmenergy.wire import xml as wxml

V = vectors_dir()
VALID = sorted((V / "valid").glob("*.json"))
INVALID = json.loads((V / "invalid" / "EXPECT.json").read_text())
SCHEDULES = json.loads((V / "schedules-for-ev-overnight" / "EXPECT.json").read_text())


def _load(path: Path):
    text = path.read_text()
    return Schedule.from_json(text) if "offer_id" in json.loads(text) else FlexOffer.from_json(text)


def test_vector_sets_are_not_empty():
    assert len(VALID) >= 8 and len(INVALID) >= 12 and len(SCHEDULES) >= 5


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_is_accepted_and_round_trips_through_json(path):
    obj = _load(path)
    original = json.loads(path.read_text())
    written = obj.to_dict()
    if isinstance(obj, FlexOffer):
        original.setdefault("resolution", 900)  # the one default the writer always spells out
    assert written == original
    assert type(obj).from_json(obj.to_json()) == obj


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_round_trips_through_xml(path):
    obj = _load(path)
    text = wxml.to_xml(obj)
    assert wxml.parse(text) == obj
    assert wxml.to_xml(wxml.parse(text)) == text


@pytest.mark.parametrize("name", sorted(INVALID), ids=lambda n: n[:-5])
def test_invalid_vector_is_rejected_naming_the_field(name):
    expect = INVALID[name]
    with pytest.raises(FlexOfferError) as info:
        FlexOffer.from_json((V / "invalid" / name).read_text())
    assert info.value.path == expect["path"]
    assert expect["why"] in info.value.reason
    assert str(info.value).startswith(expect["path"] + ":")


@pytest.mark.parametrize("name", sorted(INVALID), ids=lambda n: n[:-5])
def test_invalid_vector_is_rejected_the_same_way_in_xml(name):
    """Rebuild each invalid document as XML by hand (the model cannot write an invalid offer) and
    check the XML parser names the same field."""
    data = json.loads((V / "invalid" / name).read_text())
    expect = INVALID[name]
    with pytest.raises(FlexOfferError) as info:
        wxml.parse(_dict_to_xml(data))
    assert info.value.path == expect["path"]
    assert expect["why"] in info.value.reason


@pytest.mark.parametrize("name", sorted(SCHEDULES), ids=lambda n: n[:-5])
def test_schedule_vectors_against_ev_overnight(name):
    offer = FlexOffer.from_json((V / "valid" / "ev-overnight.json").read_text())
    expect = SCHEDULES[name]
    schedule = Schedule.from_json((V / "schedules-for-ev-overnight" / name).read_text())
    violations = offer.check(schedule)
    assert offer.is_feasible(schedule) is expect["feasible"]
    if expect["violates"] is None:
        assert violations == []
    else:
        assert [v.field for v in violations] == [expect["violates"]]
        assert all(v.reason for v in violations)


def test_in_repo_copy_matches_the_shared_vectors():
    if not SHARED_VECTORS.is_dir():
        pytest.skip("no shared vectors next to this checkout (a clean clone); the in-repo copy is used")
    for shared in SHARED_VECTORS.rglob("*"):
        if shared.is_file():
            local = LOCAL_VECTORS / shared.relative_to(SHARED_VECTORS)
            assert local.is_file() and filecmp.cmp(shared, local, shallow=False), f"tests/vectors is stale: {local}"


# -- a tiny independent dict -> XML writer (kebab-case attributes), for invalid documents -----------

def _attr(v) -> str:
    from xml.sax.saxutils import quoteattr

    if isinstance(v, list):
        v = " ".join(str(x) for x in v)
    return quoteattr(str(v))


def _dict_to_xml(d: dict) -> str:
    ns = "urn:vmenergy:flexoffer:1"
    scalars = {k: v for k, v in d.items() if k not in ("profiles", "baseline", "prices")}
    out = [f'<flexoffer xmlns="{ns}"' + "".join(f" {k.replace('_', '-')}={_attr(v)}" for k, v in scalars.items()) + ">"]
    for p in d.get("profiles", []):
        out.append("<profile>")
        for s in p["slices"]:
            out.append("<slice" + "".join(f" {k}={_attr(v)}" for k, v in s.items()) + "/>")
        if "total" in p:
            out.append("<total" + "".join(f" {k}={_attr(v)}" for k, v in p["total"].items()) + "/>")
        if "polytope" in p:
            out.append("<polytope>")
            for row, b in zip(p["polytope"]["A"], p["polytope"]["b"]):
                out.append(f"<row b={_attr(b)}>{' '.join(str(x) for x in row)}</row>")
            out.append("</polytope>")
        out.append("</profile>")
    if "baseline" in d:
        b = d["baseline"]
        attrs = "".join(f" {k}={_attr(v)}" for k, v in b.items() if k != "energy")
        out.append(f"<baseline{attrs}><energy>{' '.join(str(x) for x in b['energy'])}</energy></baseline>")
    if "prices" in d:
        out.append(f"<prices currency={_attr(d['prices']['currency'])}>")
        for sp in d["prices"]["slices"]:
            out.append(f"<price up={_attr(sp['up'])} down={_attr(sp['down'])}/>")
        out.append("</prices>")
    out.append("</flexoffer>")
    return "".join(out)


def test_dict_to_xml_helper_agrees_with_the_codec_on_a_valid_vector():
    data = json.loads((V / "valid" / "ev-overnight.json").read_text())
    assert wxml.parse(_dict_to_xml(data)) == wjson.offer_from_dict(data)
