"""JSON codec of flex-offers and schedules (the contract in ``docs/protocol.md``).

The JSON form is the model's canonical form, so the model owns it: each class reads and writes
its own fields (``FlexOffer.from_json``/``to_json``/``from_dict``/``to_dict``, the same on
``Schedule``) with the strict rules of :mod:`vmenergy.flexoffer.jsontext`. This module names
those entry points for the wire, next to the XML codec, and reads documents that hold several
items (:func:`parse_any`). The dependency runs one way: the wire imports
the model, the model never imports the wire.
"""

from __future__ import annotations

from typing import Union

from vmenergy.flexoffer.errors import FlexOfferError
from vmenergy.flexoffer.jsontext import MAX_DOCUMENT_BYTES, guard, loads
from vmenergy.flexoffer.model import FlexOffer
from vmenergy.flexoffer.schedule import Schedule

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Item",
    "loads",
    "parse_offer",
    "parse_schedule",
    "parse_any",
    "offer_from_dict",
    "offer_to_dict",
    "offer_to_json",
    "schedule_from_dict",
    "schedule_to_dict",
    "schedule_to_json",
]

#: What a document holds: offers and schedules.
Item = Union[FlexOffer, Schedule]

parse_offer = FlexOffer.from_json
offer_from_dict = FlexOffer.from_dict
offer_to_dict = FlexOffer.to_dict
offer_to_json = FlexOffer.to_json
parse_schedule = Schedule.from_json
schedule_from_dict = Schedule.from_dict
schedule_to_dict = Schedule.to_dict
schedule_to_json = Schedule.to_json


def parse_any(text: str | bytes) -> list[Item]:
    """A JSON document holding an offer, a schedule, or a list of them (schedules have ``offer_id``)."""

    def run() -> list[Item]:
        data = loads(text)
        items = data if isinstance(data, list) else [data]
        out: list[Item] = []
        for i, item in enumerate(items):
            try:
                if isinstance(item, dict) and "offer_id" in item:
                    out.append(Schedule.from_dict(item))
                else:
                    out.append(FlexOffer.from_dict(item))
            except FlexOfferError as exc:
                raise exc.within(f"[{i}]") if isinstance(data, list) else exc
        return out

    return guard(run)

