"""Reading offer and schedule files: the I/O half of :func:`vmenergy.wire.documents.parse_document`."""

from __future__ import annotations

from pathlib import Path

from vmenergy.flexoffer import FlexOfferError
from vmenergy.wire.documents import Item, parse_document, parse_json_lines

__all__ = ["read_document"]


def read_document(path: Path | str) -> list[Item]:
    """Offers/schedules in a JSON (object or array), JSON Lines (``.jsonl``: one offer or schedule
    per line, as a run folder's offers.jsonl) or XML file; raises FlexOfferError (an unreadable
    file has the path ``(file)``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FlexOfferError("(file)", f"cannot read: {exc.strerror or exc}") from None
    if Path(path).suffix == ".jsonl":
        return parse_json_lines(data)
    return parse_document(data)
