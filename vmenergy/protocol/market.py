"""The market (FMAR) engine: sessions back to back, bids, clearing, results, bills.

The market rules live in :mod:`vmenergy.market` (``MarketSession`` and its mechanisms); this
engine runs the calendar (a session opens every ``session_every`` seconds, closes at its gate
closure and clears at once), turns protocol messages into placements and results into
``clearing`` messages, and bills every participant for what it traded.

A ``liquidity`` provider can be configured: the energy supplier (or buyer) the flexible offers
trade against, as simple orders priced by hour of day. Without one, flex-offer bids can only
clear against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from vmenergy.flexoffer import FlexOfferError, Schedule
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.market import (
    FlexOfferBid,
    ManyToMany,
    MarketError,
    MarketSession,
    OneSidedPool,
    Order,
    Pricing,
    Product,
    Side,
    TwoSidedPool,
)
from vmenergy.settlement.money import cents

from .engine import META, Effect, Engine, Note, Send, Table, TimedStep, bare, handles
from .ledger import Ledger
from .steering import SteeringError, steers
from .messages import (
    Ack,
    BidMessage,
    BillMessage,
    BillLine,
    Clearing,
    MarketSessionNotice,
    Message,
    Registration,
)

__all__ = ["MarketConfig", "MarketEngine", "SessionRecord", "BidRecord", "MARKET_SESSIONS", "BIDS", "PARTICIPANTS",
           "market_summary"]

MECHANISMS = ("one-sided", "two-sided", "many-to-many")
PRICINGS = tuple(p.value for p in Pricing)
LIQUIDITY = "liquidity"


@dataclass(frozen=True)
class MarketConfig:
    """How a market runs (the ``[market]`` table of its config or scenario).

    ``liquidity``: ``{"sell": {"volume": kWh per interval, "prices": 24 hourly EUR/kWh},
    "buy": {...}}``: standing orders of the energy supplier/buyer the flexible offers trade
    against. For ``one-sided``, ``demand = {"volume": kWh per interval, "price": cut-off}`` is
    the buyer's fixed request (the buyer is the liquidity provider).
    """

    registration: Any = "open"
    mechanism: str = "many-to-many"
    pricing: str = "uniform"
    session_every: int = 3600
    gate_closure: int = 1800
    delivery_offset: int = 1800
    delivery_length: int = 86400
    resolution: int = 900
    liquidity: dict = field(default_factory=dict)
    demand: dict = field(default_factory=dict)
    time_limit: float = 20.0
    bill_after: int = 3600

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise FlexOfferError("mechanism", f"must be one of {', '.join(MECHANISMS)} (got {self.mechanism!r})")
        if self.pricing not in PRICINGS:
            raise FlexOfferError("pricing", f"must be {' or '.join(PRICINGS)} (got {self.pricing!r})")
        if not 0 < self.gate_closure <= self.session_every:
            raise FlexOfferError("gate_closure", "must be in (0, session_every]")
        if self.delivery_offset < self.gate_closure:
            raise FlexOfferError("delivery_offset", "delivery cannot start before gate closure")
        if self.delivery_length < self.resolution:
            raise FlexOfferError("delivery_length", "at least one interval")
        for side, spec in self.liquidity.items():
            if side not in ("buy", "sell"):
                raise FlexOfferError(f"liquidity.{side}", "sides are buy and sell")
            prices = spec.get("prices")
            if not isinstance(prices, list) or len(prices) != 24:
                raise FlexOfferError(f"liquidity.{side}.prices", "24 hourly prices (EUR/kWh)")
            if not isinstance(spec.get("volume"), (int, float)) or spec["volume"] <= 0:
                raise FlexOfferError(f"liquidity.{side}.volume", "kWh per interval, > 0")
        if self.mechanism == "one-sided":
            for key in ("volume", "price"):
                if not isinstance(self.demand.get(key), (int, float)):
                    raise FlexOfferError(f"demand.{key}", "required for a one-sided market (a number)")
        if self.registration != "open" and not isinstance(self.registration, (list, tuple)):
            raise FlexOfferError("registration", "\"open\" or a list of participant JIDs")

    @classmethod
    def from_dict(cls, d: dict) -> "MarketConfig":
        known = {f for f in cls.__dataclass_fields__}
        for key in d:
            if key not in known:
                raise FlexOfferError(key, f"unknown market setting (known: {', '.join(sorted(known))})")
        d = dict(d)
        if isinstance(d.get("registration"), list):
            d["registration"] = tuple(d["registration"])
        return cls(**d)

    def mechanism_object(self):
        if self.mechanism == "many-to-many":
            return ManyToMany(time_limit=self.time_limit)
        if self.mechanism == "two-sided":
            return TwoSidedPool()
        return OneSidedPool(LIQUIDITY, float(self.demand["volume"]), float(self.demand["price"]))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    notice: MarketSessionNotice
    opened: int
    participants: tuple[str, ...]
    billed: bool = False


@dataclass(frozen=True, slots=True)
class BidRecord:
    """A bid as placed: the protocol message, who sent it, when, and its outcome."""

    bid: BidMessage
    participant: str
    placed: int
    status: str = "placed"  # placed | accepted | partial | rejected
    amount_cents: int = 0  # what the participant pays (+) or receives (-) for its award
    clearing: Optional[Clearing] = None


#: The market's sessions, by session id.
MARKET_SESSIONS: Table[SessionRecord] = Table("sessions", SessionRecord)
#: Every bid placed, by bid id.
BIDS: Table[BidRecord] = Table("bids", BidRecord)
#: Registered participants (bare JID) and their role.
PARTICIPANTS: Table[str] = Table("participants", str)


class MarketEngine(Engine):
    role = "market"
    tables = Engine.tables + (MARKET_SESSIONS, BIDS, PARTICIPANTS)
    # paused, no session opens by itself; open sessions still close and clear
    pause_holds = "the session calendar"

    def __init__(self, jid: str, config: MarketConfig = MarketConfig(), **kw) -> None:
        super().__init__(jid, **kw)
        self.config = config
        self._live: dict[str, MarketSession] = {}
        # who may register, as a set; None: anyone with an account on the server
        reg = config.registration
        self._admitted = None if reg == "open" else frozenset(bare(p) for p in reg)
        self._restore()

    # -- sessions -------------------------------------------------------------------------
    def registered(self, peer: str) -> bool:
        return bare(peer) in self.ledger[PARTICIPANTS]

    def admits(self, peer: str) -> bool:
        """Whether ``peer`` may register (and so see the market's presence before it has)."""
        return self._admitted is None or bare(peer) in self._admitted

    def _restore(self) -> None:
        """Sessions still open or closed-but-not-cleared are rebuilt from their stored bids (the
        session object itself is not stored; placing the same bids again is deterministic)."""
        for rec in self.ledger[MARKET_SESSIONS].values():
            if rec.notice.state in ("open", "closed"):
                session = self._new_session(rec.notice, rec.participants, rec.opened)
                bids = sorted((b for b in self.ledger[BIDS].values() if b.bid.session_id == rec.notice.session_id),
                              key=lambda b: (b.placed, b.bid.bid_id))
                for b in bids:
                    session.place(self._market_bid(b.bid, b.participant), b.placed)
                if rec.notice.state == "closed":  # closed early by an operator: no more bids
                    session.close(max([rec.opened, *(b.placed for b in bids)]))
                self._live[rec.notice.session_id] = session

    def _new_session(self, notice: MarketSessionNotice, participants, opened: int) -> MarketSession:
        c = self.config
        s = MarketSession(notice.session_id, c.mechanism_object(), delivery_start=notice.delivery_start,
                          delivery_end=notice.delivery_end, resolution=c.resolution, pricing=c.pricing,
                          close_at=notice.gate_closure)
        for p in participants:
            s.register(p)
        if c.liquidity or c.mechanism == "one-sided":
            s.register(LIQUIDITY)
        s.open(opened)
        for order in self._liquidity_orders(notice):
            s.place(order, opened)
        return s

    def _liquidity_orders(self, notice: MarketSessionNotice) -> list[Order]:
        out = []
        res = self.config.resolution
        per_hour = max(1, 3600 // res)
        for side, spec in sorted(self.config.liquidity.items()):
            t = notice.delivery_start
            while t < notice.delivery_end:
                hour = (t * res // 3600) % 24
                end = min(notice.delivery_end, t + per_hour - (t % per_hour))
                out.append(Order(f"{notice.session_id}-{LIQUIDITY}-{side}-{t}", LIQUIDITY, side, float(spec["volume"]),
                                 float(spec["prices"][hour]), t, end))
                t = end
        return out

    def _open_next(self, now: int, *, calendar: bool = True) -> list[Effect]:
        """Open the next session now; ``calendar``: the next one opens ``session_every`` later
        (an operator's extra session leaves the calendar as it was)."""
        c = self.config
        n = self.ledger[META].get("session_seq", 0) + 1
        self.ledger[META].put("session_seq", n)
        res = c.resolution
        start = -(-(now + c.delivery_offset) // res)
        notice = MarketSessionNotice(f"s-{n}", "open", c.mechanism, now + c.gate_closure, start,
                                     start + c.delivery_length // res, res)
        participants = tuple(sorted(self.ledger[PARTICIPANTS]))
        self._live[notice.session_id] = self._new_session(notice, participants, now)
        self.ledger[MARKET_SESSIONS].put(notice.session_id, SessionRecord(notice, now, participants))
        if calendar:
            self.ledger[META].put("next_open", now + c.session_every)
        return [Note("session-open", {"session": notice.session_id, "participants": len(participants)}),
                *(Send(p, notice) for p in participants)]

    def role_steps(self) -> list[TimedStep]:
        """Clearing at each gate closure, then the next session's opening, then the bills of
        sessions whose delivery ended ``bill_after`` ago."""
        return [
            TimedStep("clearing", self._clear_due_sessions, self._clearing_due),
            TimedStep("opening", self._open_when_due,
                      lambda now: None if self.paused else self.ledger[META].get("next_open", 0)),
            TimedStep("billing", self._bill_due_sessions, self._billing_due),
        ]

    def _clear_due_sessions(self, now: int) -> list[Effect]:
        out: list[Effect] = []
        for rec in self.ledger[MARKET_SESSIONS].values():
            if rec.notice.state in ("open", "closed") and now >= rec.notice.gate_closure:
                out += self._close_and_clear(rec, now)
        return out

    def _clearing_due(self, now: int) -> Optional[int]:
        times = [r.notice.gate_closure for r in self.ledger[MARKET_SESSIONS].values()
                 if r.notice.state in ("open", "closed")]
        return min(times) if times else None

    def _open_when_due(self, now: int) -> list[Effect]:
        if self.paused or now < self.ledger[META].get("next_open", 0):
            return []
        return self._open_next(now)

    # -- an operator's actions --------------------------------------------------------------
    def _session_to(self, session: Optional[str], states: tuple[str, ...], action: str) -> SessionRecord:
        """The session an operator names, which must be in one of ``states``; without a name,
        the one in those states with the earliest gate closure."""
        sessions = self.ledger[MARKET_SESSIONS]
        if session is not None:
            rec = sessions.get(session)
            if rec is None:
                raise SteeringError("session", f"no session {session}")
            if rec.notice.state not in states:
                raise SteeringError("session", f"{session} is {rec.notice.state}: only a session that is "
                                               f"{' or '.join(states)} can be {action}")
            return rec
        candidates = [r for r in sessions.values() if r.notice.state in states]
        if not candidates:
            raise SteeringError("session", f"no session is {' or '.join(states)}")
        return min(candidates, key=lambda r: (r.notice.gate_closure, r.notice.session_id))

    @steers("open")
    def _open_now(self, now: int) -> tuple[list[Effect], str]:
        """An operator opens a session now, besides the calendar's."""
        effects = self._open_next(now, calendar=False)
        seq = self.ledger[META].get("session_seq", 0)
        notice = self.ledger[MARKET_SESSIONS].require(f"s-{seq}").notice
        return effects, f"opened {notice.session_id} (gate closure {format_utc(notice.gate_closure)})"

    @steers("close")
    def _close_now(self, now: int, session: Optional[str] = None) -> tuple[list[Effect], str]:
        """An operator closes an open session's gate now: no more bids; it clears at its gate
        closure as announced (or at once with ``clear``)."""
        rec = self._session_to(session, ("open",), "closed")
        sid = rec.notice.session_id
        live = self._live.get(sid)
        if live is None:  # pragma: no cover - an open session always has its object
            raise SteeringError("session", f"{sid} has no session object")
        live.close(now)
        closed = replace(rec.notice, state="closed")
        self.ledger[MARKET_SESSIONS].put(sid, replace(rec, notice=closed))
        bids = sum(1 for b in self.ledger[BIDS].values() if b.bid.session_id == sid)
        return ([Note("session-closed", {"session": sid, "bids": bids}), *(Send(p, closed) for p in rec.participants)],
                f"closed {sid} with {bids} bids; it clears at {format_utc(rec.notice.gate_closure)} or on clear")

    @steers("clear")
    def _clear_now(self, now: int, session: Optional[str] = None) -> tuple[list[Effect], str]:
        """An operator clears a session now (closing it first if it is open)."""
        rec = self._session_to(session, ("open", "closed"), "cleared")
        effects = self._close_and_clear(rec, now)
        sid = rec.notice.session_id
        bids = [b for b in self.ledger[BIDS].values() if b.bid.session_id == sid]
        accepted = sum(1 for b in bids if b.status in ("accepted", "partial"))
        return effects, f"cleared {sid}: {accepted} of {len(bids)} bids accepted"

    def _bill_time(self, rec: SessionRecord) -> int:
        return rec.notice.delivery_end * rec.notice.resolution + self.config.bill_after

    def _bill_due_sessions(self, now: int) -> list[Effect]:
        out: list[Effect] = []
        for rec in self.ledger[MARKET_SESSIONS].values():
            if rec.notice.state == "cleared" and not rec.billed and now >= self._bill_time(rec):
                out += self._bill(rec, now)
        return out

    def bills_owed(self) -> int:
        """Cleared sessions with awarded bids whose bills are not sent yet: money still owed, so a
        scenario run is not done until they are billed (after delivery)."""
        awarded = {b.bid.session_id for b in self.ledger[BIDS].values() if b.status in ("accepted", "partial")}
        return sum(1 for r in self.ledger[MARKET_SESSIONS].values()
                   if r.notice.state == "cleared" and not r.billed and r.notice.session_id in awarded)

    def _billing_due(self, now: int) -> Optional[int]:
        times = [self._bill_time(r) for r in self.ledger[MARKET_SESSIONS].values()
                 if r.notice.state == "cleared" and not r.billed]
        return min(times) if times else None

    def _close_and_clear(self, rec: SessionRecord, now: int) -> list[Effect]:
        sid = rec.notice.session_id
        session = self._live.pop(sid, None)
        out: list[Effect] = []
        if session is None:  # pragma: no cover - a session always has its object while open
            return [Note("session-lost", {"session": sid})]
        if rec.notice.state == "open":  # else an operator closed it earlier and told everyone then
            session.close(now)
            closed = replace(rec.notice, state="closed")
            out += [Send(p, closed) for p in rec.participants]
        result = session.clear(now)
        cleared = replace(rec.notice, state="cleared")
        self.ledger[MARKET_SESSIONS].put(sid, replace(rec, notice=cleared))
        accepted = 0
        for b in self.ledger[BIDS].values():
            if b.bid.session_id != sid:
                continue
            award = result.awards.get(b.bid.bid_id)
            if award is None:
                reason = result.rejected.get(b.bid.bid_id, "not selected")
                c = Clearing(sid, b.bid.bid_id, "rejected", 0.0, None, reason)
                self.ledger[BIDS].put(b.bid.bid_id, replace(b, status="rejected", clearing=c))
            else:
                accepted += 1
                schedule = None
                if award.schedule is not None:
                    s = award.schedule
                    schedule = Schedule(s.offer_id, s.start, s.energy, f"{sid}-{b.bid.bid_id}", 0, s.profile, s.resolution)
                expected = None
                if b.bid.volume is not None and b.bid.start is not None:
                    expected = b.bid.volume * ((b.bid.end or b.bid.start + 1) - b.bid.start)
                status = "accepted" if expected is None or award.volume >= expected - 1e-6 else "partial"
                price = award.price
                clearing_price = _mean_price(result.prices)
                c = Clearing(sid, b.bid.bid_id, status, award.volume, price, None, schedule, clearing_price,
                             cents(award.amount) / 100)
                self.ledger[BIDS].put(b.bid.bid_id, replace(b, status=status, clearing=c,
                                                              amount_cents=cents(award.amount)))
            out += self.send_reliable(b.participant, c, now)
        out += [Send(p, cleared) for p in rec.participants]
        out.append(Note("session-cleared", {"session": sid, "accepted": accepted, "rejected": len(result.rejected),
                                            "welfare": round(result.welfare, 4)}))
        return out

    def _bill(self, rec: SessionRecord, now: int) -> list[Effect]:
        sid = rec.notice.session_id
        self.ledger[MARKET_SESSIONS].put(sid, replace(rec, billed=True))
        out: list[Effect] = []
        by_participant: dict[str, list[tuple[BidRecord, Clearing]]] = {}
        for b in self.ledger[BIDS].values():
            if b.bid.session_id == sid and b.status in ("accepted", "partial") and b.clearing is not None:
                by_participant.setdefault(b.participant, []).append((b, b.clearing))
        res = rec.notice.resolution
        for participant, bids in sorted(by_participant.items()):
            lines = tuple(
                BillLine("market_energy", f"bid {b.bid.bid_id}: {c.volume:g} kWh at "
                                          f"{c.price or 0:g} EUR/kWh ({'bought' if b.amount_cents >= 0 else 'sold'})",
                         -b.amount_cents)
                for b, c in sorted(bids, key=lambda x: x[0].bid.bid_id))
            bill = BillMessage(f"bill-{sid}-{participant.split('@')[0]}", rec.notice.delivery_start * res,
                               rec.notice.delivery_end * res, lines)
            out += self.send_reliable(participant, bill, now)
        return out

    # -- messages -------------------------------------------------------------------------
    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        if isinstance(msg, Registration):
            if bare(msg.participant) != sender:
                return "a participant registers itself only"
            if not self.admits(sender):
                return f"{sender} may not register with this market"
            return None
        if isinstance(msg, BidMessage):
            return None if self.registered(sender) else f"{sender} is not a registered participant"
        return None

    @handles(Registration)
    def _registration(self, sender: str, msg: Registration, now: int) -> tuple[list[Effect], Optional[str]]:
        if msg.op == "deregister":
            self.ledger[PARTICIPANTS].delete(sender)
            return [Note("deregistered", {"participant": sender})], None
        self.ledger[PARTICIPANTS].put(sender, msg.role)
        for sid, session in self._live.items():  # join the open sessions too
            try:
                session.register(sender)
            except MarketError:
                pass
        sessions = self.ledger[MARKET_SESSIONS]
        notices = [Send(sender, rec.notice) for rec in sessions.values() if rec.notice.state == "open"]
        for rec in sessions.values():
            if rec.notice.state == "open" and sender not in rec.participants:
                sessions.put(rec.notice.session_id, replace(rec, participants=tuple(sorted((*rec.participants, sender)))))
        return [Note("registered", {"participant": sender}), *notices], None

    @handles(BidMessage)
    def _bid(self, sender: str, bid: BidMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        session = self._live.get(bid.session_id)
        if session is None:
            rec = self.ledger[MARKET_SESSIONS].get(bid.session_id)
            return [], "unknown session" if rec is None else f"the session is {rec.notice.state}: no bids after close"
        old = self.ledger[BIDS].get(bid.bid_id)
        if old is not None and (old.participant != sender or old.bid != bid):
            return [], "bid id already used"
        try:
            placed = self._market_bid(bid, sender)
        except (MarketError, FlexOfferError) as exc:
            return [], f"{exc.path}: {exc.reason}"
        ack = session.place(placed, now)
        if not ack.accepted:
            return [Note("bid-rejected", {"bid": bid.bid_id, "reason": ack.reason})], f"{ack.path}: {ack.reason}"
        self.ledger[BIDS].put(bid.bid_id, BidRecord(bid, sender, now))
        return [Note("bid", {"bid": bid.bid_id, "from": sender})], None

    def _market_bid(self, bid: BidMessage, participant: str):
        if bid.offer is not None:
            return FlexOfferBid(bid.bid_id, participant, bid.offer, bid.expiry)
        if bid.start is None:
            raise FlexOfferError("start", "a simple order needs its delivery period (start, end)")
        if bid.resolution != self.config.resolution:
            raise FlexOfferError("resolution", f"{bid.resolution} s differs from the session's {self.config.resolution} s")
        if bid.volume is None or bid.price is None:  # pragma: no cover - the message refuses an order without
            raise FlexOfferError("volume", "a simple order needs volume and price")
        try:
            kind = Product(bid.order_type)
        except ValueError:
            raise FlexOfferError("type", f"must be energy, up or down, got {bid.order_type!r}") from None
        return Order(bid.bid_id, participant, Side(bid.side), bid.volume, bid.price, bid.start, bid.end,
                     kind=kind, activation_price=bid.activation_price, expiry=bid.expiry)

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        return []

    def status(self) -> str:
        sessions = self.ledger[MARKET_SESSIONS].values()
        open_ = sum(1 for s in sessions if s.notice.state == "open")
        return (f"{len(self.ledger[PARTICIPANTS])} participants, {len(sessions)} sessions "
                f"({open_} open), {len(self.ledger[BIDS])} bids")


def _mean_price(prices: dict) -> Optional[float]:
    vals = [p for p in prices.values()]
    return None if not vals else sum(vals) / len(vals)


def market_summary(ledger: Ledger) -> dict:
    """What the run report shows about a market, from its ledger."""
    sessions = sorted(ledger[MARKET_SESSIONS].values(), key=lambda r: r.opened)
    bids = ledger[BIDS].values()
    details = []
    for rec in sessions:
        mine = [b for b in bids if b.bid.session_id == rec.notice.session_id]
        if not mine:
            continue
        acc = [b for b in mine if b.status in ("accepted", "partial")]
        prices = [b.clearing.price for b in acc if b.clearing is not None and b.clearing.price is not None]
        details.append({
            "id": rec.notice.session_id, "mechanism": rec.notice.mechanism, "state": rec.notice.state,
            "bids": len(mine), "accepted": len(acc), "rejected": sum(1 for b in mine if b.status == "rejected"),
            "price": round(sum(prices) / len(prices), 4) if prices else None,
            "volume": round(sum(b.clearing.volume for b in acc if b.clearing is not None), 3),
        })
    return {"participants": len(ledger[PARTICIPANTS]), "sessions": len(sessions), "bids": len(bids),
            "cleared": sum(1 for b in bids if b.status in ("accepted", "partial")), "session_details": details}
