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
    Activation,
    FlexOfferBid,
    ImplicitCapacity,
    Link,
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
from .trading import imbalance_charge
from .messages import (
    Ack,
    ActivationMessage,
    BidMessage,
    BillMessage,
    BillLine,
    Clearing,
    MarketSessionNotice,
    Measurement,
    Message,
    Registration,
    ReservationMessage,
)

__all__ = ["MarketConfig", "MarketEngine", "SessionRecord", "BidRecord", "MARKET_SESSIONS", "BIDS", "PARTICIPANTS",
           "ZONES", "market_summary"]

MECHANISMS = ("one-sided", "two-sided", "many-to-many", "implicit-capacity")
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
    activation: dict = field(default_factory=dict)
    imbalance: dict = field(default_factory=dict)
    zones: tuple[str, ...] = ()
    links: Any = ()
    liquidity_zone: str = ""
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
        if self.mechanism == "one-sided" and self.demand.get("kind", "up") not in tuple(k.value for k in Product):
            raise FlexOfferError("demand.kind", f"up, down or energy (got {self.demand.get('kind')!r})")
        for key in self.activation:
            if key not in ("share", "notice"):
                raise FlexOfferError(f"activation.{key}", "unknown activation setting (known: notice, share)")
        share = self.activation.get("share", 0.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise FlexOfferError("activation.share", f"a fraction in [0, 1] (got {share!r})")
        notice = self.activation.get("notice", self.resolution)
        if isinstance(notice, bool) or not isinstance(notice, int) or notice < 1:
            raise FlexOfferError("activation.notice", f"seconds, an integer >= 1 (got {notice!r})")
        if self.registration != "open" and not isinstance(self.registration, (list, tuple)):
            raise FlexOfferError("registration", "\"open\" or a list of participant JIDs")
        for key, v in self.imbalance.items():
            if key not in ("price", "cutoff"):
                raise FlexOfferError(f"imbalance.{key}", "unknown imbalance setting (known: cutoff, price)")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise FlexOfferError(f"imbalance.{key}", f"a finite number >= 0 (got {v!r})")
        if self.mechanism == "implicit-capacity":
            self.mechanism_object()  # zones and links are checked by the market core, errors name the field
            if self.liquidity_zone and self.liquidity_zone not in self.zones:
                raise FlexOfferError("liquidity_zone", f"must be one of the zones {list(self.zones)}")
        elif self.zones or self.links or self.liquidity_zone:
            raise FlexOfferError("zones", "zones, links and liquidity_zone are for the implicit-capacity mechanism")

    @classmethod
    def from_dict(cls, d: dict) -> "MarketConfig":
        known = {f for f in cls.__dataclass_fields__}
        for key in d:
            if key not in known:
                raise FlexOfferError(key, f"unknown market setting (known: {', '.join(sorted(known))})")
        d = dict(d)
        for key in ("registration", "zones", "links"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def _links(self) -> tuple[Link, ...]:
        out = []
        for i, ln in enumerate(self.links):
            if not isinstance(ln, dict):
                raise FlexOfferError(f"links[{i}]", "a table {a, b, capacity, cost}")
            unknown = set(ln) - {"a", "b", "capacity", "cost"}
            if unknown:
                raise FlexOfferError(f"links[{i}].{sorted(unknown)[0]}",
                                     "unknown link setting (known: a, b, capacity, cost)")
            for key in ("a", "b", "capacity"):
                if key not in ln:
                    raise FlexOfferError(f"links[{i}].{key}", "required")
            try:
                out.append(Link(ln["a"], ln["b"], ln["capacity"], ln.get("cost", 0.0)))
            except MarketError as exc:
                raise FlexOfferError(f"links[{i}].{exc.path}", exc.reason) from None
        return tuple(out)

    def liquidity_home(self) -> Optional[str]:
        """The zone the liquidity provider trades in (None without zones)."""
        if self.mechanism != "implicit-capacity":
            return None
        return self.liquidity_zone or self.zones[0]

    def mechanism_object(self):
        if self.mechanism == "many-to-many":
            return ManyToMany(time_limit=self.time_limit)
        if self.mechanism == "implicit-capacity":
            try:
                return ImplicitCapacity(tuple(self.zones), self._links(), time_limit=self.time_limit)
            except MarketError as exc:
                raise FlexOfferError(exc.path.removeprefix("mechanism."), exc.reason) from None
        if self.mechanism == "two-sided":
            return TwoSidedPool()
        return OneSidedPool(LIQUIDITY, float(self.demand["volume"]), float(self.demand["price"]),
                            Product(self.demand.get("kind", "up")))


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
    status: str = "placed"  # placed | accepted | partial | rejected | withdrawn
    amount_cents: int = 0  # what the participant pays (+) or receives (-) for its award
    clearing: Optional[Clearing] = None
    reservation: Optional[ReservationMessage] = None  # an accepted flexibility order
    activation_price: Optional[float] = None
    activation: Optional[ActivationMessage] = None
    activated_cents: int = 0  # what the participant pays (+) or receives (-) for the activation
    metered: Optional[Measurement] = None  # the participant's metering of the delivery
    imbalance_kwh: float = 0.0  # sum over intervals of |metered - awarded| beyond the cut-off
    imbalance_cents: int = 0  # what the participant pays for its imbalance
    imbalance_bill: Optional[str] = None  # a bill of its own when metering came after the session's

    @property
    def billed_cents(self) -> int:
        """What the participant pays (+) or receives (-) in all for this bid."""
        return self.amount_cents + self.activated_cents + self.imbalance_cents


#: The market's sessions, by session id.
MARKET_SESSIONS: Table[SessionRecord] = Table("sessions", SessionRecord)
#: Every bid placed, by bid id.
BIDS: Table[BidRecord] = Table("bids", BidRecord)
#: Registered participants (bare JID) and their role.
PARTICIPANTS: Table[str] = Table("participants", str)
#: The zone each participant registered in (markets with zones only).
ZONES: Table[str] = Table("zones", str)


class MarketEngine(Engine):
    role = "market"
    tables = Engine.tables + (MARKET_SESSIONS, BIDS, PARTICIPANTS, ZONES)
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
                bids = sorted((b for b in self.ledger[BIDS].values()
                               if b.bid.session_id == rec.notice.session_id and b.status != "withdrawn"),
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
        zones = self.ledger[ZONES]
        for p in participants:
            s.register(p, zone=zones.get(p))
        if c.liquidity or c.mechanism == "one-sided":
            s.register(LIQUIDITY, zone=c.liquidity_home())
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
            TimedStep("activation", self._activate_due, self._activation_due),
            TimedStep("billing", self._bill_due_sessions, self._billing_due),
        ]

    # -- reservations and their activation (the buyer's calls) -------------------------------
    def _to_activate(self, now: int) -> list[tuple[int, BidRecord]]:
        """(when, bid) of reservations the buyer will still activate, soonest first."""
        share = float(self.config.activation.get("share", 0.0))
        if share <= 0:
            return []
        notice = int(self.config.activation.get("notice", self.config.resolution))
        out = []
        for b in self.ledger[BIDS].values():
            r = b.reservation
            if r is None or b.activation is not None or r.start * r.resolution <= now:
                continue
            out.append((r.start * r.resolution - notice, b))
        return sorted(out, key=lambda x: (x[0], x[1].bid.bid_id))

    def _activation_due(self, now: int) -> Optional[int]:
        due = self._to_activate(now)
        return due[0][0] if due else None

    def _activate_due(self, now: int) -> list[Effect]:
        share = float(self.config.activation.get("share", 0.0))
        out: list[Effect] = []
        for when, b in self._to_activate(now):
            if when > now:
                break
            r = b.reservation
            if r is None:  # pragma: no cover - _to_activate keeps only reserved bids
                continue
            act = Activation(f"{r.reservation_id}-a", r.reservation_id, b.participant, LIQUIDITY,
                             Product(r.reservation_type), r.start, r.end, round(share * r.volume, 6),
                             b.activation_price or 0.0)
            msg = ActivationMessage(act.id, r.reservation_id, act.start, act.end, act.volume, r.resolution)
            # the holder pays the provider for the activated energy
            self.ledger[BIDS].put(b.bid.bid_id, replace(b, activation=msg, activated_cents=-cents(act.amount)))
            out += [Note("activation", {"reservation": r.reservation_id, "to": b.participant, "kWh": act.volume}),
                    *self.send_reliable(b.participant, msg, now)]
        return out

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
            if b.bid.session_id != sid or b.status == "withdrawn":
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
                clearing_price = _mean_price({k: v for k, v in result.prices.items() if k[0] == award.zone})
                c = Clearing(sid, b.bid.bid_id, status, award.volume, price, None, schedule, clearing_price,
                             cents(award.amount) / 100)
                b = replace(b, status=status, clearing=c, amount_cents=cents(award.amount))
                self.ledger[BIDS].put(b.bid.bid_id, b)
            out += self.send_reliable(b.participant, c, now)
        for i, r in enumerate(result.reservations):
            held = self.ledger[BIDS].get(r.bid_id)
            if held is None:  # the liquidity provider's own orders are not reserved from anyone
                continue
            vol = min(r.volume.values())
            msg = ReservationMessage(f"{sid}-r{i + 1}", sid, r.bid_id, r.start, r.end, round(vol, 6), round(r.price, 6),
                                     r.kind.value, rec.notice.resolution)
            self.ledger[BIDS].put(r.bid_id, replace(held, reservation=msg, activation_price=r.activation_price))
            out += self.send_reliable(held.participant, msg, now)
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
            lines = []
            for b, c in sorted(bids, key=lambda x: x[0].bid.bid_id):
                if b.reservation is not None:
                    lines.append(BillLine("market_reservation", f"bid {b.bid.bid_id}: {c.volume:g} kWh of "
                                                                f"{b.reservation.reservation_type} reserved at "
                                                                f"{c.price or 0:g} EUR/kWh", -b.amount_cents))
                else:
                    lines.append(BillLine("market_energy", f"bid {b.bid.bid_id}: {c.volume:g} kWh at {c.price or 0:g} "
                                                           f"EUR/kWh ({'bought' if b.amount_cents >= 0 else 'sold'})",
                                          -b.amount_cents))
                if b.imbalance_cents and b.imbalance_bill is None:
                    lines.append(self._imbalance_line(b))
                if b.activation is not None:
                    lines.append(BillLine("market_activation", f"activation {b.activation.activation_id}: "
                                                               f"{b.activation.volume:g} kWh at "
                                                               f"{b.activation_price or 0:g} EUR/kWh",
                                          -b.activated_cents))
            bill = BillMessage(f"bill-{sid}-{participant.split('@')[0]}", rec.notice.delivery_start * res,
                               rec.notice.delivery_end * res, tuple(lines))
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
        if isinstance(msg, Measurement):
            b = self.ledger[BIDS].get(msg.offer_id)
            return None if b is not None and b.participant == sender else f"{sender} has no bid {msg.offer_id}"
        return None

    def _zone_problem(self, msg: Registration) -> Optional[str]:
        zones = self.config.zones if self.config.mechanism == "implicit-capacity" else ()
        if not zones:
            return None if msg.zone is None else f"zone: this market has no zones (got {msg.zone!r})"
        if msg.zone not in zones:
            return f"zone: must be one of this market's zones {', '.join(zones)} (got {msg.zone!r})"
        old = self.ledger[ZONES].get(bare(msg.participant))
        if old is not None and old != msg.zone and self.registered(msg.participant):
            return f"zone: already registered in zone {old}; deregister first"
        return None

    @handles(Registration)
    def _registration(self, sender: str, msg: Registration, now: int) -> tuple[list[Effect], Optional[str]]:
        # register, deregister, register again: each undoes the other, so each must be handled
        # again, not answered from memory as a repeat of the first
        zones = self.config.zones if self.config.mechanism == "implicit-capacity" else ()
        opposite = "register" if msg.op == "deregister" else "deregister"
        for zone in (None, *zones):
            self.forget_answer(sender, replace(msg, op=opposite, zone=zone))
        if msg.op == "deregister":
            return self._deregister(sender, now), None
        problem = self._zone_problem(msg)
        if problem is not None:
            return [Note("registration-refused", {"participant": sender, "reason": problem})], problem
        self.ledger[PARTICIPANTS].put(sender, msg.role)
        if msg.zone is not None:
            self.ledger[ZONES].put(sender, msg.zone)
        for sid, session in self._live.items():  # join the open sessions too
            try:
                session.register(sender, zone=msg.zone)
            except MarketError:
                pass
        sessions = self.ledger[MARKET_SESSIONS]
        notices = [Send(sender, rec.notice) for rec in sessions.values() if rec.notice.state == "open"]
        for rec in sessions.values():
            if rec.notice.state == "open" and sender not in rec.participants:
                sessions.put(rec.notice.session_id, replace(rec, participants=tuple(sorted((*rec.participants, sender)))))
        return [Note("registered", {"participant": sender}), *notices], None

    def _deregister(self, sender: str, now: int) -> list[Effect]:
        """A participant leaves: its bids in open sessions are withdrawn (they will not clear);
        what a closed session already holds stays binding."""
        self.ledger[PARTICIPANTS].delete(sender)
        withdrawn: list[str] = []
        sessions = self.ledger[MARKET_SESSIONS]
        for sid, session in sorted(self._live.items()):
            if session.state.value != "open" or sender not in session.participants:
                continue
            gone = session.deregister(sender)
            rec = sessions.require(sid)
            sessions.put(sid, replace(rec, participants=tuple(p for p in rec.participants if p != sender)))
            for bid_id in gone.withdrawn:
                b = self.ledger[BIDS].get(bid_id)
                if b is not None:
                    c = Clearing(sid, bid_id, "rejected", 0.0, None, "withdrawn: the participant deregistered")
                    self.ledger[BIDS].put(bid_id, replace(b, status="withdrawn", clearing=c))
                    withdrawn.append(bid_id)
        return [Note("deregistered", {"participant": sender, "withdrawn": len(withdrawn)})]

    def _awarded(self, b: BidRecord) -> dict[int, float]:
        """The energy per interval the market awarded a bid (+ bought, - sold)."""
        c = b.clearing
        if c is None or b.status not in ("accepted", "partial"):
            return {}
        if c.schedule is not None and b.bid.offer is not None:
            s = c.schedule
            per = b.bid.offer.profiles[s.profile].spread(s.energy)
            return {s.start + k: float(e) for k, e in enumerate(per)}
        start = b.bid.start if b.bid.start is not None else 0
        end = b.bid.end if b.bid.end is not None else start + 1
        sign = 1.0 if b.bid.side == "buy" else -1.0
        return {t: sign * c.volume / (end - start) for t in range(start, end)}

    @handles(Measurement)
    def _metering(self, sender: str, m: Measurement, now: int) -> tuple[list[Effect], Optional[str]]:
        """A participant meters a cleared energy bid: the deviation from its award, beyond the
        cut-off, is its imbalance, billed at the imbalance price (with the session's bill, or
        on a bill of its own when that went out already)."""
        b = self.ledger[BIDS].require(m.offer_id)  # authorize() checked it is the sender's
        if b.status not in ("accepted", "partial"):
            return [], f"bid {m.offer_id} did not clear: there is no position to settle"
        if b.reservation is not None:
            return [], (f"bid {m.offer_id} reserved {b.reservation.reservation_type} flexibility: it is settled by "
                        "its activation, not metered")
        if b.metered is not None:
            return [], f"bid {m.offer_id} is metered already"
        if m.resolution != self.config.resolution:
            return [], f"resolution {m.resolution} differs from the market's {self.config.resolution}"
        awarded = self._awarded(b)
        metered = {m.start + k: e for k, e in enumerate(m.energy)}
        outside = sorted(set(metered) - set(awarded))
        if outside and any(abs(metered[t]) > 1e-9 for t in outside):
            return [], f"interval {outside[0]} is outside the bid's delivery"
        beyond, fee = imbalance_charge(awarded, metered, float(self.config.imbalance.get("price", 0.0)),
                                       float(self.config.imbalance.get("cutoff", 0.0)))
        b = replace(b, metered=m, imbalance_kwh=beyond, imbalance_cents=fee)
        out: list[Effect] = [Note("imbalance", {"bid": b.bid.bid_id, "kWh": round(beyond, 6), "cents": fee})]
        rec = self.ledger[MARKET_SESSIONS].get(b.bid.session_id)
        if rec is not None and rec.billed and fee:
            res = rec.notice.resolution
            bill = BillMessage(f"bill-imb-{b.bid.bid_id}", rec.notice.delivery_start * res,
                               rec.notice.delivery_end * res, (self._imbalance_line(b),))
            b = replace(b, imbalance_bill=bill.bill_id)
            out += self.send_reliable(sender, bill, now)
        self.ledger[BIDS].put(b.bid.bid_id, b)
        return out, None

    @staticmethod
    def _imbalance_line(b: BidRecord) -> BillLine:
        return BillLine("market_imbalance", f"bid {b.bid.bid_id}: {b.imbalance_kwh:g} kWh off the award beyond the "
                                            f"cut-off", -b.imbalance_cents)

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
