"""Documents of offers and schedules in either wire format, told apart by their first character.

Pure: it reads the text it is handed. The shell reads files (:mod:`vmenergy.runtime.documents`)
and hands their bytes here; ``vmenergy validate``/``show`` and scenario offer templates read
documents this way.
"""

from __future__ import annotations

from . import json as wjson
from . import xml as wxml
from .json import Item

__all__ = ["Item", "parse_document"]


def parse_document(text: str | bytes) -> list[Item]:
    """The offers and schedules of a JSON (an object or an array of them) or XML (one
    ``<flexoffer>`` or ``<assignment>``) document; raises FlexOfferError naming the field."""
    head = text.lstrip()[:1]
    if head in ("<", b"<"):
        return [wxml.parse(text)]
    return wjson.parse_any(text)
