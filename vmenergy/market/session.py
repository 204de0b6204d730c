"""``MarketSession``: the lifecycle of one market session, what the market node (FMAR) runs.

States: ``created`` (participants register) -> ``open`` (bids are placed and withdrawn) ->
``closed`` (bids are binding) -> ``cleared`` (results, then reservations are activated).

- :meth:`register` / :meth:`deregister` participants (a zone is required with implicit
  capacity); deregistering withdraws the participant's bids and is refused once closed.
- :meth:`open` returns the :class:`SessionOpened` event the agent announces.
- :meth:`place` answers every bid with a :class:`BidAck`. A bad bid (session not open, after the
  closing time, unknown participant, expired, wrong product for this mechanism, outside the
  delivery window, infeasible flex-offer, reused id) is rejected with the field path and the
  reason, and *nothing else in the session changes*. Placing an identical bid again is
  acknowledged as a duplicate and changes nothing (receivers are idempotent).
- :meth:`close`, then :meth:`clear` (bids that expired in between are dropped with a reason).
- :meth:`activate` calls on a reservation; :meth:`MarketResult.imbalance` turns metering into
  settlement input.

Time is always passed in: ``now`` in epoch seconds (like the offers' deadlines); delivery in
intervals of ``resolution`` seconds. Sequence numbers follow placement order and break ties.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Optional, Union

import numpy as np

from vmenergy.flexoffer import State
from vmenergy.flexoffer.ragged import positions, sums_at
from vmenergy.planning.errors import PlanningError
from vmenergy.planning.objective import Objective
from vmenergy.planning.problem import prepare

from .bids import Bid, FlexOfferBid, Order, Product, Side
from .errors import MarketError, check
from .events import (BidAck, ParticipantDeregistered, ParticipantRegistered, SessionCleared, SessionClosed,
                     SessionOpened)
from .mechanisms import ImplicitCapacity, ManyToMany, Mechanism, OneSidedPool, Pricing, TwoSidedPool
from .pools import EPS, merit_order, uniform_crossing
from .results import Activation, Award, MarketResult, Reservation
from .welfare import PlacedFlex, PlacedOrder, clear_welfare

__all__ = ["MarketSession", "SessionState"]

_KIND_CODE = {Product.ENERGY: 0, Product.UP: 1, Product.DOWN: 2}
_KINDS = list(_KIND_CODE)
_OPEN_OFFER_STATES = (State.INITIAL, State.OFFERED, State.ACCEPTED)


class SessionState(str, Enum):
    CREATED = "created"
    OPEN = "open"
    CLOSED = "closed"
    CLEARED = "cleared"

    def __str__(self) -> str:
        return self.value


class _Rejected(Exception):
    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason


class MarketSession:
    """One market session (see module doc)."""

    def __init__(self, session_id: str, mechanism: Mechanism, *, delivery_start: int, delivery_end: int,
                 resolution: int = 900, pricing: Union[Pricing, str] = Pricing.UNIFORM,
                 close_at: Optional[int] = None) -> None:
        self.session_id = check.identifier(session_id, "session_id")
        if not isinstance(mechanism, (OneSidedPool, TwoSidedPool, ManyToMany, ImplicitCapacity)):
            raise MarketError("mechanism", "must be OneSidedPool, TwoSidedPool, ManyToMany or ImplicitCapacity")
        self.mechanism = mechanism
        self.delivery_start = check.integer(delivery_start, "delivery_start")
        self.delivery_end = check.integer(delivery_end, "delivery_end")
        if self.delivery_end <= self.delivery_start:
            raise MarketError("delivery_end", "must be after delivery_start")
        if self.delivery_end - self.delivery_start > 366 * 96:
            raise MarketError("delivery_end", "a session delivers at most a year of intervals")
        self.resolution = check.integer(resolution, "resolution")
        if self.resolution <= 0:
            raise MarketError("resolution", "must be > 0 seconds")
        try:
            self.pricing = Pricing(pricing)
        except ValueError:
            raise MarketError("pricing", f"must be uniform or pay-as-bid, got {pricing!r}") from None
        self.close_at = None if close_at is None else check.integer(close_at, "close_at")
        self.state = SessionState.CREATED
        self.participants: dict[str, Optional[str]] = {}
        self.bids: dict[str, tuple[Bid, int, int]] = {}  # id -> (bid, sequence number, interval placed)
        self.result: Optional[MarketResult] = None
        self.activations: list[Activation] = []
        self._seq = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def _require(self, *states: SessionState, action: str) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise MarketError("state", f"cannot {action} a session that is {self.state.value} (must be {allowed})")

    def register(self, participant: str, *, zone: Optional[str] = None) -> ParticipantRegistered:
        """Admit a participant (again with the same zone: no change)."""
        self._require(SessionState.CREATED, SessionState.OPEN, action="register in")
        pid = check.identifier(participant, "participant")
        if isinstance(self.mechanism, ImplicitCapacity):
            if zone not in self.mechanism.zones:
                raise MarketError("zone", f"must be one of the session's zones {list(self.mechanism.zones)}, got {zone!r}")
        elif zone is not None:
            raise MarketError("zone", "this session has no zones")
        if pid in self.participants and self.participants[pid] != zone:
            raise MarketError("zone", f"{pid} is registered in zone {self.participants[pid]!r}")
        self.participants[pid] = zone
        return ParticipantRegistered(self.session_id, pid, zone)

    def deregister(self, participant: str) -> ParticipantDeregistered:
        """Remove a participant and withdraw its bids; refused once the session is closed."""
        self._require(SessionState.CREATED, SessionState.OPEN, action="deregister from")
        if participant not in self.participants:
            raise MarketError("participant", f"{participant!r} is not registered")
        gone = tuple(b for b, (bid, _, _) in self.bids.items() if bid.participant == participant)
        for b in gone:
            del self.bids[b]
        del self.participants[participant]
        return ParticipantDeregistered(self.session_id, participant, gone)

    def open(self, now: int) -> SessionOpened:
        self._require(SessionState.CREATED, action="open")
        now = check.integer(now, "now")
        if isinstance(self.mechanism, OneSidedPool) and self.mechanism.buyer not in self.participants:
            raise MarketError("mechanism.buyer", f"the buyer {self.mechanism.buyer!r} must be registered first")
        if self.close_at is not None and self.close_at <= now:
            raise MarketError("close_at", "the closing time has already passed")
        self.state = SessionState.OPEN
        return SessionOpened(self.session_id, self.mechanism.name, self.pricing.value, self.delivery_start,
                             self.delivery_end, self.resolution, now, self.close_at, tuple(self.participants))

    def close(self, now: int) -> SessionClosed:
        self._require(SessionState.OPEN, action="close")
        now = check.integer(now, "now")
        self.state = SessionState.CLOSED
        return SessionClosed(self.session_id, now, len(self.bids))

    # -- bids -------------------------------------------------------------------------------------
    def place(self, bid: Bid, now: int) -> BidAck:
        """Accept ``bid`` into the session or reject it with a reason (module doc)."""
        bid_id = getattr(bid, "id", "?")
        who = getattr(bid, "participant", "?")
        try:
            now = check.integer(now, "now")
            interval = self._check(bid, now)
        except _Rejected as r:
            return BidAck(str(bid_id), str(who), False, r.reason, r.path)
        except MarketError as e:
            return BidAck(str(bid_id), str(who), False, e.reason, e.path)
        if bid.id in self.bids:  # identical repeat (checked in _check)
            return BidAck(bid.id, bid.participant, True, duplicate=True)
        self.bids[bid.id] = (bid, self._seq, interval)
        self._seq += 1
        return BidAck(bid.id, bid.participant, True)

    def withdraw(self, bid_id: str, participant: str, now: int) -> BidAck:
        """Take a bid back while the session is open (only its own participant may)."""
        if self.state is not SessionState.OPEN:
            return BidAck(bid_id, participant, False, f"the session is {self.state.value}; bids can be withdrawn only while it is open", "session")
        if self.close_at is not None and now >= self.close_at:
            return BidAck(bid_id, participant, False, "after the session's closing time", "session")
        entry = self.bids.get(bid_id)
        if entry is None:
            return BidAck(bid_id, participant, False, "no such bid in this session", "id")
        if entry[0].participant != participant:
            return BidAck(bid_id, participant, False, "the bid belongs to another participant", "participant")
        del self.bids[bid_id]
        return BidAck(bid_id, participant, True)

    def _check(self, bid: Bid, now: int) -> int:
        """Every reason to reject ``bid`` now; returns the interval the bid is placed in."""
        if not isinstance(bid, (Order, FlexOfferBid)):
            raise _Rejected("bid", f"must be an Order or a FlexOfferBid, got {type(bid).__name__}")
        if self.state is SessionState.CREATED:
            raise _Rejected("session", "the session is not open yet")
        if self.state is not SessionState.OPEN:
            raise _Rejected("session", f"the session is {self.state.value}: no bids after close")
        if self.close_at is not None and now >= self.close_at:
            raise _Rejected("session", f"after the session's closing time ({self.close_at})")
        if bid.participant not in self.participants:
            raise _Rejected("participant", f"{bid.participant!r} is not registered in this session")
        if bid.id in self.bids:
            if self.bids[bid.id][0] == bid:
                return self.bids[bid.id][2]
            raise _Rejected("id", "already used by another bid in this session")
        expiry = bid.expiry if isinstance(bid, Order) else bid.effective_expiry
        if expiry is not None and expiry <= now:
            raise _Rejected("expiry", f"expired at {expiry} (now {now})")
        interval = -(-now // self.resolution)  # the first interval that has not started
        m = self.mechanism
        if isinstance(bid, Order):
            if bid.start < self.delivery_start or bid.end > self.delivery_end:  # type: ignore[operator]
                raise _Rejected("start", f"delivery [{bid.start}, {bid.end}) is outside the session's "
                                         f"[{self.delivery_start}, {self.delivery_end})")
            if isinstance(m, OneSidedPool):
                if bid.side is not Side.SELL:
                    raise _Rejected("side", "a one-sided pool takes sell orders only (the buyer's demand is fixed)")
                if bid.participant == m.buyer:
                    raise _Rejected("participant", "the buyer's demand is set by the session")
                if bid.kind is not m.kind:
                    raise _Rejected("kind", f"this session buys {m.kind.value}, not {bid.kind.value}")
            elif isinstance(m, (ManyToMany, ImplicitCapacity)) and bid.kind is not Product.ENERGY:
                raise _Rejected("kind", f"{m.name} clears energy; {bid.kind.value} is traded in the pools")
            return interval
        # flex-offer bid
        if not isinstance(m, (ManyToMany, ImplicitCapacity)):
            raise _Rejected("offer", f"a {m.name} pool clears simple orders only; flex-offer bids go to many-to-many")
        fo = bid.offer
        if fo.resolution != self.resolution:
            raise _Rejected("offer.resolution", f"{fo.resolution} s differs from the session's {self.resolution} s")
        if fo.state not in _OPEN_OFFER_STATES:
            raise _Rejected("offer.state", f"an offer in state {fo.state.value} cannot be traded")
        if fo.prices is None:
            raise _Rejected("offer.prices", "a flex-offer bid needs prices (its price curve)")
        for q in range(max(p.n_slices for p in fo.profiles)):
            sp = fo.prices.for_slice(q)
            both = any(q < p.n_slices and p.slices[q].min < 0 < p.slices[q].max for p in fo.profiles)
            if both and sp.up > sp.down:
                raise _Rejected(f"offer.prices.slices[{q}]",
                                f"up {sp.up:g} above down {sp.down:g} on a slice that can consume and produce "
                                "(it would buy dearer than it sells)")
        if fo.assignment_before is not None and fo.assignment_before <= now:
            raise _Rejected("offer.assignment_before", "its assignment deadline has passed")
        try:
            prepare([fo], Objective.energy_min(), now=interval, horizon=(self.delivery_start, self.delivery_end))
        except PlanningError as e:
            path = e.path.replace("offers[0]", "offer")
            raise _Rejected(path, f"infeasible in this session: {e.reason}") from None
        return interval

    # -- clearing --------------------------------------------------------------------------------
    def clear(self, now: int) -> MarketResult:
        """Clear the closed session; bids that expired since placement are dropped with a reason."""
        self._require(SessionState.CLOSED, action="clear")
        now = check.integer(now, "now")
        live: list[tuple[Bid, int, int]] = []
        dropped: dict[str, str] = {}
        for bid, seq, interval in self.bids.values():
            expiry = bid.expiry if isinstance(bid, Order) else bid.effective_expiry
            if expiry is not None and expiry <= now:
                dropped[bid.id] = f"expiry: expired at {expiry}, before clearing at {now}"
            elif isinstance(bid, FlexOfferBid) and bid.offer.assignment_before is not None and bid.offer.assignment_before <= now:
                dropped[bid.id] = "offer.assignment_before: its assignment deadline passed before clearing"
            else:
                live.append((bid, seq, interval))
        m = self.mechanism
        if isinstance(m, OneSidedPool):
            result = self._clear_one_sided(live, m)
        elif isinstance(m, TwoSidedPool):
            result = self._clear_two_sided(live)
        else:
            result = self._clear_welfare(live, m)
        result.rejected.update(dropped)
        self.result = result
        self.state = SessionState.CLEARED
        return result

    def cleared_event(self, now: int) -> SessionCleared:
        if self.result is None:
            raise MarketError("state", "the session is not cleared")
        return SessionCleared(self.session_id, now, len(self.result.awards), len(self.result.rejected))

    def _pieces(self, live):
        """Orders as pieces (one order in one interval): owner, interval, price, volume, seq."""
        orders = [(b, s) for b, s, _ in live if isinstance(b, Order)]
        n = len(orders)
        start = np.fromiter((b.start for b, _ in orders), np.int64, n)
        counts = np.fromiter((b.end for b, _ in orders), np.int64, n) - start
        owner, local = positions(counts)
        t = start[owner] + local
        price = np.fromiter((b.price for b, _ in orders), float, n)[owner]
        vol = np.fromiter((b.volume for b, _ in orders), float, n)[owner]
        seq = np.fromiter((s for _, s in orders), np.int64, n)[owner]
        return orders, owner, t, price, vol, seq

    def _clear_one_sided(self, live, m: OneSidedPool) -> MarketResult:
        orders, owner, t, price, vol, seq = self._pieces(live)
        d0, d1 = self.delivery_start, self.delivery_end
        demand = np.array([m.demand_at(x) for x in range(d0, d1)])
        acc = merit_order(t - d0, price, vol, seq, demand, m.cutoff_price)
        marginal = np.full(d1 - d0, np.nan)
        traded = acc > EPS
        if traded.any():
            np.fmax.at(marginal, (t - d0)[traded], price[traded])
        prices = {(None, d0 + k, m.kind): float(p) for k, p in enumerate(marginal) if not math.isnan(p)}
        awards: dict[str, Award] = {}
        rejected: dict[str, str] = {}
        reservations: list[Reservation] = []
        bought = np.zeros(d1 - d0)
        paid = 0.0
        welfare = 0.0
        for i, (o, _s) in enumerate(orders):
            mine = np.flatnonzero((owner == i) & traded)
            if len(mine) == 0:
                rejected[o.id] = (f"price: {o.price:g} EUR/kWh is above the buyer's cut-off {m.cutoff_price:g}"
                                  if o.price > m.cutoff_price else "out of merit: the demand was met by cheaper offers")
                continue
            energy = {int(t[j]): -float(acc[j]) for j in mine}
            if self.pricing is Pricing.PAY_AS_BID:
                amount = -o.price * float(acc[mine].sum())
            else:
                amount = -float(sum(marginal[t[j] - d0] * acc[j] for j in mine))
            bought[t[mine] - d0] += acc[mine]
            paid -= amount
            welfare += (m.cutoff_price - o.price) * float(acc[mine].sum())
            awards[o.id] = Award(o.id, o.participant, "sell", o.kind, energy, amount)
            if o.kind is not Product.ENERGY:
                reservations.append(self._reservation(o, energy, amount, m.buyer))
        if bought.sum() > EPS:
            energy = {d0 + k: float(v) for k, v in enumerate(bought) if v > EPS}
            awards[f"{self.session_id}/demand"] = Award(f"{self.session_id}/demand", m.buyer, "buy", m.kind, energy, paid)
        return MarketResult(self.session_id, m.name, self.pricing.value, awards, rejected, prices, welfare,
                            reservations=reservations)

    def _clear_two_sided(self, live) -> MarketResult:
        orders, owner, t, price, vol, seq = self._pieces(live)
        d0 = self.delivery_start
        kind = np.fromiter((_KIND_CODE[o.kind] for o, _ in orders), np.int64, len(orders))[owner]
        is_buy = np.fromiter((o.side is Side.BUY for o, _ in orders), bool, len(orders))[owner]
        key = (t - d0) * 3 + kind
        cross = uniform_crossing(key, is_buy, vol, price, seq)
        kprice = dict(zip(cross.keys.tolist(), cross.price.tolist()))
        prices = {(None, d0 + int(k) // 3, _KINDS[int(k) % 3]): p for k, p in kprice.items() if not math.isnan(p)}
        acc = cross.accepted
        # everything per piece with arrays; Python only builds the awards
        sign = np.where(is_buy, 1.0, -1.0)
        if self.pricing is Pricing.PAY_AS_BID:
            paid = price
        else:
            paid = cross.price[np.searchsorted(cross.keys, key)] if len(key) else np.zeros(0)
        traded = acc > EPS
        n = len(orders)
        amount = sums_at(owner[traded], (sign * paid * acc)[traded], n)
        welfare = float(np.sum((sign * price * acc)[traded]))
        idx = np.flatnonzero(traded)
        idx = idx[np.argsort(owner[idx], kind="stable")]
        energy_of: dict[int, dict[int, float]] = {}
        for i, tt, e in zip(owner[idx].tolist(), t[idx].tolist(), (sign * acc)[idx].tolist()):
            energy_of.setdefault(i, {})[tt] = e
        awards: dict[str, Award] = {}
        rejected: dict[str, str] = {}
        reservations: list[Reservation] = []
        for i, (o, _s) in enumerate(orders):
            energy = energy_of.get(i)
            if energy is None:
                rejected[o.id] = ("out of merit: no seller at or below its limit price" if o.side is Side.BUY
                                  else "out of merit: no buyer at or above its limit price")
                continue
            awards[o.id] = Award(o.id, o.participant, o.side.value, o.kind, energy, float(amount[i]))
            if o.kind is not Product.ENERGY and o.side is Side.SELL:
                reservations.append(self._reservation(o, energy, float(amount[i]), f"market:{self.session_id}"))
        return MarketResult(self.session_id, self.mechanism.name, self.pricing.value, awards, rejected, prices, welfare,
                            reservations=reservations)

    def _clear_welfare(self, live, m: Union[ManyToMany, ImplicitCapacity]) -> MarketResult:
        flex = [PlacedFlex(b, s, self.participants.get(b.participant), iv) for b, s, iv in live if isinstance(b, FlexOfferBid)]
        orders = [PlacedOrder(b, s, self.participants.get(b.participant)) for b, s, _ in live if isinstance(b, Order)]
        zones = list(m.zones) if isinstance(m, ImplicitCapacity) else [None]
        links = list(m.links) if isinstance(m, ImplicitCapacity) else []
        out = clear_welfare(flex, orders, zones=zones, links=links, window=(self.delivery_start, self.delivery_end),
                            pay_as_bid=self.pricing is Pricing.PAY_AS_BID, solver=m.solver, time_limit=m.time_limit,
                            gap=m.gap)
        return MarketResult(self.session_id, m.name, self.pricing.value, out.awards, out.rejected, out.prices,
                            out.welfare, flows=out.flows, report=out.report)

    def _reservation(self, o: Order, energy: dict[int, float], amount: float, holder: str) -> Reservation:
        vol = {k: abs(v) for k, v in energy.items()}
        total = sum(vol.values())
        return Reservation(id=f"{self.session_id}/{o.id}", bid_id=o.id, provider=o.participant, holder=holder,
                           kind=o.kind, start=min(vol), end=max(vol) + 1, volume=vol,
                           price=abs(amount) / total if total > 0 else 0.0, activation_price=o.activation_price)

    # -- after clearing ------------------------------------------------------------------------------
    def activate(self, reservation_id: str, *, start: int, end: int, volume: float, now: int) -> Activation:
        """Call ``volume`` kWh per interval of [start, end) on a reservation (at most what was
        reserved in each of those intervals), paid at its activation price."""
        self._require(SessionState.CLEARED, action="activate reservations of")
        result = self.result
        if result is None:  # pragma: no cover - a cleared session always has its result
            raise MarketError("state", "the session is not cleared")
        res = next((r for r in result.reservations if r.id == reservation_id), None)
        if res is None:
            raise MarketError("reservation_id", f"no reservation {reservation_id!r} in this session")
        start, end, now = check.integer(start, "start"), check.integer(end, "end"), check.integer(now, "now")
        if end <= start:
            raise MarketError("end", "must be after start")
        if start < res.start or end > res.end:
            raise MarketError("start", f"[{start}, {end}) is outside the reservation's [{res.start}, {res.end})")
        if now >= start * self.resolution:
            raise MarketError("start", "an activation must be called before the interval it starts in")
        check.number(volume, "volume", positive=True)
        short = [t for t in range(start, end) if res.volume.get(t, 0.0) < volume - 1e-9]
        if short:
            raise MarketError("volume", f"{volume:g} kWh exceeds what was reserved at interval {short[0]} "
                                        f"({res.volume.get(short[0], 0.0):g} kWh)")
        act = Activation(id=f"{reservation_id}/a{len(self.activations)}", reservation_id=res.id, provider=res.provider,
                         holder=res.holder, kind=res.kind, start=start, end=end, volume=float(volume),
                         price=res.activation_price or 0.0)
        self.activations.append(act)
        return act

