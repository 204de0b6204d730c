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
    """A prosumer's offer as the aggregator holds it.

    Offer ids are scoped by the owner's JID: the ledger key and ``offer.id`` are the id the
    owner sent, unless another prosumer's offer already holds it; then they are
    ``"<id>/<owner JID>"`` (wire ids cannot hold "/", so no sender can take that id), and
    ``wire_id`` keeps the id the owner knows, used in everything sent back to it."""

    offer: FlexOffer
    owner: str
    received: int
    aggregate_id: Optional[str] = None
    schedule: Optional[Schedule] = None
    schedule_confirmed: bool = False
    measurement: Optional[Measurement] = None
    bill_id: Optional[str] = None
    note: Optional[str] = None
    wire_id: Optional[str] = None

    @property
    def owner_id(self) -> str:
        """The id the owner gave the offer (what messages to it carry)."""
        return self.wire_id if self.wire_id is not None else self.offer.id


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """An aggregate the aggregator built: its offer, members (in order) and where it went."""

    aggregate_id: str
    offer: FlexOffer
    members: tuple[str, ...]
    status: str  # "bidding" | "offered" | "scheduled" | "fallback" | "ordered" (planned, traded as orders)
    session_id: Optional[str] = None
    schedule: Optional[Schedule] = None
    revenue_cents: int = 0
