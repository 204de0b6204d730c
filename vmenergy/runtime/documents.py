"""Reading offer and schedule files: the I/O half of :func:`vmenergy.wire.documents.parse_document`."""

from __future__ import annotations

from pathlib import Path

from vmenergy.flexoffer import FlexOfferError
from vmenergy.wire.documents import Item, parse_document

__all__ = ["read_document"]


def read_document(path: Path | str) -> list[Item]:
    """Offers/schedules in a JSON (object or array) or XML file; raises FlexOfferError (an
    unreadable file has the path ``(file)``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FlexOfferError("(file)", f"cannot read: {exc.strerror or exc}") from None
    return parse_document(data)
