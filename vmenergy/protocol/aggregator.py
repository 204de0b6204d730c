"""The aggregator (FMAN) engine: accept offers, aggregate, plan or trade, disaggregate, settle.

Upward, an aggregator either plans its portfolio itself (``plan``), bids its aggregates on a
market (``market``), or offers them to a parent aggregator (``parent``: it then acts like a
prosumer upward, so trees of any depth work). A bid the market rejects falls back to the
aggregator's own plan, so every accepted offer is assigned. Domain work is done by the core
packages (aggregation, planning, settlement); this module only sequences it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from vmenergy.aggregation import AggregatedFlexOffer, AggregationParams, aggregate, disaggregate
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Prices, Schedule, SlicePrice, State
from vmenergy.planning import Objective, schedule_offers
from vmenergy.planning.scheduling import SOLVERS
from vmenergy.settlement.money import cents

from .billing import correction_bill, default_contract, settle_offers
from .engine import Effect, Engine, Note, bare
from .messages import (
    Ack,
    AssignmentMessage,
    BidMessage,
    BillMessage,
    Clearing,
    MarketSessionNotice,
    Measurement,
    Message,
    OfferMessage,
    Registration,
)
from .records import AggOffer, AggregateRecord

__all__ = ["AggregatorConfig", "AggOffer", "AggregateRecord", "AggregatorEngine", "RECORDS", "objective_from"]


@dataclass(frozen=True)
class AggregatorConfig:
    """How an aggregator runs (loaded from its TOML config by the shell).

    ``enrolment``: "open" or a tuple of prosumer JIDs allowed to send offers.
    ``upstream``: "plan" | "market" | "parent"; ``upstream_jid`` the market or parent.
    ``objective``: for ``plan`` and as the fallback when a bid is rejected, e.g.
    ``{"kind": "peak"}``, ``{"kind": "target", "values": [...], "start": interval}``.
    ``cycle``: seconds between planning/bidding rounds; ``lead``: seconds an assignment must
    arrive before a schedule starts (offers that cannot be assigned in time are left out and
    rejected when their assignment deadline passes); ``settle_after``: seconds after a schedule
    ends before it is settled without a measurement (settlement flags the missing readings).
    ``bid_prices``: the price curve of the aggregator's flex-offer bids (EUR/kWh: ``up`` the most
    it pays per kWh its portfolio consumes, ``down`` the least it takes per kWh it produces).
    ``contract``: the prosumer contract table (see docs/settlement.md); default: a delegated
    contract paying for energy flexibility and activations (:func:`billing.default_contract`).
    """

    enrolment: Any = "open"
    upstream: str = "plan"
    upstream_jid: Optional[str] = None
    objective: dict = field(default_factory=lambda: {"kind": "peak"})
    aggregation: dict = field(default_factory=dict)
    cycle: int = 900
    lead: int = 900
    settle_after: int = 3600
    contract: dict = field(default_factory=dict)
    solver: str = "auto"
    bid_prices: dict = field(default_factory=lambda: {"up": 0.30, "down": 0.0})

    def __post_init__(self) -> None:
        if self.upstream not in ("plan", "market", "parent"):
            raise FlexOfferError("upstream", f"must be plan, market or parent (got {self.upstream!r})")
        if self.upstream != "plan" and not self.upstream_jid:
            raise FlexOfferError("upstream_jid", f"required when upstream is {self.upstream}")
        if self.enrolment != "open" and not isinstance(self.enrolment, (tuple, list)):
            raise FlexOfferError("enrolment", "\"open\" or a list of prosumer JIDs")
        # checked here rather than on first use, so a bad config stops the agent (and
        # `vmenergy check`) at start-up, not a round later
        for name, least in (("cycle", 1), ("lead", 0), ("settle_after", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise FlexOfferError(name, f"seconds, an integer >= {least} (got {v!r})")
        if self.solver not in SOLVERS:
            raise FlexOfferError("solver", f"unknown solver {self.solver!r} (one of {', '.join(SOLVERS)})")
        for key in ("up", "down", "mixed"):
            v = self.bid_prices.get(key, 0.0) if isinstance(self.bid_prices, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise FlexOfferError(f"bid_prices.{key}", f"a price in EUR/kWh (got {v!r})")


RECORDS = (AggOffer, AggregateRecord)

#: ``AggOffer.aggregate_id`` of an offer scheduled on its own (it could not be aggregated soundly).
SINGLE = "(single)"


def objective_from(spec: dict) -> Objective:
    """An :class:`Objective` from its config form (``{"kind": ..., ...}``)."""
    spec = dict(spec)
    kind = spec.pop("kind", "peak")
    makers: dict[str, Callable[..., Objective]] = {
        "peak": Objective.peak, "target": Objective.target, "balance": Objective.balance, "cost": Objective.cost,
        "energy_min": Objective.energy_min, "energy_max": Objective.energy_max,
        "follow_market": Objective.follow_market,
    }
    if kind not in makers:
        raise FlexOfferError("objective.kind", f"unknown objective {kind!r} (one of {', '.join(makers)})")
    try:
        return makers[kind](**spec)
    except TypeError as exc:
        raise FlexOfferError("objective", f"bad parameters for {kind}: {exc}") from None


class AggregatorEngine(Engine):
    role = "aggregator"

    def __init__(self, jid: str, config: AggregatorConfig = AggregatorConfig(), **kw) -> None:
        super().__init__(jid, **kw)
        self.config = config
        self.params = AggregationParams(**config.aggregation)
        self.upstream_jid = bare(config.upstream_jid) if config.upstream_jid else None
        self.contract = default_contract(self.jid, config.contract)
        self._aggregates: dict[str, AggregatedFlexOffer] = {}  # live objects (rebuilt after restart)
        self._restore_aggregates()

    # -- persistence of the live aggregates -----------------------------------------------
    def _restore_aggregates(self) -> None:
        """Aggregates are rebuilt from their members after a restart (aggregation is
        deterministic); one that does not come out the same is re-planned from scratch."""
        for rec in self.ledger.values("aggregates"):
            if rec.status in ("scheduled", "fallback") and all(
                (o := self.ledger.get("offers", m)) is not None and o.schedule is not None for m in rec.members
            ):
                continue
            members = [self.ledger.get("offers", m) for m in rec.members]
            if any(m is None for m in members):
                self._dissolve(rec, "member missing after restart")
                continue
            result = aggregate([m.offer for m in members], self.params)
            agg = result[0] if len(result) == 1 else None
            if agg is None or self._public(agg, rec.aggregate_id) != rec.offer:
                self._dissolve(rec, "aggregate could not be rebuilt identically after restart")
                continue
            self._aggregates[rec.aggregate_id] = agg

    def _public(self, agg: AggregatedFlexOffer, agg_id: str) -> FlexOffer:
        """The aggregate as it goes upstream: a plain offer under this aggregator's id.

        The members' acceptance deadline is the aggregator's own (it has accepted them); upstream
        the binding deadline is the members' assignment deadline, which the aggregate keeps."""
        return replace(agg.plain(), id=agg_id, issuer=self.jid, acceptance_before=None)

    def _dissolve(self, rec: AggregateRecord, why: str) -> None:
        for m in rec.members:
            o = self.ledger.get("offers", m)
            if o is not None and o.schedule is None:
                self.ledger.put("offers", m, replace(o, aggregate_id=None, note=why))
        self.ledger.delete("aggregates", rec.aggregate_id)

    # -- authorization ----------------------------------------------------------------------
    def enrolled(self, peer: str) -> bool:
        return self.config.enrolment == "open" or bare(peer) in {bare(p) for p in self.config.enrolment}

    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        if isinstance(msg, (OfferMessage, Measurement)):
            return None if self.enrolled(sender) else f"{sender} is not enrolled with this aggregator"
        if isinstance(msg, AssignmentMessage):
            if self.config.upstream == "parent" and sender == self.upstream_jid:
                return None
            return f"{sender} is not this aggregator's parent"
        if isinstance(msg, BillMessage):
            return None if sender == self.upstream_jid else f"{sender} is not this aggregator's parent or market"
        if isinstance(msg, Clearing):
            return None if sender == self.upstream_jid else f"{sender} is not this aggregator's market"
        return None

    # -- messages ---------------------------------------------------------------------------
    def on_message(self, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        if isinstance(msg, OfferMessage):
            return self._offer(sender, msg, now)
        if isinstance(msg, Measurement):
            return self._measurement(sender, msg, now)
        if isinstance(msg, AssignmentMessage):
            return self._upstream_assignment(msg.schedule, now)
        if isinstance(msg, Clearing):
            return self._clearing(msg, now)
        if isinstance(msg, BillMessage):
            self.ledger.put("upstream_bills", msg.bill_id, msg)
            return [Note("upstream-bill", {"bill": msg.bill_id, "total_cents": msg.total_cents})], None
        return [], f"an aggregator does not take {type(msg).__name__} messages"

    def on_notice(self, sender: str, msg: Message, now: int) -> list[Effect]:
        if isinstance(msg, MarketSessionNotice) and sender == self.upstream_jid:
            self.ledger.put("sessions", msg.session_id, msg)
            return [Note("market-session", {"session": msg.session_id, "state": msg.state})]
        return super().on_notice(sender, msg, now)

    def _offer(self, sender: str, msg: OfferMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        rec: Optional[AggOffer] = self.ledger.get("offers", msg.offer_id)
        if rec is not None and rec.owner != sender:
            return [], f"offer id {msg.offer_id} belongs to another prosumer"
        if msg.op == "delete":
            if rec is None:
                return [], f"unknown offer {msg.offer_id}"
            if rec.schedule is not None or rec.aggregate_id is not None:
                return [], "already aggregated or assigned; it can no longer be withdrawn"
            self.ledger.put("offers", msg.offer_id, replace(rec, offer=replace(rec.offer, state=State.WITHDRAWN)))
            return [Note("offer-withdrawn", {"offer": msg.offer_id})], None
        fo = msg.offer
        assert fo is not None
        if msg.op == "insert" and rec is not None:
            return [], f"offer {fo.id} exists; send an update with a higher version"
        if msg.op == "update":
            if rec is None:
                return [], f"unknown offer {fo.id}"
            if fo.version <= rec.offer.version:
                return [], f"stale version {fo.version} (have {rec.offer.version})"
            if rec.schedule is not None or rec.aggregate_id is not None:
                return [], "already aggregated or assigned; the update comes too late"
        reason = self._acceptance_problem(sender, fo, now)
        if reason is not None:
            return [Note("offer-rejected", {"offer": fo.id, "reason": reason})], reason
        res = fo.resolution
        accepted = replace(fo.resolve(now // res), state=State.ACCEPTED)
        self.ledger.put("offers", fo.id, AggOffer(accepted, sender, now))
        return [Note("offer-accepted", {"offer": fo.id, "from": sender})], None

    def _acceptance_problem(self, sender: str, fo: FlexOffer, now: int) -> Optional[str]:
        if fo.issuer is not None and bare(fo.issuer) != sender:
            return f"issuer {fo.issuer} is not the sender {sender}"
        if fo.acceptance_before is not None and now > fo.acceptance_before:
            return "acceptance deadline passed"
        res = fo.resolution
        resolved = fo.resolve(now // res)
        latest = resolved.latest_start()
        if latest is None or latest * res < now + self.config.lead:
            return "starts too soon to be scheduled (latest start before now + lead time)"
        if fo.assignment_before is not None and fo.assignment_before < now + 1:
            return "assignment deadline passed"
        return None

    def _measurement(self, sender: str, m: Measurement, now: int) -> tuple[list[Effect], Optional[str]]:
        rec: Optional[AggOffer] = self.ledger.get("offers", m.offer_id)
        if rec is None or rec.owner != sender:
            return [], f"unknown offer {m.offer_id}"
        if rec.schedule is None:
            return [], "no schedule was assigned for this offer"
        if m.resolution != rec.offer.resolution:
            return [], f"resolution {m.resolution} differs from the offer's {rec.offer.resolution}"
        offer = rec.offer
        if offer.state in (State.ASSIGNED, State.EXECUTING):
            offer = offer.with_state(State.EXECUTED)
        updated = replace(rec, offer=offer, measurement=m)
        self.ledger.put("offers", m.offer_id, updated)
        out: list[Effect] = [Note("measurement", {"offer": m.offer_id, "kWh": round(sum(m.energy), 6)})]
        if rec.bill_id is not None and rec.measurement is None:
            # settled as unverified while the measurement was overdue: bill the difference now
            n = self.ledger.get("meta", "bill_seq", 0) + 1
            bill = correction_bill(rec, updated, self.contract, aggregator=self.jid,
                                   bill_id=f"bill-{self.jid.split('@')[0]}-{n}", aggregates=self.ledger.table("aggregates"))
            if bill is not None:
                self.ledger.put("meta", "bill_seq", n)
                self.ledger.put("bills", bill.bill_id, (sender, bill))
                out += [Note("correction-bill", {"offer": m.offer_id, "total_cents": bill.total_cents}),
                        *self.send_reliable(sender, bill, now)]
        return out, None

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        if ack.kind == "assignment" and isinstance(msg, AssignmentMessage):
            rec: Optional[AggOffer] = self.ledger.get("offers", msg.schedule.offer_id)
            if rec is not None and rec.schedule == msg.schedule:
                self.ledger.put("offers", rec.offer.id, replace(rec, schedule_confirmed=ack.accepted,
                                                                 note=None if ack.accepted else ack.reason))
            return [Note("assignment-" + ack.status, {"offer": msg.schedule.offer_id, "reason": ack.reason})]
        if ack.kind == "bid" and isinstance(msg, BidMessage) and not ack.accepted:
            agg: Optional[AggregateRecord] = self.ledger.get("aggregates", msg.bid_id.removeprefix("bid-"))
            if agg is not None:
                return [Note("bid-rejected", {"bid": msg.bid_id, "reason": ack.reason}),
                        *self._fallback(agg, now, f"bid rejected: {ack.reason}")]
        if ack.kind == "flexoffer" and isinstance(msg, OfferMessage) and not ack.accepted:
            agg = self.ledger.get("aggregates", msg.offer_id)
            if agg is not None:
                return [Note("parent-rejected", {"aggregate": msg.offer_id, "reason": ack.reason}),
                        *self._fallback(agg, now, f"parent rejected: {ack.reason}")]
        return []

    # -- the planning/bidding round ----------------------------------------------------------
    def on_tick(self, now: int) -> list[Effect]:
        out: list[Effect] = []
        if self.config.upstream == "market" and not self.ledger.get("meta", "registration_sent", False):
            self.ledger.put("meta", "registration_sent", True)
            out += self.send_reliable(self.upstream_jid, Registration("register", self.jid, "seller"), now)  # type: ignore[arg-type]
        due = self.ledger.get("meta", "next_cycle", 0)
        if now >= due:
            self.ledger.put("meta", "next_cycle", now + self.config.cycle)
            out += self._cycle(now)
        out += self._expire(now)
        out += self._settle(now)
        return out

    def on_next_due(self, now: int) -> Optional[int]:
        """The next cycle, the first expiry of an unassigned offer, and the first settlement
        (at once for a measured schedule, ``settle_after`` past its end otherwise)."""
        times: list[int] = []
        if self.config.upstream == "market" and not self.ledger.get("meta", "registration_sent", False):
            times.append(now)
        times.append(self.ledger.get("meta", "next_cycle", 0))
        for rec in self.ledger.values("offers"):
            fo = rec.offer
            if fo.state is State.ACCEPTED and rec.aggregate_id is None:
                times.append(self._assignment_deadline(fo) + 1)
            elif rec.bill_id is None and rec.schedule is not None and rec.schedule_confirmed:
                end = (rec.schedule.start + fo.profiles[rec.schedule.profile].duration) * fo.resolution
                times.append(now if rec.measurement is not None else end + self.config.settle_after)
        return min(times)

    @staticmethod
    def _assignment_deadline(fo: FlexOffer) -> int:
        """The last moment (epoch seconds) an accepted offer can still be assigned."""
        return fo.assignment_before if fo.assignment_before is not None else (fo.latest_start() or 0) * fo.resolution

    def _pending(self, now: int) -> list[AggOffer]:
        out = []
        for rec in self.ledger.values("offers"):
            if rec.offer.state is not State.ACCEPTED or rec.aggregate_id is not None:
                continue
            if not self.is_available(rec.owner):
                continue  # an offline prosumer's offers stay out of new aggregates
            out.append(rec)
        return sorted(out, key=lambda r: r.offer.id)

    def _cycle(self, now: int) -> list[Effect]:
        pending = self._pending(now)
        if not pending:
            return []
        session = None
        out: list[Effect] = []
        if self.config.upstream == "market":
            session = self._open_session(now)
            # bid what this session can deliver; the rest waits for a later session unless it
            # would then be too late (also when no session is open now), in which case the
            # aggregator plans it itself
            fits, late = [], []
            for r in pending:
                if session is not None and _fits(r.offer, session):
                    fits.append(r)
                elif (r.offer.latest_start() or 0) * r.offer.resolution < now + self.config.lead + 2 * self.config.cycle:
                    late.append(r)
            if late:
                out += [Note("plan-without-market", {"offers": len(late)}), *self._aggregate_and_plan(late, now)]
            if session is None:
                waiting = len(pending) - len(late)
                return out + ([Note("waiting-for-market", {"offers": waiting})] if waiting else [])
            pending = fits
            if not pending:
                return out
        result = aggregate([r.offer for r in pending], self.params)
        out.append(Note("aggregated", {"offers": len(pending), "aggregates": len(result),
                                       "excluded": len(result.excluded)}))
        for offer_id, why in result.excluded.items():
            out.append(Note("excluded", {"offer": offer_id, "reason": why}))
        if result.excluded:  # what cannot be aggregated soundly is scheduled on its own
            out += self._plan_individually([r for r in pending if r.offer.id in result.excluded], now)
        records = self._record_aggregates(result, session)
        if self.config.upstream == "plan":
            out += self._plan(records, now)
        elif self.config.upstream == "market":
            for rec in records:
                self.ledger.put("aggregates", rec.aggregate_id, replace(rec, status="bidding"))
                priced = replace(rec.offer, prices=self._bid_prices(rec.offer))
                side = "buy" if priced.direction == "consumption" else "sell"
                bid = BidMessage(f"bid-{rec.aggregate_id}", session.session_id, side, offer=priced)  # type: ignore[union-attr]
                out += self.send_reliable(self.upstream_jid, bid, now)  # type: ignore[arg-type]
        else:
            for rec in records:
                self.ledger.put("aggregates", rec.aggregate_id, replace(rec, status="offered"))
                out += self.send_reliable(self.upstream_jid, OfferMessage("insert", rec.offer.id, rec.offer), now)  # type: ignore[arg-type]
        return out

    def _record_aggregates(self, result, session: Optional[MarketSessionNotice]) -> list[AggregateRecord]:
        n = self.ledger.get("meta", "aggregate_seq", 0)
        records: list[AggregateRecord] = []
        for agg in result:
            n += 1
            agg_id = f"{self.jid.split('@')[0]}-agg-{n}"
            rec = AggregateRecord(agg_id, self._public(agg, agg_id), tuple(agg.member_ids), "new",
                                  session.session_id if session else None)
            self._aggregates[agg_id] = agg
            records.append(rec)
            for m in agg.member_ids:
                o = self.ledger.get("offers", m)
                self.ledger.put("offers", m, replace(o, aggregate_id=agg_id))
        self.ledger.put("meta", "aggregate_seq", n)
        return records

    def _aggregate_and_plan(self, recs: list[AggOffer], now: int) -> list[Effect]:
        result = aggregate([r.offer for r in recs], self.params)
        out: list[Effect] = []
        if result.excluded:
            out += self._plan_individually([r for r in recs if r.offer.id in result.excluded], now)
        records = [replace(r, status="fallback") for r in self._record_aggregates(result, None)]
        return out + self._plan(records, now)

    def _plan_individually(self, recs: list[AggOffer], now: int) -> list[Effect]:
        objective = objective_from(self.config.objective)
        result = schedule_offers([r.offer for r in recs], objective, solver=self.config.solver,
                                 now=now // recs[0].offer.resolution)
        out: list[Effect] = [Note("planned-individually", {"offers": len(recs), "solver": result.solver})]
        for r, s in zip(recs, result.schedules):
            self.ledger.put("offers", r.offer.id, replace(r, aggregate_id=SINGLE))
            out += self._send_assignment(r.offer.id, s, now)
        return out

    def _send_assignment(self, offer_id: str, part: Schedule, now: int) -> list[Effect]:
        o: AggOffer = self.ledger.get("offers", offer_id)
        update = 0 if o.schedule is None else o.schedule.update_id + 1
        s = Schedule(offer_id, part.start, part.energy, f"s-{offer_id}", update, part.profile, part.resolution)
        offer = o.offer.with_state(State.ASSIGNED) if o.offer.state is State.ACCEPTED else o.offer
        self.ledger.put("offers", offer_id, replace(o, offer=offer, schedule=s, schedule_confirmed=False))
        return self.send_reliable(o.owner, AssignmentMessage(s), now)

    def _bid_prices(self, offer: FlexOffer) -> Prices:
        """The aggregator's price curve for a bid. A portfolio that can both consume and produce
        (batteries) gets one indifference price, so it never buys dearer than it sells."""
        up, down = float(self.config.bid_prices["up"]), float(self.config.bid_prices["down"])
        if offer.direction == "mixed":
            mid = float(self.config.bid_prices.get("mixed", (up + down) / 2))
            up = down = mid
        return Prices((SlicePrice(up, down),))

    def _open_session(self, now: int) -> Optional[MarketSessionNotice]:
        sessions = [s for s in self.ledger.values("sessions") if s.state == "open" and s.gate_closure > now]
        return min(sessions, key=lambda s: s.gate_closure) if sessions else None

    def _plan(self, records: list[AggregateRecord], now: int, objective: Optional[Objective] = None) -> list[Effect]:
        if not records:
            return []
        objective = objective or objective_from(self.config.objective)
        offers = [r.offer for r in records]
        # nothing may be scheduled to start before the current interval
        result = schedule_offers(offers, objective, solver=self.config.solver, now=now // offers[0].resolution)
        out: list[Effect] = [Note("planned", {"aggregates": len(records), "solver": result.solver,
                                              "objective": round(result.objective, 6)})]
        for rec, schedule in zip(records, result.schedules):
            self.ledger.put("aggregates", rec.aggregate_id, replace(rec, status="scheduled" if rec.status != "fallback" else "fallback",
                                                                    schedule=schedule))
            out += self._assign(rec.aggregate_id, schedule, now)
        return out

    def _fallback(self, rec: AggregateRecord, now: int, why: str) -> list[Effect]:
        rec = replace(rec, status="fallback")
        self.ledger.put("aggregates", rec.aggregate_id, rec)
        return [Note("fallback-plan", {"aggregate": rec.aggregate_id, "why": why}), *self._plan([rec], now)]

    def _assign(self, agg_id: str, schedule: Schedule, now: int) -> list[Effect]:
        """Disaggregate an aggregate's schedule and send each member its assignment."""
        agg = self._aggregates.get(agg_id)
        rec: AggregateRecord = self.ledger.get("aggregates", agg_id)
        if agg is None:
            return [Note("assign-failed", {"aggregate": agg_id, "why": "aggregate not available"})]
        inner = Schedule(agg.id, schedule.start, schedule.energy, schedule.schedule_id or f"s-{agg_id}",
                         schedule.update_id, schedule.profile, schedule.resolution)
        try:
            parts = disaggregate(agg, inner)
        except FlexOfferError as exc:
            return [Note("assign-failed", {"aggregate": agg_id, "why": str(exc)})]
        out: list[Effect] = []
        for offer_id, part in parts.items():
            out += self._send_assignment(offer_id, part, now)
        self.ledger.put("aggregates", agg_id, replace(rec, schedule=schedule))
        out.append(Note("assigned", {"aggregate": agg_id, "members": len(parts)}))
        return out

    def _upstream_assignment(self, schedule: Schedule, now: int) -> tuple[list[Effect], Optional[str]]:
        rec: Optional[AggregateRecord] = self.ledger.get("aggregates", schedule.offer_id)
        if rec is None:
            return [], f"unknown aggregate {schedule.offer_id}"
        violations = rec.offer.check(schedule)
        if violations:
            return [], "infeasible: " + "; ".join(str(v) for v in violations)
        self.ledger.put("aggregates", rec.aggregate_id, replace(rec, status="scheduled"))
        return self._assign(rec.aggregate_id, schedule, now), None

    def _clearing(self, c: Clearing, now: int) -> tuple[list[Effect], Optional[str]]:
        agg_id = c.bid_id.removeprefix("bid-")
        rec: Optional[AggregateRecord] = self.ledger.get("aggregates", agg_id)
        if rec is None:
            return [], f"unknown bid {c.bid_id}"
        if c.status == "rejected" or c.schedule is None:
            return self._fallback(rec, now, f"not cleared: {c.reason or c.status}"), None
        violations = rec.offer.check(c.schedule)
        if violations:
            return self._fallback(rec, now, "cleared schedule infeasible"), None
        # what the portfolio earned on the market: + for energy sold, - for energy bought
        sold = sum(e for e in c.schedule.energy if e < 0)
        bought = sum(e for e in c.schedule.energy if e > 0)
        revenue = cents((c.price or 0.0) * (-sold - bought))
        self.ledger.put("aggregates", agg_id, replace(rec, status="scheduled", revenue_cents=revenue))
        return [Note("cleared", {"bid": c.bid_id, "volume": c.volume, "price": c.price}),
                *self._assign(agg_id, c.schedule, now)], None

    # -- deadlines and settlement --------------------------------------------------------------
    def _expire(self, now: int) -> list[Effect]:
        """Accepted offers whose assignment deadline (or latest start) passed unassigned."""
        out: list[Effect] = []
        for rec in self.ledger.values("offers"):
            if rec.offer.state is not State.ACCEPTED or rec.aggregate_id is not None:
                continue
            fo = rec.offer
            if now > self._assignment_deadline(fo):
                self.ledger.put("offers", fo.id, replace(rec, offer=fo.with_state(State.REJECTED), note="not assigned in time"))
                out.append(Note("offer-expired", {"offer": fo.id}))
        return out

    def _settle(self, now: int) -> list[Effect]:
        ready = []
        for rec in self.ledger.values("offers"):
            if rec.bill_id is not None or rec.schedule is None or not rec.schedule_confirmed:
                continue
            end = (rec.schedule.start + rec.offer.profiles[rec.schedule.profile].duration) * rec.offer.resolution
            if rec.measurement is not None or now >= end + self.config.settle_after:
                ready.append(rec)
        if not ready:
            return []
        n = self.ledger.get("meta", "bill_seq", 0)
        bills, summary = settle_offers(ready, self.contract, aggregator=self.jid, first_bill=n + 1,
                                       aggregates=self.ledger.table("aggregates"))
        self.ledger.put("meta", "bill_seq", n + len(bills))
        out: list[Effect] = [Note("settled", summary)]
        for owner, bill, offer_ids in bills:
            for offer_id in offer_ids:
                o = self.ledger.get("offers", offer_id)
                offer = o.offer
                if offer.state is State.ASSIGNED:  # no measurement in time: settled as unverified
                    offer = offer.with_state(State.EXECUTED)
                offer = offer.with_state(State.SETTLED)
                self.ledger.put("offers", offer_id, replace(o, offer=offer, bill_id=bill.bill_id))
            self.ledger.put("bills", bill.bill_id, (owner, bill))
            out += self.send_reliable(owner, bill, now)
        return out

    # -- reporting -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for rec in self.ledger.values("offers"):
            c[rec.offer.state.value] = c.get(rec.offer.state.value, 0) + 1
        return c

    def status(self) -> str:
        c = self.counts()
        n = sum(c.values())
        assigned = sum(c.get(s, 0) for s in ("assigned", "executing", "executed", "settled"))
        aggs = len(self.ledger.table("aggregates"))
        return f"{n} offers, {assigned} assigned, {aggs} aggregates, {c.get('settled', 0)} settled"


def _fits(offer: FlexOffer, session: MarketSessionNotice) -> bool:
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
