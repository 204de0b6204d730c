"""What every role engine shares: reliable delivery, idempotent receipt, presence, a ledger.

Engines are sans-IO (in the manner of h11): the shell feeds them events (a message from a peer, a
clock tick, a presence change) and carries out the effects they return (send a message, drive a
device). All state lives in a :class:`Ledger` of plain records so the shell can persist exactly
what changed after every event and rebuild the engine after a crash.

Reliability: a message that needs an answer stays in the outbox until the peer acknowledges it
and is resent with the same id while unanswered, after at least four times the peer's smoothed
answer time and with exponential backoff; a message for a peer that is
offline is queued, not sent, and goes out when the peer comes back. Receivers remember the answer
they gave to every message key and repeat it for a duplicate without acting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Optional, Union

from vmenergy.flexoffer import FlexOffer, Schedule

from .messages import Ack, Message, ack_ref, needs_ack

__all__ = ["Ledger", "Send", "Execute", "Note", "Effect", "OutboxEntry", "Engine", "bare"]


def bare(jid: str) -> str:
    """The bare JID (``user@domain``) of a full JID; what identities are compared on."""
    return str(jid).split("/", 1)[0].lower()


class Ledger:
    """Tables of records (table -> key -> value) and the keys changed since the last flush."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {})

    def get(self, table: str, key: str, default: Any = None) -> Any:
        return self.tables.get(table, {}).get(key, default)

    def put(self, table: str, key: str, value: Any) -> None:
        self.table(table)[key] = value
        self._dirty.add((table, key))

    def delete(self, table: str, key: str) -> None:
        if self.tables.get(table, {}).pop(key, None) is not None:
            self._dirty.add((table, key))

    def values(self, table: str) -> Iterator[Any]:
        return iter(list(self.tables.get(table, {}).values()))

    def load(self, table: str, key: str, value: Any) -> None:
        """Put without marking dirty (used when restoring from the store)."""
        self.table(table)[key] = value

    def take_changes(self) -> list[tuple[str, str, Any]]:
        """(table, key, value or None if deleted) for everything changed since the last call."""
        out = [(t, k, self.tables.get(t, {}).get(k)) for t, k in sorted(self._dirty)]
        self._dirty.clear()
        return out


@dataclass(frozen=True, slots=True)
class Send:
    to: str
    msg: Message


@dataclass(frozen=True, slots=True)
class Execute:
    """Drive the device(s) behind ``offer`` to follow ``schedule`` (prosumer only)."""

    offer: FlexOffer
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth a log line (structured: event name plus fields)."""

    event: str
    fields: dict = field(default_factory=dict)


Effect = Union[Send, Execute, Note]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    to: str
    msg: Message
    first_sent: int
    last_sent: int
    attempts: int


def outbox_key(kind: str, ref: str, version: Optional[int]) -> str:
    return f"{kind}|{ref}|{'' if version is None else version}"


class Engine:
    """Base of the role engines (prosumer, aggregator, market). Times are epoch seconds."""

    role = "node"

    def __init__(
        self,
        jid: str,
        ledger: Optional[Ledger] = None,
        *,
        resend_after: int = 30,
        max_backoff: int = 600,
        answer_ttl: int = 7 * 86400,
    ) -> None:
        self.jid = bare(jid)
        self.ledger = ledger if ledger is not None else Ledger()
        self.resend_after = resend_after
        self.max_backoff = max_backoff
        self.answer_ttl = answer_ttl
        # smoothed answer time per peer (clock seconds), so a busy peer is not flooded with
        # resends of messages it has simply not got to yet; not persisted (relearnt quickly)
        self._rtt: dict[str, float] = {}
        self._last_ack_at: dict[str, int] = {}  # when each peer last answered anything
        self._acked_sent: dict[str, int] = {}  # latest send time among each peer's answered messages
        self._next_prune = 0

    # -- presence --------------------------------------------------------------------------
    def is_available(self, peer: str) -> bool:
        """Unknown peers count as available: we learn otherwise from presence."""
        return self.ledger.get("presence", bare(peer), True)

    def presence(self, peer: str, available: bool, now: int) -> list[Effect]:
        peer = bare(peer)
        was = self.is_available(peer)
        if self.ledger.get("presence", peer) is bool(available):
            return []  # a repeated presence (status text changed): nothing to do, nothing to store
        self.ledger.put("presence", peer, bool(available))
        effects: list[Effect] = [Note("presence", {"peer": peer, "available": available})]
        if available and not was:
            effects += self._flush_queue(peer, now)
        effects += self.on_presence(peer, available, was, now)
        return effects

    def on_presence(self, peer: str, available: bool, was: bool, now: int) -> list[Effect]:
        return []

    # -- sending ----------------------------------------------------------------------------
    def send_reliable(self, to: str, msg: Message, now: int) -> list[Effect]:
        """Send ``msg`` and keep it until acknowledged; queue it if ``to`` is offline."""
        kind = needs_ack(msg)
        assert kind is not None, f"{type(msg).__name__} is not acknowledged; use Send directly"
        ref, version = ack_ref(msg)
        to = bare(to)
        key = outbox_key(kind, ref, version)
        online = self.is_available(to)
        self.ledger.put("outbox", key, OutboxEntry(to, msg, now, now if online else -1, 1 if online else 0))
        return [Send(to, msg)] if online else [Note("queued", {"to": to, "kind": kind, "ref": ref})]

    def pending(self, to: Optional[str] = None) -> list[OutboxEntry]:
        return [e for e in self.ledger.values("outbox") if to is None or e.to == bare(to)]

    def _flush_queue(self, peer: str, now: int) -> list[Effect]:
        out: list[Effect] = []
        for key, entry in list(self.ledger.table("outbox").items()):
            if entry.to == peer and entry.attempts == 0:
                self.ledger.put("outbox", key, replace(entry, last_sent=now, attempts=1))
                out.append(Send(peer, entry.msg))
        return out

    # -- receiving --------------------------------------------------------------------------
    def receive(self, sender: str, msg: Message, now: int) -> list[Effect]:
        """Handle one message from ``sender`` (a JID)."""
        sender = bare(sender)
        if isinstance(msg, Ack):
            return self._on_ack(sender, msg, now)
        kind = needs_ack(msg)
        if kind is None:
            return self.on_notice(sender, msg, now)
        key = repr(msg.key())
        earlier = self.ledger.get("answers", key)
        if earlier is not None and earlier[0] == sender:
            return [Send(sender, earlier[1]), Note("duplicate", {"from": sender, "key": key})]
        ref, version = ack_ref(msg)
        refusal = self.authorize(sender, msg, now)
        if refusal is not None:
            # unauthorised senders change nothing, not even the answer memory
            return [Send(sender, Ack(kind, ref, "rejected", refusal, version)), Note("refused", {"from": sender, "why": refusal})]
        effects, reason = self.on_message(sender, msg, now)
        answer = Ack(kind, ref, "accepted" if reason is None else "rejected", reason, version)
        self.ledger.put("answers", key, (sender, answer, now))
        return [Send(sender, answer), *effects]

    def _on_ack(self, sender: str, ack: Ack, now: int) -> list[Effect]:
        key = outbox_key(ack.kind, ack.ref, ack.version)
        entry = self.ledger.get("outbox", key)
        if entry is None or entry.to != sender:
            return [Note("stray-ack", {"from": sender, "kind": ack.kind, "ref": ack.ref})]
        self.ledger.delete("outbox", key)
        if entry.attempts == 1:  # an unambiguous round trip: learn how long answers take
            sample = max(0, now - entry.last_sent)
            old = self._rtt.get(sender)
            self._rtt[sender] = sample if old is None else 0.875 * old + 0.125 * sample
        self._last_ack_at[sender] = now
        self._acked_sent[sender] = max(self._acked_sent.get(sender, entry.last_sent), entry.last_sent)
        return self.on_ack(sender, ack, entry.msg, now)

    # -- time -------------------------------------------------------------------------------
    def tick(self, now: int) -> list[Effect]:
        """Resend what is unanswered, forget old answers, then the role's own timed work."""
        out: list[Effect] = []
        for key, entry in list(self.ledger.table("outbox").items()):
            due = self._resend_at(entry)
            if due is not None and now >= due:
                self.ledger.put("outbox", key, replace(entry, last_sent=now, attempts=entry.attempts + 1))
                out.append(Send(entry.to, entry.msg))
                out.append(Note("resend", {"to": entry.to, "key": key, "attempt": entry.attempts + 1}))
        if now >= self._next_prune:  # forgetting old answers is not urgent: not on every tick
            self._next_prune = now + max(1, self.answer_ttl // 24)
            for key, (_, _, when) in list(self.ledger.table("answers").items()):
                if now - when > self.answer_ttl:
                    self.ledger.delete("answers", key)
        return out + self.on_tick(now)

    def next_due(self, now: int) -> Optional[int]:
        """The earliest time at which :meth:`tick` has work, or None if only a message can give
        it work. A coordinated (virtual) clock jumps straight to it instead of ticking through
        the idle time in between; a value <= ``now`` means "tick again now"."""
        times = [t for t in (self._resend_at(e) for e in self.ledger.values("outbox")) if t is not None]
        role = self.on_next_due(now)
        if role is not None:
            times.append(role)
        return min(times) if times else None

    def _resend_at(self, entry: OutboxEntry) -> Optional[int]:
        """When an unanswered message should go out again (None: queued for an offline peer).

        A stream delivers in order, so a message sent *after* this one being answered means this
        one was lost: resend at once. A peer that has answered other messages since this one was
        sent is alive and working through its queue: wait (up to the maximum backoff) rather than
        add to the queue. Otherwise resend after four smoothed answer times, with backoff."""
        if entry.attempts == 0 or not self.is_available(entry.to):
            return None
        to = entry.to
        if self._acked_sent.get(to, -1) > entry.last_sent:
            return entry.last_sent
        if self._last_ack_at.get(to, -1) > entry.last_sent:
            return entry.last_sent + self.max_backoff
        wait = max(self.resend_after, 4 * self._rtt.get(to, 0)) * 2 ** (entry.attempts - 1)
        return entry.last_sent + int(-(-min(wait, self.max_backoff) // 1))

    # -- role hooks -------------------------------------------------------------------------
    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        """None if ``sender`` may send ``msg``; otherwise the reason for refusing it."""
        return None

    def on_message(self, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        """Act on a new message; return effects and None (accepted) or a rejection reason."""
        return [], f"{type(msg).__name__} is not handled by a {self.role}"

    def on_notice(self, sender: str, msg: Message, now: int) -> list[Effect]:
        return [Note("ignored", {"from": sender, "type": type(msg).__name__})]

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        return []

    def on_tick(self, now: int) -> list[Effect]:
        return []

    def on_next_due(self, now: int) -> Optional[int]:
        """The role's own next timed work (see :meth:`next_due`)."""
        return None

    def status(self) -> str:
        return self.role

