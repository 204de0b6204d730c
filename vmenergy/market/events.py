"""What a session tells the world: plain records the market agent turns into messages.

The core never sends anything; each lifecycle call returns the event the agent should send
(``<market-session state="open">`` when :class:`SessionOpened` comes back, an ``<ack>`` for a
:class:`BidAck`, ...). Times are epoch seconds, delivery in intervals of ``resolution`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

__all__ = ["SessionOpened", "SessionClosed", "SessionCleared", "BidAck", "ParticipantRegistered",
           "ParticipantDeregistered"]


@dataclass(frozen=True)
class SessionOpened:
    session_id: str
    mechanism: str
    pricing: str
    delivery_start: int
    delivery_end: int
    resolution: int
    opened_at: int
    close_at: Optional[int]
    participants: tuple[str, ...]


@dataclass(frozen=True)
class SessionClosed:
    session_id: str
    closed_at: int
    n_bids: int


@dataclass(frozen=True)
class SessionCleared:
    session_id: str
    cleared_at: int
    n_accepted: int
    n_rejected: int


@dataclass(frozen=True)
class BidAck:
    """Answer to a placement or withdrawal: ``accepted`` or not, with the field ``path`` and a
    ``reason`` when not. A repeated identical bid is acknowledged again (``duplicate``) and
    changes nothing."""

    bid_id: str
    participant: str
    accepted: bool
    reason: Optional[str] = None
    path: Optional[str] = None
    duplicate: bool = False


@dataclass(frozen=True)
class ParticipantRegistered:
    session_id: str
    participant: str
    zone: Optional[str]


@dataclass(frozen=True)
class ParticipantDeregistered:
    session_id: str
    participant: str
    withdrawn: tuple[str, ...] = field(default_factory=tuple)
