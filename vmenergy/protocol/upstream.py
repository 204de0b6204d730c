"""Where an aggregator's aggregates go: one strategy per upstream, behind one interface.

- :class:`PlanUpstream` (``plan``): the aggregator schedules its aggregates itself.
- :class:`MarketUpstream` (``market``): it registers with a market, bids each aggregate in the
  open session that can deliver it, and assigns the cleared schedules. In a pool (one- or
  two-sided) it plans the aggregate and bids the plan as orders (:mod:`.trading`); reservations
  and activations of those orders come back to it.
- :class:`DirectUpstream` (``direct``): no market agent; GOFLEX direct trading of each offer
  against the market prices of its trading settings.
- :class:`ParentUpstream` (``parent``): it offers its aggregates to a parent aggregator as
  flex-offers (acting as a prosumer upward, so trees of any depth work).

Whatever goes wrong upstream (a bid rejected or not cleared, a parent refusing an aggregate)
falls back to the aggregator's own plan, so every accepted offer is assigned. A strategy works
on the aggregator through :class:`Portfolio` (aggregate ids, offers and schedules), so it never
touches the aggregator's records itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar, Optional, Protocol, Sequence

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.planning.trading import trade_directly
from vmenergy.settlement.money import cents

from .engine import META, Effect, Note, Table
from .ledger import Ledger
from .messages import (
    Ack,
    ActivationMessage,
    AssignmentMessage,
    BidMessage,
    BillMessage,
    Clearing,
    MarketSessionNotice,
    Message,
    OfferMessage,
    Registration,
    ReservationMessage,
)
from .strategies import Bidding
from .trading import (METERED, ORDERS, POOLS, OrderRecord, TradingSettings, activated_schedule, delivery_metering,
                      hourly_series, imbalance_charge, order_bid_id, pool_orders)

__all__ = ["MARKET_NOTICES", "Portfolio", "Selection", "Upstream", "PlanUpstream", "MarketUpstream",
           "ParentUpstream", "DirectUpstream", "UPSTREAM_CLASSES", "make_upstream", "fits_session"]

#: The market sessions an aggregator has been told of by its market, by session id.
MARKET_NOTICES: Table[MarketSessionNotice] = Table("sessions", MarketSessionNotice)


class Portfolio(Protocol):
    """The aggregator engine as an upstream strategy sees it."""

    jid: str
    ledger: Ledger

    def send_reliable(self, to: str, msg: Message, now: int) -> list[Effect]: ...

    def aggregate_offer(self, aggregate_id: str) -> Optional[FlexOffer]:
        """The aggregate as it went upstream, or None if there is no such aggregate."""

    def mark_aggregate(self, aggregate_id: str, status: str, *, revenue_cents: Optional[int] = None) -> None:
        """Record where an aggregate stands ("bidding", "offered", "scheduled") and what it earned."""

    def plan_aggregates(self, aggregate_ids: Sequence[str], now: int) -> list[Effect]:
        """Schedule these aggregates with the aggregator's own planning and assign their members."""

    def plan_offers(self, offer_ids: Sequence[str], now: int) -> list[Effect]:
        """Aggregate these accepted offers and plan them at once (too late to go upstream)."""

    def assign_aggregate(self, aggregate_id: str, schedule: Schedule, now: int) -> list[Effect]:
        """Split an aggregate's schedule among its members and send them their assignments."""

    def fall_back(self, aggregate_id: str, now: int, why: str) -> list[Effect]:
        """Plan an aggregate with the aggregator's own planning after upstream did not take it."""

    def assign_offer(self, offer_id: str, schedule: Schedule, now: int) -> list[Effect]:
        """Send one accepted offer its schedule (scheduled on its own, not in an aggregate)."""

    def reject_offer(self, offer_id: str, reason: str, now: int) -> list[Effect]:
        """Take back the acceptance of an offer that will not be scheduled, telling its prosumer why."""

    def aggregate_schedule(self, aggregate_id: str) -> Optional[Schedule]:
        """The schedule an aggregate was given (planned, cleared or activated), if any."""

    def book_revenue(self, aggregate_id: str, revenue_cents: int) -> None:
        """Add what the market paid (+) or charged (-) for an aggregate's orders."""

    def aggregate_metering(self, aggregate_id: str) -> Optional[dict[int, float]]:
        """The members' measured kWh per interval, summed, once every member is measured (else None)."""

    def cleared_schedule(self, aggregate_id: str) -> Optional[Schedule]:
        """The schedule a market cleared for an aggregate's flex-offer bid (None if it did not)."""


@dataclass(frozen=True)
class Selection:
    """What one round does with the pending offers: ``upstream`` go into new aggregates sent
    upstream (in ``session`` for a market), ``plan_now`` are planned by the aggregator at once,
    the rest wait for a later round; ``notes`` say why, for the log."""

    upstream: tuple[str, ...]
    plan_now: tuple[str, ...] = ()
    session: Optional[MarketSessionNotice] = None
    notes: tuple[Note, ...] = ()


class Upstream(ABC):
    """The upstream side of an aggregator: what it does with new aggregates, and with the
    messages, notices and acks that come back from ``jid`` (its market or parent)."""

    mode: ClassVar[str]

    def __init__(self, jid: Optional[str]) -> None:
        self.jid = jid

    def on_tick(self, p: Portfolio, now: int) -> list[Effect]:
        """Timed work of the upstream side (before the round)."""
        return []

    def next_due(self, p: Portfolio, now: int) -> Optional[int]:
        """When :meth:`on_tick` next has work (None: only a message can give it work)."""
        return None

    def select(self, p: Portfolio, pending: Sequence[FlexOffer], now: int) -> Selection:
        """Which pending (accepted, not yet aggregated) offers this round sends upstream."""
        return Selection(tuple(fo.id for fo in pending))

    def trade(self, p: Portfolio, pending: Sequence[FlexOffer], now: int) -> Optional[list[Effect]]:
        """A strategy that decides on the pending offers one by one (no aggregates) does it here
        and returns its effects; None: the round aggregates as usual."""
        return None

    @abstractmethod
    def dispatch(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]], selection: Selection,
                 now: int) -> list[Effect]:
        """Send the round's new aggregates (id, offer) upstream, or plan them."""

    def authorize(self, sender: str, msg: Message) -> Optional[str]:
        """None if ``sender`` may send ``msg`` as this aggregator's upstream, else the reason."""
        if isinstance(msg, BillMessage):
            return None if sender == self.jid else f"{sender} is not this aggregator's parent or market"
        if isinstance(msg, AssignmentMessage):
            return f"{sender} is not this aggregator's parent"
        if isinstance(msg, (Clearing, ReservationMessage, ActivationMessage)):
            return f"{sender} is not this aggregator's market"
        return None

    def on_message(self, p: Portfolio, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        """An authorised message from upstream: effects and None (accepted) or a rejection reason."""
        return [], f"an aggregator with upstream {self.mode} does not take {type(msg).__name__} messages"

    def on_notice(self, p: Portfolio, sender: str, msg: Message, now: int) -> Optional[list[Effect]]:
        """A notice from upstream: effects, or None if it is not one this strategy follows."""
        return None

    def on_ack(self, p: Portfolio, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        """The answer to something this strategy sent upstream."""
        return []

    def on_measured(self, p: Portfolio, aggregate_id: str, now: int) -> list[Effect]:
        """A member of ``aggregate_id`` was measured (upstream may want the portfolio's metering)."""
        return []


class PlanUpstream(Upstream):
    """No upstream: the aggregator plans its aggregates with its own planning strategy."""

    mode = "plan"

    def dispatch(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]], selection: Selection,
                 now: int) -> list[Effect]:
        return p.plan_aggregates([agg_id for agg_id, _ in aggregates], now)


class MarketUpstream(Upstream):
    """Bid aggregates on a market (registering once), priced by the ``bidding`` strategy.

    A round bids what the earliest open session can deliver; an offer that does not fit it (or
    any offer, when no session is open) waits for a later session, unless waiting would make it
    too late (its latest start within ``lead`` plus two cycles), in which case the aggregator
    plans it itself."""

    mode = "market"

    def __init__(self, jid: str, bidding: Bidding, *, lead: int, cycle: int,
                 trading: TradingSettings = TradingSettings()) -> None:
        super().__init__(jid)
        self.bidding = bidding
        self.lead = lead
        self.cycle = cycle
        self.trading = trading

    def next_due(self, p: Portfolio, now: int) -> Optional[int]:
        return None if p.ledger[META].get("registration_sent", False) else now

    def on_tick(self, p: Portfolio, now: int) -> list[Effect]:
        meta = p.ledger[META]
        if meta.get("registration_sent", False):
            return []
        meta.put("registration_sent", True)
        registration = Registration("register", p.jid, "seller", self.trading.zone or None)
        return p.send_reliable(self.jid, registration, now)  # type: ignore[arg-type]

    def open_session(self, p: Portfolio, now: int) -> Optional[MarketSessionNotice]:
        """The open session with the earliest gate closure still ahead, if any."""
        sessions = [s for s in p.ledger[MARKET_NOTICES].values() if s.state == "open" and s.gate_closure > now]
        return min(sessions, key=lambda s: s.gate_closure) if sessions else None

    def select(self, p: Portfolio, pending: Sequence[FlexOffer], now: int) -> Selection:
        session = self.open_session(p, now)
        fits, late = [], []
        for fo in pending:
            if session is not None and fits_session(fo, session):
                fits.append(fo.id)
            elif (fo.latest_start() or 0) * fo.resolution < now + self.lead + 2 * self.cycle:
                late.append(fo.id)
        notes = [Note("plan-without-market", {"offers": len(late)})] if late else []
        if session is None and len(pending) > len(late):
            notes.append(Note("waiting-for-market", {"offers": len(pending) - len(late)}))
        chosen = set(fits)
        if session is not None and fits and self._hold(p, [fo for fo in pending if fo.id in chosen], session, now):
            notes.append(Note("bid-held", {"offers": len(fits), "session": session.session_id}))
            fits = []
        return Selection(tuple(fits), tuple(late), session, tuple(notes))

    def _hold(self, p: Portfolio, offers: Sequence[FlexOffer], session: MarketSessionNotice, now: int) -> bool:
        """The trade frequency and the bid update policy: hold new offers back until the next
        trading round (``frequency`` seconds after the last), and while they change the
        portfolio's minimum and maximum energy by no more than ``update_threshold`` kWh; never
        in the last round before the gate closes."""
        if now + self.cycle >= session.gate_closure:
            return False
        last = p.ledger[META].get("last_trade")
        if self.trading.frequency and last is not None and now < last + self.trading.frequency:
            return True
        threshold = self.trading.update_threshold
        if threshold <= 0:
            return False
        low = sum(fo.min_total_energy for fo in offers)
        high = sum(fo.max_total_energy for fo in offers)
        return max(abs(low), abs(high)) <= threshold

    def dispatch(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]], selection: Selection,
                 now: int) -> list[Effect]:
        session = selection.session
        if session is None:  # select() never sends aggregates upstream without a session
            raise ValueError("MarketUpstream.dispatch: the selection has no market session")
        p.ledger[META].put("last_trade", now)
        if session.mechanism in POOLS:
            return self._dispatch_orders(p, aggregates, session, now)
        out: list[Effect] = []
        for agg_id, offer in aggregates:
            p.mark_aggregate(agg_id, "bidding")
            priced = replace(offer, prices=self.bidding.prices(offer, session))
            side = "buy" if priced.direction == "consumption" else "sell"
            bid = BidMessage(f"bid-{agg_id}", session.session_id, side, offer=priced)
            out += p.send_reliable(self.jid, bid, now)  # type: ignore[arg-type]
        return out

    def _dispatch_orders(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]],
                         session: MarketSessionNotice, now: int) -> list[Effect]:
        """A pool takes orders: plan each aggregate (its members get the plan whatever the pool
        decides), then offer the plan, or the room it leaves, as one order per interval."""
        out = p.plan_aggregates([agg_id for agg_id, _ in aggregates], now)
        orders = p.ledger[ORDERS]
        for agg_id, offer in aggregates:
            schedule = p.aggregate_schedule(agg_id)
            if schedule is None:  # planning failed; the note is in ``out`` already
                continue
            p.mark_aggregate(agg_id, "ordered")  # planned, and its plan traded as orders
            placed = pool_orders(offer, schedule, session, self.trading, now)
            for o in placed:
                bid_id = order_bid_id(agg_id, o.interval)
                orders.put(bid_id, OrderRecord(agg_id, session.session_id, o.interval, o.side, o.kind, o.volume,
                                               o.price, activation_price=o.activation_price))
                # void once its interval starts: nothing is left to reserve or deliver then
                bid = BidMessage(bid_id, session.session_id, o.side, volume=o.volume, price=o.price,
                                 activation_price=o.activation_price, expiry=o.interval * session.resolution,
                                 start=o.interval, end=o.interval + 1, order_type=o.kind,
                                 resolution=session.resolution)
                out += p.send_reliable(self.jid, bid, now)  # type: ignore[arg-type]
            out.append(Note("orders", {"aggregate": agg_id, "session": session.session_id, "orders": len(placed)}))
        return out

    def authorize(self, sender: str, msg: Message) -> Optional[str]:
        if isinstance(msg, (Clearing, ReservationMessage, ActivationMessage)):
            return None if sender == self.jid else f"{sender} is not this aggregator's market"
        return super().authorize(sender, msg)

    def _order_cleared(self, p: Portfolio, c: Clearing) -> tuple[list[Effect], Optional[str]]:
        orders = p.ledger[ORDERS]
        rec = orders.require(c.bid_id)
        if rec.status not in ("placed", "withdrawn"):  # the same clearing again changes nothing
            return [], None
        if c.status == "rejected":
            orders.put(c.bid_id, replace(rec, status="rejected"))
            return [Note("order-rejected", {"bid": c.bid_id, "reason": c.reason})], None
        # the amount the market bills: + the aggregator pays, - it is paid
        earned = -cents(c.amount) if c.amount is not None else 0
        orders.put(c.bid_id, replace(rec, status=c.status, cleared=c.volume, amount_cents=earned))
        p.book_revenue(rec.aggregate_id, earned)
        return [Note("order-cleared", {"bid": c.bid_id, "volume": c.volume, "price": c.price})], None

    def _reserved(self, p: Portfolio, r: ReservationMessage) -> tuple[list[Effect], Optional[str]]:
        orders = p.ledger[ORDERS]
        rec = orders.get(r.bid_id)
        if rec is None:
            return [], f"unknown bid {r.bid_id}"
        if rec.reservation_id not in (None, r.reservation_id):
            return [], f"bid {r.bid_id} is already reserved as {rec.reservation_id}"
        orders.put(r.bid_id, replace(rec, reservation_id=r.reservation_id))
        return [Note("reserved", {"reservation": r.reservation_id, "bid": r.bid_id, "kWh": r.volume})], None

    def _activated(self, p: Portfolio, a: ActivationMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        orders = p.ledger[ORDERS]
        found = [(k, o) for k, o in orders.items() if o.reservation_id == a.reservation_id]
        if not found:
            return [], f"unknown reservation {a.reservation_id}"
        bid_id, rec = found[0]
        if a.start < rec.interval or a.end > rec.interval + 1:
            return [], f"intervals {a.start}..{a.end} are outside the reservation's {rec.interval}..{rec.interval + 1}"
        if rec.activated + a.volume > rec.cleared + 1e-9:
            return [], f"{a.volume:g} kWh more than is left of the {rec.cleared:g} kWh reserved"
        offer = p.aggregate_offer(rec.aggregate_id)
        schedule = p.aggregate_schedule(rec.aggregate_id)
        if offer is None or schedule is None:
            return [], f"aggregate {rec.aggregate_id} has no schedule to activate"
        sign = -1.0 if rec.kind == "up" else 1.0  # up: less consumption / more production
        moved = activated_schedule(offer, schedule, {t: sign * a.volume for t in range(a.start, a.end)},
                                   now=now // offer.resolution)
        orders.put(bid_id, replace(rec, activated=rec.activated + a.volume))
        # what the market pays for it (Activation.amount, rounded once like the market's bill)
        p.book_revenue(rec.aggregate_id, cents((rec.activation_price or 0.0) * a.volume * (a.end - a.start)))
        moved = replace(moved, update_id=schedule.update_id + 1)
        return [Note("activated", {"activation": a.activation_id, "aggregate": rec.aggregate_id, "kWh": a.volume}),
                *p.assign_aggregate(rec.aggregate_id, moved, now)], None

    def on_measured(self, p: Portfolio, aggregate_id: str, now: int) -> list[Effect]:
        """Once every member of an aggregate is measured, meter each of its cleared bids to the
        market (energy bids only: flexibility is verified by its activations), so the market
        can settle the imbalance."""
        metered = p.aggregate_metering(aggregate_id)
        offer = p.aggregate_offer(aggregate_id)
        if metered is None or offer is None:
            return []
        # orders and sessions are timed at the offers' resolution (fits_session); what each bid won
        awards: list[tuple[str, dict[int, float]]] = [
            (bid_id, {o.interval: o.cleared if o.side == "buy" else -o.cleared})
            for bid_id, o in p.ledger[ORDERS].items()
            if o.aggregate_id == aggregate_id and o.kind == "energy" and o.status in ("accepted", "partial")]
        flex = p.cleared_schedule(aggregate_id)
        if flex is not None:
            per = offer.profiles[flex.profile].spread(flex.energy)
            awards.append((f"bid-{aggregate_id}", {flex.start + k: float(e) for k, e in enumerate(per)}))
        out: list[Effect] = []
        sent = p.ledger[METERED]
        for bid_id, awarded in awards:
            if bid_id in sent:
                continue
            m = delivery_metering(bid_id, metered, min(awarded), max(awarded) + 1, offer.resolution)
            if m is None:
                continue
            sent.put(bid_id, m.measurement_id)
            # what the market contract's imbalance terms will charge for it, as this aggregator reckons
            kwh, fee = imbalance_charge(awarded, {m.start + k: e for k, e in enumerate(m.energy)},
                                        self.trading.imbalance_fee, self.trading.imbalance_cutoff)
            out += [Note("metered-to-market", {"bid": bid_id, "kWh": round(sum(m.energy), 6), "imbalance_kWh": kwh,
                                               "expected_imbalance_cents": fee}),
                    *p.send_reliable(self.jid, m, now)]  # type: ignore[arg-type]
        return out

    def on_message(self, p: Portfolio, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        if isinstance(msg, ReservationMessage):
            return self._reserved(p, msg)
        if isinstance(msg, ActivationMessage):
            return self._activated(p, msg, now)
        if not isinstance(msg, Clearing):
            return super().on_message(p, sender, msg, now)
        c = msg
        if c.bid_id in p.ledger[ORDERS]:
            return self._order_cleared(p, c)
        agg_id = c.bid_id.removeprefix("bid-")
        offer = p.aggregate_offer(agg_id)
        if offer is None:
            return [], f"unknown bid {c.bid_id}"
        if c.status == "rejected" or c.schedule is None:
            return p.fall_back(agg_id, now, f"not cleared: {c.reason or c.status}"), None
        if offer.check(c.schedule):
            return p.fall_back(agg_id, now, "cleared schedule infeasible"), None
        # what the portfolio earned on the market (+ energy sold, - energy bought): the amount the
        # market bills; a market that does not say it is taken as price times energy
        if c.amount is not None:
            revenue = -cents(c.amount)
        else:
            sold = sum(e for e in c.schedule.energy if e < 0)
            bought = sum(e for e in c.schedule.energy if e > 0)
            revenue = cents((c.price or 0.0) * (-sold - bought))
        p.mark_aggregate(agg_id, "scheduled", revenue_cents=revenue)
        return [Note("cleared", {"bid": c.bid_id, "volume": c.volume, "price": c.price}),
                *p.assign_aggregate(agg_id, c.schedule, now)], None

    def on_notice(self, p: Portfolio, sender: str, msg: Message, now: int) -> Optional[list[Effect]]:
        if isinstance(msg, MarketSessionNotice) and sender == self.jid:
            p.ledger[MARKET_NOTICES].put(msg.session_id, msg)
            return [Note("market-session", {"session": msg.session_id, "state": msg.state})]
        return None

    def on_ack(self, p: Portfolio, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        if ack.kind == BidMessage.ack and isinstance(msg, BidMessage) and not ack.accepted and \
                msg.bid_id in p.ledger[ORDERS]:
            rec = p.ledger[ORDERS].require(msg.bid_id)
            p.ledger[ORDERS].put(msg.bid_id, replace(rec, status="rejected"))
            return [Note("order-rejected", {"bid": msg.bid_id, "reason": ack.reason})]
        if ack.kind == BidMessage.ack and isinstance(msg, BidMessage) and not ack.accepted:
            agg_id = msg.bid_id.removeprefix("bid-")
            if p.aggregate_offer(agg_id) is not None:
                return [Note("bid-rejected", {"bid": msg.bid_id, "reason": ack.reason}),
                        *p.fall_back(agg_id, now, f"bid rejected: {ack.reason}")]
        return []


class ParentUpstream(Upstream):
    """Offer aggregates to a parent aggregator and assign the schedules it sends back."""

    mode = "parent"

    def dispatch(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]], selection: Selection,
                 now: int) -> list[Effect]:
        out: list[Effect] = []
        for agg_id, offer in aggregates:
            p.mark_aggregate(agg_id, "offered")
            out += p.send_reliable(self.jid, OfferMessage("insert", offer.id, offer), now)  # type: ignore[arg-type]
        return out

    def authorize(self, sender: str, msg: Message) -> Optional[str]:
        if isinstance(msg, AssignmentMessage):
            return None if sender == self.jid else f"{sender} is not this aggregator's parent"
        return super().authorize(sender, msg)

    def on_message(self, p: Portfolio, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        if not isinstance(msg, AssignmentMessage):
            return super().on_message(p, sender, msg, now)
        schedule = msg.schedule
        offer = p.aggregate_offer(schedule.offer_id)
        if offer is None:
            return [], f"unknown aggregate {schedule.offer_id}"
        violations = offer.check(schedule)
        if violations:
            return [], "infeasible: " + "; ".join(str(v) for v in violations)
        p.mark_aggregate(schedule.offer_id, "scheduled")
        return p.assign_aggregate(schedule.offer_id, schedule, now), None

    def on_ack(self, p: Portfolio, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        if ack.kind == OfferMessage.ack and isinstance(msg, OfferMessage) and not ack.accepted:
            if p.aggregate_offer(msg.offer_id) is not None:
                return [Note("parent-rejected", {"aggregate": msg.offer_id, "reason": ack.reason}),
                        *p.fall_back(msg.offer_id, now, f"parent rejected: {ack.reason}")]
        return []


class DirectUpstream(Upstream):
    """GOFLEX direct trading: each round, the pending offers are scheduled by
    :func:`vmenergy.planning.trading.trade_directly` against the market prices in the trading
    settings: in merit order, only where moving an offer from its default pays more than the
    offer's own prices cost; the rest wait for a later round or, when they cannot, are rejected
    with the reason. Prosumers are paid by their offers' prices (a direct contract)."""

    mode = "direct"

    def __init__(self, trading: TradingSettings, *, cycle: int, solver: str = "auto") -> None:
        super().__init__(None)
        if not trading.prices:
            raise ValueError("direct trading needs trading.prices")
        self.trading = trading
        self.cycle = cycle
        self.solver = solver

    def dispatch(self, p: Portfolio, aggregates: Sequence[tuple[str, FlexOffer]], selection: Selection,
                 now: int) -> list[Effect]:
        return p.plan_aggregates([agg_id for agg_id, _ in aggregates], now)  # trade() leaves none

    def trade(self, p: Portfolio, pending: Sequence[FlexOffer], now: int) -> Optional[list[Effect]]:
        if not pending:
            return []
        res = pending[0].resolution
        here = now // res
        end = max((fo.latest_start(here) or here) + max(q.duration for q in fo.profiles) for fo in pending) + 1
        defaults = [fo.baseline.start for fo in pending if fo.baseline is not None and fo.baseline.start is not None]
        start = min([here, *defaults])
        prices = hourly_series(self.trading.prices, start, end, res)
        result = trade_directly(list(pending), prices, start, now=here, next_decision=here + -(-self.cycle // res),
                                volume_limit=self.trading.volume_limit or None, solver=self.solver)
        out: list[Effect] = [Note("traded-directly", {
            "scheduled": len(result.schedules), "postponed": len(result.postponed), "rejected": len(result.rejected),
            "profit": round(result.total_profit, 4)})]
        for offer_id in result.merit_order:
            if offer_id in result.schedules:
                out += p.assign_offer(offer_id, result.schedules[offer_id], now)
        for offer_id, why in sorted(result.rejected.items()):
            out += p.reject_offer(offer_id, why, now)
        return out


#: The upstream strategy of each ``upstream`` config value.
UPSTREAM_CLASSES: dict[str, type[Upstream]] = {c.mode: c for c in (PlanUpstream, MarketUpstream, ParentUpstream,
                                                                   DirectUpstream)}


def make_upstream(mode: str, jid: Optional[str], *, bidding: Bidding, lead: int, cycle: int,
                  trading: TradingSettings = TradingSettings(), solver: str = "auto") -> Upstream:
    """The upstream strategy of an aggregator whose config says ``upstream = mode``."""
    if mode not in UPSTREAM_CLASSES:
        raise ValueError(f"unknown upstream {mode!r} (one of {', '.join(UPSTREAM_CLASSES)})")
    if mode == MarketUpstream.mode:
        if jid is None:
            raise ValueError("a market upstream needs the market's JID")
        return MarketUpstream(jid, bidding, lead=lead, cycle=cycle, trading=trading)
    if mode == DirectUpstream.mode:
        return DirectUpstream(trading, cycle=cycle, solver=solver)
    return UPSTREAM_CLASSES[mode](jid)


def fits_session(offer: FlexOffer, session: MarketSessionNotice) -> bool:
    """Whether every schedule of ``offer`` can lie inside the session's delivery window."""
    if offer.resolution != session.resolution:
        return False
    lo = offer.earliest_start()
    hi = offer.latest_start()
    if lo is None or hi is None:
        return False
    return any(
        max(lo, offer.earliest_start(profile=j) or lo) >= session.delivery_start
        and min(hi, offer.latest_start(profile=j) or hi) + p.duration <= session.delivery_end
        for j, p in enumerate(offer.profiles)
    )
