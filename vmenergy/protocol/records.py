"""The records an aggregator keeps in its ledger: its prosumers' offers and the aggregates it built.

They live apart from the engine so that the engine and the billing that settles them
(:mod:`.billing`) both import them from here, instead of from each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vmenergy.flexoffer import FlexOffer, Schedule

from .messages import Measurement

__all__ = ["AggOffer", "AggregateRecord"]


@dataclass(frozen=True, slots=True)
class AggOffer:
    """A prosumer's offer as the aggregator holds it."""

    offer: FlexOffer
    owner: str
    received: int
    aggregate_id: Optional[str] = None
    schedule: Optional[Schedule] = None
    schedule_confirmed: bool = False
    measurement: Optional[Measurement] = None
    bill_id: Optional[str] = None
    note: Optional[str] = None


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """An aggregate the aggregator built: its offer, members (in order) and where it went."""

    aggregate_id: str
    offer: FlexOffer
    members: tuple[str, ...]
    status: str  # "bidding" | "offered" | "scheduled" | "fallback"
    session_id: Optional[str] = None
    schedule: Optional[Schedule] = None
    revenue_cents: int = 0
