"""Documents of offers and schedules in either wire format, told apart by their first character.

Pure: it reads the text it is handed. The shell reads files (:mod:`vmenergy.runtime.documents`)
and hands their bytes here; ``vmenergy validate``/``show`` and scenario offer templates read
documents this way. JSON Lines (a run folder's ``offers.jsonl``) is one document per line.
"""

from __future__ import annotations

from typing import Sequence

from vmenergy.flexoffer.errors import FlexOfferError

from . import json as wjson
from . import xml as wxml
from .json import Item

__all__ = ["Item", "parse_document", "parse_json_lines"]


def parse_document(text: str | bytes) -> list[Item]:
    """The offers and schedules of a JSON (an object or an array of them) or XML (one
    ``<flexoffer>`` or ``<assignment>``) document; raises FlexOfferError naming the field."""
    head = text.lstrip()[:1]
    if head in ("<", b"<"):
        return [wxml.parse(text)]
    return wjson.parse_any(text)


def parse_json_lines(text: str | bytes) -> list[Item]:
    """The offers and schedules of a JSON Lines document (one offer or schedule per line, as a run
    folder's ``offers.jsonl``); each line is a document of its own (and is size-checked as one),
    blank lines are skipped, and an error names its line (``line 2: energy``)."""
    lines: Sequence[str | bytes] = text.split(b"\n") if isinstance(text, bytes) else text.split("\n")
    items: list[Item] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                items += wjson.parse_any(line)
            except FlexOfferError as exc:
                raise exc.within(f"line {n}") from None
    return items
