"""What every role engine shares: reliable delivery, idempotent receipt, presence, a ledger.

Engines are sans-IO (in the manner of h11): the shell feeds them events (a message from a peer, a
clock tick, a presence change) and carries out the effects they return (send a message, drive a
device). All state lives in a :class:`Ledger` of plain records so the shell can persist exactly
what changed after every event and rebuild the engine after a crash; each engine declares the
typed tables it keeps (``tables``), from which the store derives the record types it may decode.

Messages reach the role's code through handlers: a method marked ``@handles(SomeMessage)``
receives every new message of that type (an acknowledged one returns ``(effects, reason)``, a
notice returns effects). A new message type is therefore one class in
:mod:`vmenergy.protocol.messages` plus one handler in the engine that receives it.

Reliability: a message that needs an answer stays in the outbox until the peer acknowledges it
and is resent with the same id while unanswered, after at least four times the peer's smoothed
answer time and with exponential backoff; a message for a peer that is
offline is queued, not sent, and goes out when the peer comes back. Receivers remember the answer
they gave to every message key and repeat it for a duplicate without acting again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

from vmenergy.flexoffer import FlexOffer, Schedule

from .ledger import Ledger, Table
from .messages import Ack, Message, needs_ack
from .steering import OVERRIDES, STEERING, SteeringError, SteeringRecord, steers

__all__ = ["Ledger", "Table", "Send", "Execute", "RunDefault", "Note", "Effect", "OutboxEntry", "TimedStep", "Engine", "bare", "handles",
           "OUTBOX", "ANSWERS", "PRESENCE", "META"]


def bare(jid: str) -> str:
    """The bare JID (``user@domain``) of a full JID; what identities are compared on."""
    return str(jid).split("/", 1)[0].lower()


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
class RunDefault:
    """The offer will not be scheduled (rejected, or never assigned in time): let the device(s)
    behind it run their normal programme (prosumer only). ``reason`` says why."""

    offer: FlexOffer
    reason: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth a log line (structured: event name plus fields)."""

    event: str
    fields: dict = field(default_factory=dict)


Effect = Union[Send, Execute, RunDefault, Note]


@dataclass(frozen=True)
class TimedStep:
    """One piece of an engine's timed work: ``run(now)`` does what is due at ``now`` (nothing if
    nothing is), ``due(now)`` says when it next has work (None: only a message can give it)."""

    name: str
    run: Callable[[int], list[Effect]]
    due: Callable[[int], Optional[int]]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    to: str
    msg: Message
    first_sent: int
    last_sent: int
    attempts: int


def outbox_key(kind: str, ref: str, version: Optional[int]) -> str:
    return f"{kind}|{ref}|{'' if version is None else version}"


#: Messages sent and not yet acknowledged, by :func:`outbox_key`.
OUTBOX: Table[OutboxEntry] = Table("outbox", OutboxEntry)
#: The answer given to every message key received: (sender, ack, when), repeated for a duplicate.
ANSWERS: Table[tuple] = Table("answers", tuple)
#: What presence said of each peer (bare JID): available or not.
PRESENCE: Table[bool] = Table("presence", bool)
#: Counters and flags of the role (sequence numbers, next cycle time, ...).
META: Table[int] = Table("meta", int)

F = TypeVar("F", bound=Callable[..., Any])


def handles(*message_types: type[Message]) -> Callable[[F], F]:
    """Mark an engine method as the handler of ``message_types``.

    The method is called as ``handler(sender, msg, now)``; for an acknowledged message type it
    returns ``(effects, None)`` to accept or ``(effects, reason)`` to reject, for a notice it
    returns effects."""
    for t in message_types:
        if not (isinstance(t, type) and issubclass(t, Message)):
            raise TypeError(f"@handles takes message types, not {t!r}")

    def mark(fn: F) -> F:
        fn._vme_handles = message_types  # type: ignore[attr-defined]
        return fn

    return mark


class Engine:
    """Base of the role engines (prosumer, aggregator, market). Times are epoch seconds."""

    role = "node"
    #: The ledger tables this engine keeps (a subclass adds its own to these).
    tables: ClassVar[tuple[Table, ...]] = (OUTBOX, ANSWERS, PRESENCE, META, STEERING, OVERRIDES)
    #: What ``pause`` holds, in the operator's words (the role's timed steps check :attr:`paused`).
    pause_holds: ClassVar[str] = "its timed work"
    _handlers: ClassVar[dict[type, str]] = {}
    _steering: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        handlers = dict(cls._handlers)  # inherited ones first, overridden by the subclass's own
        steering = dict(cls._steering)
        for name, member in vars(cls).items():
            for t in getattr(member, "_vme_handles", ()):
                handlers[t] = name
            action = getattr(member, "_vme_steers", None)
            if action is not None:
                steering[action] = name
        cls._handlers = handlers
        cls._steering = steering

    def handler(self, message_type: type) -> Optional[Callable[..., Any]]:
        """The bound handler of ``message_type`` (or of its nearest registered base), or None."""
        for t in message_type.__mro__:
            name = self._handlers.get(t)
            if name is not None:
                return getattr(self, name)
        return None

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
        # answers by the time they were given, oldest first, so forgetting old ones looks at
        # those only, not at every answer kept (one per message received in a week)
        self._answer_times: list[tuple[int, str]] = sorted(
            (when, key) for key, (_, _, when) in self.ledger[ANSWERS].items())

    # -- presence --------------------------------------------------------------------------
    def is_available(self, peer: str) -> bool:
        """Unknown peers count as available: we learn otherwise from presence."""
        return self.ledger[PRESENCE].get(bare(peer), True)

    def presence(self, peer: str, available: bool, now: int) -> list[Effect]:
        peer = bare(peer)
        was = self.is_available(peer)
        if self.ledger[PRESENCE].get(peer) is bool(available):
            return []  # a repeated presence (status text changed): nothing to do, nothing to store
        self.ledger[PRESENCE].put(peer, bool(available))
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
        if kind is None:
            raise TypeError(f"{type(msg).__name__} is not acknowledged: send it with a Send effect, not send_reliable")
        ref, version = msg.ack_ref()
        to = bare(to)
        key = outbox_key(kind, ref, version)
        online = self.is_available(to)
        self.ledger[OUTBOX].put(key, OutboxEntry(to, msg, now, now if online else -1, 1 if online else 0))
        return [Send(to, msg)] if online else [Note("queued", {"to": to, "kind": kind, "ref": ref})]

    def pending(self, to: Optional[str] = None) -> list[OutboxEntry]:
        return [e for e in self.ledger[OUTBOX].values() if to is None or e.to == bare(to)]

    def _flush_queue(self, peer: str, now: int) -> list[Effect]:
        out: list[Effect] = []
        outbox = self.ledger[OUTBOX]
        for key, entry in outbox.items():
            if entry.to == peer and entry.attempts == 0:
                outbox.put(key, replace(entry, last_sent=now, attempts=1))
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
        # the answer memory is per sender: another peer sending the same key (the same offer id)
        # must neither be taken for a repeat nor overwrite what this sender was told
        key = repr((sender, *msg.key()))
        earlier = self.ledger[ANSWERS].get(key)
        if earlier is not None and earlier[0] == sender:
            return [Send(sender, earlier[1]), Note("duplicate", {"from": sender, "key": key})]
        ref, version = msg.ack_ref()
        refusal = self.authorize(sender, msg, now)
        if refusal is not None:
            # unauthorised senders change nothing, not even the answer memory
            return [Send(sender, Ack(kind, ref, "rejected", refusal, version)), Note("refused", {"from": sender, "why": refusal})]
        effects, reason = self.on_message(sender, msg, now)
        answer = Ack(kind, ref, "accepted" if reason is None else "rejected", reason, version)
        self.ledger[ANSWERS].put(key, (sender, answer, now))
        heapq.heappush(self._answer_times, (now, key))
        return [Send(sender, answer), *effects]

    def forget_answer(self, sender: str, msg: Message) -> None:
        """Forget what ``sender`` was told for ``msg``, so the same message from it is handled
        again instead of being answered as a repeat: for requests that undo each other
        (register, deregister, register again), where the last one, not the first, must count."""
        self.ledger[ANSWERS].delete(repr((bare(sender), *msg.key())))

    def _on_ack(self, sender: str, ack: Ack, now: int) -> list[Effect]:
        key = outbox_key(ack.kind, ack.ref, ack.version)
        entry = self.ledger[OUTBOX].get(key)
        if entry is None or entry.to != sender:
            return [Note("stray-ack", {"from": sender, "kind": ack.kind, "ref": ack.ref})]
        self.ledger[OUTBOX].delete(key)
        if entry.attempts == 1:  # an unambiguous round trip: learn how long answers take
            sample = max(0, now - entry.last_sent)
            old = self._rtt.get(sender)
            self._rtt[sender] = sample if old is None else 0.875 * old + 0.125 * sample
        self._last_ack_at[sender] = now
        self._acked_sent[sender] = max(self._acked_sent.get(sender, entry.last_sent), entry.last_sent)
        return self.on_ack(sender, ack, entry.msg, now)

    # -- time -------------------------------------------------------------------------------
    def timed_steps(self) -> list["TimedStep"]:
        """The engine's timed work as named steps, in the order a tick runs them: resending what
        is unanswered, then the role's own (:meth:`role_steps`). A SPADE agent runs each as a
        behaviour of its own that waits until the step is due; a virtual clock's driver ticks."""
        return [TimedStep("resends", self._resend_step, self._resends_due), *self.role_steps()]

    def role_steps(self) -> list["TimedStep"]:
        """The role's timed steps; by default one, :meth:`on_tick` when :meth:`on_next_due`."""
        return [TimedStep("timed-work", self.on_tick, self.on_next_due)]

    def run_step(self, name: str, now: int) -> list[Effect]:
        """The timed step ``name``, after the steps that come before it in a tick (each does only
        what is due): work that must come first (deadlines before a round) keeps its order when
        the steps run apart. An unknown name raises."""
        steps = self.timed_steps()
        names = [s.name for s in steps]
        if name not in names:
            raise KeyError(f"{self.role} has no timed step {name!r} (it has {', '.join(names)})")
        out: list[Effect] = []
        for step in steps[:names.index(name) + 1]:
            out += step.run(now)
        return out

    def tick(self, now: int) -> list[Effect]:
        """Every timed step that has work at ``now``."""
        out: list[Effect] = []
        for step in self.timed_steps():
            out += step.run(now)
        return out

    def next_due(self, now: int) -> Optional[int]:
        """The earliest time at which :meth:`tick` has work, or None if only a message can give
        it work. A coordinated (virtual) clock jumps straight to it instead of ticking through
        the idle time in between; a value <= ``now`` means "tick again now"."""
        times = [t for t in (step.due(now) for step in self.timed_steps()) if t is not None]
        return min(times) if times else None

    def _resend_step(self, now: int) -> list[Effect]:
        """Resend what is unanswered, and now and then forget old answers."""
        out: list[Effect] = []
        outbox = self.ledger[OUTBOX]
        for key, entry in outbox.items():
            due = self._resend_at(entry)
            if due is not None and now >= due:
                outbox.put(key, replace(entry, last_sent=now, attempts=entry.attempts + 1))
                out.append(Send(entry.to, entry.msg))
                out.append(Note("resend", {"to": entry.to, "key": key, "attempt": entry.attempts + 1}))
        if now >= self._next_prune:  # forgetting old answers is not urgent: not on every tick
            self._next_prune = now + max(1, self.answer_ttl // 24)
            answers, times = self.ledger[ANSWERS], self._answer_times
            while times and now - times[0][0] > self.answer_ttl:
                when, key = heapq.heappop(times)
                kept = answers.get(key)
                if kept is not None and kept[2] == when:  # not answered again since
                    answers.delete(key)
        return out

    def _resends_due(self, now: int) -> Optional[int]:
        times = [t for t in (self._resend_at(e) for e in self.ledger[OUTBOX].values()) if t is not None]
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

    # -- steering (an operator's actions; see .steering) ---------------------------------------
    @classmethod
    def steering_actions(cls) -> tuple[str, ...]:
        """The steering actions this engine takes, by name."""
        return tuple(sorted(cls._steering))

    def steer(self, operator: str, action: str, params: Optional[dict] = None, *,
              now: int) -> tuple[list[Effect], str]:
        """Carry out ``action`` for ``operator``, whom the shell has checked may steer (a
        controller): its effects and the one-line outcome, recorded in :data:`STEERING`.
        Raises :class:`SteeringError` (nothing changed, nothing recorded) if it does not apply."""
        name = self._steering.get(action)
        if name is None:
            article = "an" if self.role[:1] in "aeiou" else "a"
            raise SteeringError("action", f"{article} {self.role} cannot {action} "
                                          f"(it can {', '.join(self.steering_actions())})")
        params = dict(params or {})
        effects, outcome = getattr(self, name)(now=now, **params)
        meta = self.ledger[META]
        seq = meta.get("steer_seq", 0) + 1
        meta.put("steer_seq", seq)
        record = SteeringRecord(seq, now, bare(operator), action, params, outcome)
        self.ledger[STEERING].put(f"{seq:06d}", record)
        return [*effects, Note("steered", {"by": record.operator, "action": action, "outcome": outcome})], outcome

    def last_steering(self) -> Optional[SteeringRecord]:
        """The latest steering action carried out, or None."""
        table = self.ledger[STEERING]
        keys = table.keys()
        return table.get(max(keys)) if keys else None

    @property
    def paused(self) -> bool:
        """Whether an operator paused this engine (see :attr:`pause_holds`)."""
        return bool(self.ledger[META].get("paused", 0))

    @steers("pause")
    def _pause(self, now: int) -> tuple[list[Effect], str]:
        if self.paused:
            raise SteeringError("action", "already paused (resume restarts it)")
        self.ledger[META].put("paused", 1)
        return [], f"paused: {self.pause_holds} stopped until resume"

    @steers("resume")
    def _resume(self, now: int) -> tuple[list[Effect], str]:
        if not self.paused:
            raise SteeringError("action", "not paused")
        self.ledger[META].put("paused", 0)
        return [], f"resumed: {self.pause_holds} restarted"

    # -- role hooks -------------------------------------------------------------------------
    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        """None if ``sender`` may send ``msg``; otherwise the reason for refusing it."""
        return None

    def on_message(self, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        """Act on a new message: its handler's effects and None (accepted) or a rejection reason."""
        handler = self.handler(type(msg))
        if handler is None:
            article = "an" if self.role[:1] in "aeiou" else "a"
            return [], f"{article} {self.role} does not take {type(msg).__name__} messages"
        return handler(sender, msg, now)

    def on_notice(self, sender: str, msg: Message, now: int) -> list[Effect]:
        """Act on a notice (a message that is not answered): its handler's effects."""
        handler = self.handler(type(msg))
        if handler is None:
            return [Note("ignored", {"from": sender, "type": type(msg).__name__})]
        return handler(sender, msg, now)

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        return []

    def on_tick(self, now: int) -> list[Effect]:
        return []

    def on_next_due(self, now: int) -> Optional[int]:
        """The role's own next timed work (see :meth:`next_due`)."""
        return None

    def status(self) -> str:
        return self.role


# the base's own steering actions (subclasses collect theirs in __init_subclass__)
Engine._steering = {m._vme_steers: n for n, m in vars(Engine).items() if hasattr(m, "_vme_steers")}
