"""JSON encoding of ledger records, exact for every value the engines keep.

Offers and schedules use their JSON wire form and protocol messages their XML wire form, both of
which round-trip exactly, except acks (an aggregator stores the answer to each message it takes
in the commit before the ack goes out: as its five fields) and offer messages: an outbox holds one per offer sent, and an
offer's XML (a polytope's every cell as text, escaped character by character by slixmpp) cost a
prosumer fronting thousands of devices most of its time, so they are stored as their fields with
the offer in its JSON form (stores written before still read: ``msg`` stays known); record dataclasses are encoded field by field under their class name.
Decoding never instantiates arbitrary types: the record types are those the engines declare in
their ledger tables (``Engine.tables``), read from the engine classes below.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.protocol.aggregator import AggregatorEngine
from vmenergy.protocol.dso import DsoEngine
from vmenergy.protocol.engine import Engine
from vmenergy.protocol.market import MarketEngine
from vmenergy.protocol.messages import Ack, Message, OfferMessage
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.wire.json import offer_from_dict, offer_to_dict, schedule_from_dict
from vmenergy.wire.messages import parse_message, to_xml

__all__ = ["ENGINES", "RECORDS", "encode", "decode", "dumps", "loads"]

#: The engines whose ledgers are stored.
ENGINES: tuple[type[Engine], ...] = (ProsumerEngine, AggregatorEngine, MarketEngine, DsoEngine)


def record_types(engines: tuple[type[Engine], ...] = ENGINES) -> dict[str, type]:
    """Record dataclasses by class name: the values of the engines' tables (messages aside,
    which travel in their wire form)."""
    out: dict[str, type] = {}
    for engine in engines:
        for table in engine.tables:
            cls = table.record
            if dataclasses.is_dataclass(cls) and not issubclass(cls, Message):
                other = out.setdefault(cls.__name__, cls)
                if other is not cls:  # two records of one name would decode as each other
                    raise TypeError(f"two ledger record types are called {cls.__name__}: "
                                    f"{other.__module__} and {cls.__module__}")
    return out


#: Record types the store may decode, by class name.
RECORDS: dict[str, type] = record_types()


#: The last offer encoded and its encoding, as one (offer, dict) pair: a step that sends an offer
#: writes it twice, in the offer's record and in the outbox entry that holds the message (the
#: same object), so the second is the first's dict again (json.dumps only reads it). One pair,
#: read and replaced whole: big writes are encoded in worker threads while other agents of the
#: process encode on the event loop.
_LAST_OFFER: list[Optional[tuple[FlexOffer, dict]]] = [None]
#: The field names of each record dataclass (``dataclasses.fields`` looks them up every call).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, FlexOffer):
        last = _LAST_OFFER[0]
        if last is None or last[0] is not value:
            last = _LAST_OFFER[0] = (value, {"$": "FlexOffer", "v": offer_to_dict(value)})
        return last[1]
    if isinstance(value, Schedule):
        return {"$": "Schedule", "v": {**value.to_dict(), "resolution": value.resolution}}
    if isinstance(value, OfferMessage):
        return {"$": "OfferMessage", "v": {"op": value.op, "offer_id": value.offer_id, "version": value.version,
                                           "offer": encode(value.offer)}}
    if isinstance(value, Ack):
        # the answer an aggregator keeps per message received, written in the commit that must
        # precede the ack: as its fields, not its XML (~20 us a commit less; "msg" still reads)
        return {"$": "Ack", "v": [value.kind, value.ref, value.status, value.reason, value.version]}
    if isinstance(value, Message):
        return {"$": "msg", "v": to_xml(value)}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"$": "dict", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    cls = type(value)
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(value) and RECORDS.get(cls.__name__) is cls:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {"$": cls.__name__, "v": {name: encode(getattr(value, name)) for name in names}}
    raise TypeError(f"cannot store a {type(value).__name__}: not a record type of an engine's ledger tables")


def decode(data: Any) -> Any:
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    tag, v = data["$"], data["v"]
    if tag == "FlexOffer":
        return offer_from_dict(v)
    if tag == "Schedule":
        return schedule_from_dict(v)
    if tag == "OfferMessage":
        return OfferMessage(v["op"], v["offer_id"], decode(v["offer"]), v["version"])
    if tag == "Ack":
        return Ack(*v)  # validated as on the wire
    if tag == "msg":
        return parse_message(v)
    if tag == "tuple":
        return tuple(decode(x) for x in v)
    if tag == "dict":
        return {decode(k): decode(x) for k, x in v}
    cls = RECORDS.get(tag)
    if cls is None:
        raise ValueError(f"unknown record type {tag!r} in the store")
    return cls(**{k: decode(x) for k, x in v.items()})


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False)


class _FloatPool(dict):
    """Number texts already read, each with its one float object: a store's offers repeat a few
    values (a slice's bounds are its baseline's energy, a polytope's rows are half zeros) and
    the report holds every offer of a run. Bounded; cleared when full.

    The JSON parser calls the pool's ``__getitem__`` for every number, a dict lookup in C: only
    a text not seen yet costs a Python call (``__missing__``). A Python function there was
    4.7 million calls and a quarter of the decoding when the report read a 5,000-device run."""

    def __missing__(self, text: str) -> float:
        if len(self) >= _FLOATS_MAX:
            self.clear()
        value = self[text] = float(text)
        return value


_FLOATS_MAX = 1 << 16
_FLOATS = _FloatPool()


def loads(text: str) -> Any:
    return decode(json.loads(text, parse_float=_FLOATS.__getitem__))
