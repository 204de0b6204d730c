"""The store keeps offer messages (an outbox holds one per offer sent) as fields with the offer in
its JSON form: they read back equal, every kind of offer, and a store written with their XML form
still reads. A write of several changes to one key keeps the last."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.protocol.test_engines import offer
from vmenergy.protocol.engine import OutboxEntry
from vmenergy.protocol.messages import Ack, OfferMessage
from vmenergy.store import Store
from vmenergy.store.codec import dumps, loads
from vmenergy.wire.messages import to_xml

TEMPLATES = ["ev-overnight", "dishwasher-xor", "heatpump-polytope", "battery-dependency", "ev-conditional",
             "washer-implicit", "pv-producer"]


@pytest.mark.parametrize("op", ["insert", "update"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_an_offer_message_reads_back_equal_and_is_not_stored_as_xml(template, op):
    fo = replace(offer(template, 0), issuer="p0@localhost")
    msg = OfferMessage(op, fo.id, fo)
    entry = OutboxEntry("agg@localhost", msg, 100, 100, 1)
    text = dumps(entry)
    assert "<flexoffer" not in text
    back = loads(text)
    assert back == entry and back.msg.offer.to_json() == fo.to_json()


def test_a_delete_reads_back_equal():
    msg = OfferMessage("delete", "fo-1", None, 3)
    assert loads(dumps(msg)) == msg


def test_an_offer_message_stored_as_xml_by_an_earlier_version_still_reads():
    fo = replace(offer("heatpump-polytope", 0), issuer="p0@localhost")
    msg = OfferMessage("insert", fo.id, fo)
    old = json.dumps({"$": "msg", "v": to_xml(msg)})
    assert loads(old) == msg


def test_a_write_keeps_each_keys_last_change(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.flush([("meta", "a", 1), ("meta", "a", 2), ("meta", "b", 3), ("meta", "b", None),
                        ("meta", "c", None), ("meta", "c", 4)]) == 3
    assert store.flush([]) == 0
    assert dict(store.load().tables["meta"]) == {"a": 2, "c": 4}


def test_stored_numbers_read_back_exactly_with_one_object_per_repeated_text():
    from vmenergy.store.codec import loads as store_loads
    values = store_loads('{"$": "tuple", "v": [0.5, 0.5, -0.0, 0.0, 1e-05, 7]}')
    assert values == (0.5, 0.5, -0.0, 0.0, 1e-05, 7) and type(values[5]) is int
    assert values[0] is values[1] and str(values[2]) == "-0.0" and str(values[3]) == "0.0"


def test_the_number_pool_is_bounded_and_reads_the_same_after_it_is_cleared(monkeypatch):
    from vmenergy.store import codec

    monkeypatch.setattr(codec, "_FLOATS_MAX", 4)
    codec._FLOATS.clear()
    texts = [f"{i}.25" for i in range(10)]
    values = codec.loads('{"$": "tuple", "v": [' + ", ".join(texts + texts[-2:]) + "]}")
    assert values == tuple(float(t) for t in texts + texts[-2:])
    assert len(codec._FLOATS) <= 4  # cleared when full, never above its bound
    assert values[-1] is values[9] and values[-2] is values[8]  # repeats after the clearing still shared
    assert codec.loads("[1e-300, -0.0]") == [1e-300, -0.0] and str(codec.loads("[-0.0]")[0]) == "-0.0"
    codec._FLOATS.clear()


def test_an_offer_written_again_in_another_record_is_the_same_text_and_the_next_offer_its_own():
    """The encoder reuses the last offer's encoding (a step writes the same offer in its record and
    in its outbox entry); what it writes must be what encoding afresh writes."""
    from vmenergy.store import codec

    first, second = (replace(offer(t, 0), issuer="p0@localhost") for t in ("ev-overnight", "heatpump-polytope"))
    fresh = [json.dumps(codec.encode(OutboxEntry("a@b", OfferMessage("insert", fo.id, fo), 1, 1, 1)))
             for fo in (first, second)]
    for fo, text in [(first, fresh[0]), (first, fresh[0]), (second, fresh[1]), (first, fresh[0])]:
        entry = OutboxEntry("a@b", OfferMessage("insert", fo.id, fo), 1, 1, 1)
        assert dumps(entry) == json.dumps(codec.encode(entry), separators=(",", ":")) and loads(dumps(entry)) == entry
    assert json.loads(dumps(OutboxEntry("a@b", OfferMessage("insert", first.id, first), 1, 1, 1))) == json.loads(fresh[0])
    # an equal offer that is another object is encoded afresh (the cache keys on identity)
    twin = replace(first)
    assert twin is not first and dumps(twin) == dumps(first)


@pytest.mark.parametrize("ack", [Ack("flexoffer", "fo-1", "accepted", None, 0),
                                 Ack("flexoffer", "fo-1", "rejected", 'late: "start" < now & <lead>', 3),
                                 Ack("assignment", "s-1", "accepted")])
def test_an_answer_reads_back_equal_and_its_ack_is_stored_as_fields_not_xml(ack):
    answer = ("p0@localhost", ack, 100)  # the ANSWERS table's (sender, ack, when)
    text = dumps(answer)
    assert "<ack" not in text
    assert loads(text) == answer


def test_an_ack_stored_as_xml_by_an_earlier_version_still_reads():
    ack = Ack("flexoffer", "fo-1", "rejected", "late", 2)
    assert loads(json.dumps({"$": "msg", "v": to_xml(ack)})) == ack


def test_a_stored_ack_with_a_bad_field_is_refused_naming_it():
    from vmenergy.store.sqlite import read_record

    with pytest.raises(ValueError, match="status"):
        read_record(json.dumps({"$": "Ack", "v": ["flexoffer", "fo-1", "maybe", None, 0]}), "store: answers[k]")
