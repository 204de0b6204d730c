"""JSON encoding of ledger records, exact for every value the engines keep.

Offers and schedules use their JSON wire form and protocol messages their XML wire form, both of
which round-trip exactly; record dataclasses are encoded field by field under their class name.
A record class must be registered so that decoding never instantiates arbitrary types.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from vmenergy.flexoffer import FlexOffer, Schedule

__all__ = ["encode", "decode", "dumps", "loads", "register_record"]

_RECORDS: dict[str, type] = {}


def register_record(cls: type) -> type:
    """Allow ``cls`` (a dataclass) in the store; usable as a decorator."""
    _RECORDS[cls.__name__] = cls
    return cls


def _ensure_registered() -> None:
    """The engines' record types (core code cannot import the store to register itself)."""
    if _RECORDS:
        return
    from vmenergy.protocol import engine, prosumer

    for cls in (engine.OutboxEntry, prosumer.ProsumerOffer):
        register_record(cls)
    import importlib

    for name in ("aggregator", "market"):
        try:
            module = importlib.import_module(f"vmenergy.protocol.{name}")
        except ImportError:  # pragma: no cover - an engine missing from a partial install
            continue
        for cls in getattr(module, "RECORDS", ()):
            register_record(cls)


def _message_types() -> tuple[type, ...]:
    from vmenergy.protocol import messages as m

    return (m.OfferMessage, m.Ack, m.AssignmentMessage, m.Measurement, m.BillMessage, m.Registration,
            m.MarketSessionNotice, m.BidMessage, m.Clearing, m.ReservationMessage, m.ActivationMessage)


def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, FlexOffer):
        from vmenergy.wire.json import offer_to_dict

        return {"$": "FlexOffer", "v": offer_to_dict(value)}
    if isinstance(value, Schedule):
        return {"$": "Schedule", "v": {**value.to_dict(), "resolution": value.resolution}}
    if isinstance(value, _message_types()):
        from vmenergy.wire.messages import to_xml

        return {"$": "msg", "v": to_xml(value)}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"$": "dict", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    _ensure_registered()
    if dataclasses.is_dataclass(value) and type(value).__name__ in _RECORDS:
        return {"$": type(value).__name__,
                "v": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot store a {type(value).__name__}; register it with register_record")


def decode(data: Any) -> Any:
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    tag, v = data["$"], data["v"]
    if tag == "FlexOffer":
        from vmenergy.wire.json import offer_from_dict

        return offer_from_dict(v)
    if tag == "Schedule":
        from vmenergy.wire.json import schedule_from_dict

        return schedule_from_dict(v)
    if tag == "msg":
        from vmenergy.wire.messages import parse_message

        return parse_message(v)
    if tag == "tuple":
        return tuple(decode(x) for x in v)
    if tag == "dict":
        return {decode(k): decode(x) for k, x in v}
    _ensure_registered()
    cls = _RECORDS.get(tag)
    if cls is None:
        raise ValueError(f"unknown record type {tag!r} in the store")
    return cls(**{k: decode(x) for k, x in v.items()})


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    return decode(json.loads(text))
