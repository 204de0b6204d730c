"""The aggregator's side of a DSO's flex requests, grouped by congestion point.

An aggregator knows where its prosumers are (``locations``: prosumer JID -> congestion point)
and which DSO runs each point (``dsos``: point -> DSO JID). Its offers behind a point a DSO runs
are *held* instead of planned at once, so that the DSO can see them: when a
:class:`FlexRequestMessage` for the point comes, the held offers whose windows fit the request's
intervals are aggregated (per point: an aggregate never mixes points) and offered in a
:class:`FlexReplyMessage` with the prognosis (their default load, and the load already
scheduled behind the point). The DSO's :class:`FlexOrderMessage` then either gives the
aggregates their schedules (checked: each must be feasible for its aggregate) or declines them;
declined ones are planned by the aggregator itself within the request's limits. After delivery
the aggregator reports the order's metered load (the sum over the members' measurements) and the
DSO pays with a :class:`FlexSettlementMessage`.

An offer held until its assignment deadline is near (fewer than two rounds left) is planned as
usual, without the DSO, so a DSO that never asks cannot strand offers; likewise aggregates
offered to a DSO that has not answered a round before their first member's deadline are planned
by the aggregator itself, within the request's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Optional, Protocol, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule, State
from vmenergy.planning import CapacityLimit, PlanningError, schedule_offers

from .engine import META, Effect, Note, Table, bare
from .gridload import default_load, place, schedule_load
from .ledger import Ledger
from .messages import (
    Ack,
    FlexOrderMessage,
    FlexReplyMessage,
    FlexRequestMessage,
    FlexSettlementMessage,
    Measurement,
    Message,
)
from .records import AggOffer

__all__ = ["FlexPortfolio", "FlexReplyRecord", "FLEX_REPLIES", "DsoSide", "DSO_MESSAGES"]

#: The messages only an aggregator's DSO may send it.
DSO_MESSAGES = (FlexRequestMessage, FlexOrderMessage, FlexSettlementMessage)


@dataclass(frozen=True, slots=True)
class FlexReplyRecord:
    """A flex request answered: the request, the reply sent, and what became of it (``status``:
    offered | ordered | declined | unanswered), the order, whether its metering went out, its settlement."""

    request: FlexRequestMessage
    reply: FlexReplyMessage
    dso: str
    status: str = "offered"
    order: Optional[FlexOrderMessage] = None
    metered: bool = False
    settlement: Optional[FlexSettlementMessage] = None


#: The aggregator's answers to flex requests, by reply id.
FLEX_REPLIES: Table[FlexReplyRecord] = Table("flex_replies", FlexReplyRecord)


class FlexPortfolio(Protocol):
    """The aggregator engine as its DSO side sees it."""

    jid: str
    ledger: Ledger

    def send_reliable(self, to: str, msg: Message, now: int) -> list[Effect]: ...

    def is_available(self, peer: str) -> bool: ...

    def offer_records(self) -> list[AggOffer]: ...

    def offer_record(self, offer_id: str) -> Optional[AggOffer]: ...

    def aggregate_members(self, aggregate_id: str) -> tuple[str, ...]: ...

    def aggregate_offer(self, aggregate_id: str) -> Optional[FlexOffer]: ...

    def aggregate_for(self, offer_ids: Sequence[str], status: str,
                      now: int) -> tuple[list[Effect], list[tuple[str, FlexOffer]]]:
        """Aggregate these accepted offers (what cannot be aggregated is planned on its own) and
        record the aggregates with ``status``: (effects, [(aggregate id, offer)])."""

    def mark_aggregate(self, aggregate_id: str, status: str, *, revenue_cents: Optional[int] = None) -> None: ...

    def assign_aggregate(self, aggregate_id: str, schedule: Schedule, now: int) -> list[Effect]: ...

    def plan_aggregates(self, aggregate_ids: Sequence[str], now: int) -> list[Effect]: ...

    def planning_objective(self): ...

    def pass_on_dso_payment(self, aggregate_ids: Sequence[str], msg: FlexSettlementMessage, now: int) -> list[Effect]: ...


class DsoSide:
    """What an aggregator does with its DSOs; inactive (changes nothing) without ``dsos``."""

    def __init__(self, locations: Mapping[str, str], dsos: Mapping[str, str], *, cycle: int, solver: str = "auto") -> None:
        self.point_of = {bare(k): str(v) for k, v in locations.items()}
        self.dso_of = {str(k): bare(v) for k, v in dsos.items()}
        self.cycle = cycle
        self.solver = solver

    @property
    def active(self) -> bool:
        return bool(self.dso_of)

    def managed_point(self, owner: str) -> Optional[str]:
        """The congestion point of ``owner`` if a DSO runs it, else None."""
        point = self.point_of.get(bare(owner))
        return point if point in self.dso_of else None

    # -- who may send what -------------------------------------------------------------------
    def authorize(self, sender: str, msg: Message) -> Optional[str]:
        if sender not in self.dso_of.values():
            return f"{sender} is not a DSO of this aggregator"
        point = getattr(msg, "point", None)
        if point is not None and self.dso_of.get(point) != sender:
            return f"{sender} is not the DSO of congestion point {point}"
        return None

    # -- the round: hold what a DSO should see ----------------------------------------------
    def hold(self, pending: list[AggOffer], now: int) -> tuple[list[AggOffer], list[Effect]]:
        """The pending offers the round may plan; the rest wait for their DSO's request."""
        if not self.active:
            return pending, []
        out, held = [], 0
        for rec in pending:
            point = self.managed_point(rec.owner)
            if point is not None and now + 2 * self.cycle < _deadline(rec.offer):
                held += 1
                continue
            out.append(rec)
        return out, ([Note("held-for-dso", {"offers": held})] if held else [])

    # -- messages from the DSO ----------------------------------------------------------------
    def on_message(self, p: FlexPortfolio, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        if isinstance(msg, FlexRequestMessage):
            return self._request(p, sender, msg, now)
        if isinstance(msg, FlexOrderMessage):
            return self._order(p, sender, msg, now)
        if isinstance(msg, FlexSettlementMessage):
            return self._settlement(p, sender, msg, now)
        return [], f"an aggregator does not take {type(msg).__name__} messages from its DSO"

    def _request(self, p: FlexPortfolio, dso: str, req: FlexRequestMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        if req.point not in set(self.point_of.values()):
            return [], f"no prosumers of this aggregator are behind congestion point {req.point}"
        recs = [r for r in p.offer_records()
                if r.offer.state is State.ACCEPTED and r.aggregate_id is None and p.is_available(r.owner)
                and self.point_of.get(r.owner) == req.point and _fits(r.offer, req)]
        recs.sort(key=lambda r: r.offer.id)
        effects: list[Effect] = []
        aggregates: list[tuple[str, FlexOffer]] = []
        if recs:
            effects, aggregates = p.aggregate_for([r.offer.id for r in recs], "dso", now)
        T = len(req.max_kwh)
        baseline = np.zeros(T)
        members = {m for a, _ in aggregates for m in p.aggregate_members(a)}
        for r in recs:
            if r.offer.id in members:
                place(baseline, req.start, *default_load(r.offer))
        committed = self._committed(p, req.point, req.start, T)
        meta = p.ledger[META]
        n = meta.get("flex_reply_seq", 0) + 1
        meta.put("flex_reply_seq", n)
        reply = FlexReplyMessage(f"{p.jid.split('@')[0]}-reply-{n}", req.request_id, req.point, req.start,
                                 tuple(round(float(x), 9) for x in baseline), tuple(round(float(x), 9) for x in committed),
                                 tuple(fo for _, fo in aggregates), req.resolution)
        p.ledger[FLEX_REPLIES].put(reply.reply_id, FlexReplyRecord(req, reply, dso))
        return [*effects, Note("flex-reply", {"request": req.request_id, "aggregates": len(aggregates)}),
                *p.send_reliable(dso, reply, now)], None

    def _committed(self, p: FlexPortfolio, point: str, start: int, T: int) -> np.ndarray:
        """Load already scheduled behind ``point`` over ``start .. start + T``."""
        out = np.zeros(T)
        for r in p.offer_records():
            if r.schedule is not None and self.point_of.get(r.owner) == point and \
                    r.offer.state not in (State.REJECTED, State.WITHDRAWN):
                place(out, start, *schedule_load(r.offer, r.schedule))
        return out

    def _order(self, p: FlexPortfolio, dso: str, order: FlexOrderMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        rec = p.ledger[FLEX_REPLIES].get(order.reply_id)
        if rec is None or rec.dso != dso:
            return [], f"no flex reply {order.reply_id} was sent to {dso}"
        if rec.status != "offered":
            return [], f"flex reply {order.reply_id} was {rec.status} already"
        if order.point != rec.reply.point:
            return [], f"point {order.point} differs from the reply's {rec.reply.point}"
        ids = [fo.id for fo in rec.reply.offers]
        schedules: dict[str, Schedule] = {}
        for i, s in enumerate(order.schedules):
            if s.offer_id not in ids:
                return [], f"assignment[{i}]: {s.offer_id} is not an offer of flex reply {order.reply_id}"
            if s.offer_id in schedules:
                return [], f"assignment[{i}]: a second schedule for {s.offer_id}"
            fo = p.aggregate_offer(s.offer_id)
            if fo is None:
                return [], f"assignment[{i}]: aggregate {s.offer_id} is no longer held"
            problems = fo.check(s)
            if problems:
                return [], f"assignment[{i}]: not feasible for {s.offer_id}: {problems[0]}"
            schedules[s.offer_id] = s
        out: list[Effect] = [Note("flex-order", {"order": order.order_id, "status": order.status,
                                                 "kWh": order.ordered_kwh})]
        for agg_id, s in schedules.items():
            p.mark_aggregate(agg_id, "scheduled")
            out += p.assign_aggregate(agg_id, s, now)
        rest = [a for a in ids if a not in schedules]
        if rest:  # declined, or not needed by the DSO: planned here, within the request's limits
            out += self._plan_within(p, rest, rec, now)
        status = "ordered" if order.status == "ordered" else "declined"
        p.ledger[FLEX_REPLIES].put(order.reply_id, replace(rec, status=status, order=order))
        return out, None

    def _plan_within(self, p: FlexPortfolio, agg_ids: list[str], rec: FlexReplyRecord, now: int) -> list[Effect]:
        objective = p.planning_objective()
        if objective is None:  # a user's planning class: its own plan, without the DSO's limits
            return [Note("flex-limits-not-applied", {"aggregates": len(agg_ids)}), *p.plan_aggregates(agg_ids, now)]
        req = rec.request
        offers = [p.aggregate_offer(a) for a in agg_ids]
        committed = np.asarray(rec.reply.committed)
        upper = (np.asarray(req.max_kwh) - committed).tolist()
        lower = None if req.min_kwh is None else (np.asarray(req.min_kwh) - committed).tolist()
        try:
            result = schedule_offers([fo for fo in offers if fo is not None], objective, solver=self.solver,
                                     now=now // req.resolution,
                                     capacity=[CapacityLimit(req.point, upper=upper, lower=lower, start=req.start)],
                                     congestion_points={a: req.point for a in agg_ids})
        except PlanningError as exc:
            return [Note("flex-plan-failed", {"why": str(exc)}), *p.plan_aggregates(agg_ids, now)]
        out: list[Effect] = [Note("planned-within-limits", {"aggregates": len(agg_ids), "point": req.point})]
        for s in result.schedules:
            p.mark_aggregate(s.offer_id, "fallback")
            out += p.assign_aggregate(s.offer_id, s, now)
        return out

    def _settlement(self, p: FlexPortfolio, dso: str, msg: FlexSettlementMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        for reply_id, rec in p.ledger[FLEX_REPLIES].items():
            if rec.order is not None and rec.order.order_id == msg.order_id and rec.dso == dso:
                if rec.settlement is not None:
                    return [], (f"flex order {msg.order_id} was settled already "
                                f"({rec.settlement.settlement_id})")
                p.ledger[FLEX_REPLIES].put(reply_id, replace(rec, settlement=msg))
                out: list[Effect] = [Note("flex-settlement", {"order": msg.order_id, "total_cents": msg.total_cents})]
                return out + p.pass_on_dso_payment([s.offer_id for s in rec.order.schedules], msg, now), None
        return [], f"no flex order {msg.order_id} from {dso}"

    def on_ack(self, p: FlexPortfolio, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        return [Note(f"{msg.element}-{ack.status}", {"from": sender, "ref": ack.ref, "reason": ack.reason})]

    # -- metering to the DSO -----------------------------------------------------------------
    def _metering_state(self, p: FlexPortfolio, rec: FlexReplyRecord) -> tuple[bool, np.ndarray]:
        """(every member measured, the metered load of the order over the request's intervals;
        a member without a reading counts its default load: nothing delivered)."""
        req = rec.request
        T = len(req.max_kwh)
        measured = np.zeros(T)
        complete = True
        for fo in rec.reply.offers:
            for m in p.aggregate_members(fo.id):
                o = p.offer_record(m)
                if o is None:
                    continue
                if o.measurement is not None:
                    place(measured, req.start, o.measurement.start, np.asarray(o.measurement.energy))
                else:
                    complete = False
                    place(measured, req.start, *default_load(o.offer))
        return complete, measured

    def _answer_deadline(self, p: FlexPortfolio, rec: FlexReplyRecord) -> Optional[int]:
        """When an offered reply's aggregates must be planned without the DSO: a round before
        the first assignment deadline of their members (None: nothing offered)."""
        times = [_deadline(o.offer) for fo in rec.reply.offers for m in p.aggregate_members(fo.id)
                 if (o := p.offer_record(m)) is not None]
        return min(times) - self.cycle if times else None

    def next_due(self, p: FlexPortfolio, settle_after: int, now: int) -> Optional[int]:
        # asked after every engine step: only the replies still open or metering are looked at
        times = []
        for rec in p.ledger[FLEX_REPLIES].values():
            if rec.status == "offered":
                due = self._answer_deadline(p, rec)
                if due is not None:
                    times.append(due)
            if rec.status == "ordered" and not rec.metered:
                complete, _ = self._metering_state(p, rec)
                times.append(now if complete else rec.request.end * rec.request.resolution + settle_after)
        return min(times) if times else None

    def on_tick(self, p: FlexPortfolio, settle_after: int, now: int) -> list[Effect]:
        out: list[Effect] = []
        for reply_id, rec in p.ledger[FLEX_REPLIES].items():
            if rec.status == "offered":
                due = self._answer_deadline(p, rec)
                if due is not None and now >= due:  # the DSO did not answer in time
                    p.ledger[FLEX_REPLIES].put(reply_id, replace(rec, status="unanswered"))
                    out += [Note("flex-reply-unanswered", {"reply": reply_id, "dso": rec.dso}),
                            *self._plan_within(p, [fo.id for fo in rec.reply.offers], rec, now)]
            if rec.status != "ordered" or rec.metered or rec.order is None:
                continue
            complete, measured = self._metering_state(p, rec)
            if not complete and now < rec.request.end * rec.request.resolution + settle_after:
                continue
            m = Measurement(f"m-{rec.order.order_id}", rec.order.order_id, rec.request.start,
                            tuple(round(float(x), 9) for x in measured), rec.request.resolution)
            p.ledger[FLEX_REPLIES].put(reply_id, replace(rec, metered=True))
            out += [Note("flex-metering", {"order": rec.order.order_id, "complete": complete}),
                    *p.send_reliable(rec.dso, m, now)]
        return out


def _deadline(fo: FlexOffer) -> int:
    """The last moment (epoch seconds) an accepted offer can still be assigned."""
    return fo.assignment_before if fo.assignment_before is not None else (fo.latest_start() or 0) * fo.resolution


def _fits(fo: FlexOffer, req: FlexRequestMessage) -> bool:
    first, last = fo.earliest_start(), fo.latest_start()
    if first is None or last is None or fo.resolution != req.resolution:
        return False
    return req.start <= first and last + max(pr.duration for pr in fo.profiles) <= req.end
