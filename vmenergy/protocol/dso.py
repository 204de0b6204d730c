"""The DSO engine: congestion points, flex requests, orders and verified settlement.

A distribution system operator keeps the load at each of its *congestion points* (a feeder, a
transformer) within a capacity limit per interval. It does so the USEF way, with the messages
of :mod:`vmenergy.protocol.messages` (UFTP names in docs/protocol.md):

1. every ``request_every`` it sends each aggregator with prosumers behind a point a
   :class:`FlexRequestMessage`: the limits over the next ``horizon`` and its price;
2. the aggregator answers with a :class:`FlexReplyMessage`: the aggregated flex-offers of its
   prosumers behind the point and its prognosis (the load they take without flexibility, and
   the load already scheduled there);
3. when the answers are due (``respond_within``) it plans all offers behind the point together
   (:func:`vmenergy.planning.schedule_offers`, staying as close to the baselines as the limit
   allows: the least flexibility that removes the congestion) and answers each reply with a
   :class:`FlexOrderMessage`: ``ordered`` with the schedules, or ``declined`` when the
   baselines stay within the limit or its offers are not needed;
4. after delivery the aggregator reports the metered load of the order (a
   :class:`Measurement` whose ``offer_id`` is the order id), and the DSO checks it against the
   baseline (eDREAM's closed loop): delivery within the ``tolerance`` band earns the full
   incentive, a shortfall beyond it is paid for what was delivered and penalised per kWh
   missing; the result goes out as a :class:`FlexSettlementMessage`.

Only the aggregators the DSO knows (``aggregators``) may answer; anyone else is refused with
the reason. The planner's limit is the point's limit less a ``safety`` margin, so metering
noise does not take the measured load over the real limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Union

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION
from vmenergy.planning import CapacityLimit, Objective, PlanningError, schedule_offers
from vmenergy.planning.scheduling import SOLVERS
from vmenergy.settlement.money import cents

from .engine import META, Effect, Engine, Note, Table, TimedStep, bare, handles
from .gridload import place, schedule_load
from .messages import (
    FlexOrderMessage,
    FlexReplyMessage,
    FlexRequestMessage,
    FlexSettlementMessage,
    Measurement,
    Message,
)

__all__ = ["CongestionPoint", "DsoConfig", "DsoEngine", "DsoRequest", "DsoReply", "DsoOrder",
           "DSO_REQUESTS", "DSO_REPLIES", "DSO_ORDERS"]


DAY = 86400
Limit = Union[float, tuple[float, ...]]


@dataclass(frozen=True)
class CongestionPoint:
    """A point of the grid with a capacity per interval: ``limit`` kWh of import (the load the
    feeder carries), and optionally ``lower`` (usually negative: the most export it takes).
    Each is one number for every interval, or a day's profile: values spread evenly over the
    day in UTC (24 hourly values, 96 quarter hours, ...), the same every day."""

    name: str
    limit: Limit
    lower: Optional[Limit] = None
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        path = f"points.{self.name}"
        check.identifier(self.name, "points")
        res = check.integer(self.resolution, "resolution", minimum=1)
        object.__setattr__(self, "limit", _profile(self.limit, f"{path}.limit", res, positive=True))
        if self.lower is not None:
            object.__setattr__(self, "lower", _profile(self.lower, f"{path}.lower", res))
            day = DAY // self.resolution
            above = np.flatnonzero(self.lower_at(0, day) > self.upper_at(0, day))
            if len(above):
                raise FlexOfferError(f"{path}.lower", f"above the limit at {_hhmm(int(above[0]) * self.resolution)} UTC")

    def upper_at(self, start: int, length: int) -> np.ndarray:
        """The import limit over intervals ``start .. start + length``."""
        return _over(self.limit, start, length, self.resolution)

    def lower_at(self, start: int, length: int) -> Optional[np.ndarray]:
        return None if self.lower is None else _over(self.lower, start, length, self.resolution)


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _profile(value: Any, path: str, resolution: int, positive: bool = False) -> Limit:
    """A number, or a day's profile whose values split the day into whole intervals."""
    if isinstance(value, (list, tuple)):
        values = check.numbers(value, path, at_least=1, at_most=DAY)
        if DAY % len(values) or (DAY // len(values)) % resolution:
            raise FlexOfferError(path, f"{len(values)} values do not split a day into whole intervals of "
                                       f"{resolution} s (24 hourly values, 96 quarter hours, ...)")
        if positive and min(values) <= 0:
            raise FlexOfferError(path, "every value must be > 0 (kWh per interval)")
        return tuple(values)
    return check.number(value, path, positive=positive)


def _over(limit: Limit, start: int, length: int, resolution: int) -> np.ndarray:
    if not isinstance(limit, tuple):
        return np.full(length, float(limit))
    second_of_day = (np.arange(start, start + length, dtype=np.int64) * resolution) % DAY
    return np.asarray(limit)[second_of_day * len(limit) // DAY]


@dataclass(frozen=True)
class DsoConfig:
    """How a DSO runs (a scenario's ``[[dso]]`` table or an agent's ``[dso]`` section).

    ``points``: congestion point name -> ``{limit = kWh per interval, lower = ...}`` (each a
    number, or a day's profile in UTC: see :class:`CongestionPoint`).
    ``aggregators``: aggregator JID -> the points it has prosumers behind (a scenario fills it
    in from its topology); only these may answer. ``price``: EUR per kWh of load taken off the
    baseline in an order; ``penalty``: EUR per kWh of shortfall beyond ``tolerance`` (a fraction
    of the ordered kWh). ``safety``: fraction of the limit kept free when planning.
    ``request_every``, ``horizon``, ``respond_within``, ``settle_after``: seconds (requests go
    out every ``request_every`` for the next ``horizon``; answers are due ``respond_within``
    later; an order without metering is settled ``settle_after`` past its end as not delivered).
    """

    points: Mapping[str, Any] = field(default_factory=dict)
    aggregators: Mapping[str, Any] = field(default_factory=dict)
    price: float = 0.10
    penalty: float = 0.20
    tolerance: float = 0.10
    safety: float = 0.05
    request_every: int = 3600
    horizon: int = 86400
    respond_within: int = 900
    settle_after: int = 3600
    resolution: int = DEFAULT_RESOLUTION
    solver: str = "auto"

    def __post_init__(self) -> None:
        # scalars first: `vmenergy check` reports every error by leaving a bad key out and building again
        check.number(self.price, "price", minimum=0)
        check.number(self.penalty, "penalty", minimum=0)
        check.number(self.tolerance, "tolerance", minimum=0, maximum=1)
        check.number(self.safety, "safety", minimum=0, maximum=0.9)
        for name, least in (("request_every", 1), ("horizon", 1), ("respond_within", 0), ("settle_after", 0),
                            ("resolution", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise FlexOfferError(name, f"seconds, an integer >= {least} (got {v!r})")
        if self.horizon < self.resolution:
            raise FlexOfferError("horizon", f"shorter than one interval ({self.resolution} s)")
        if self.solver not in SOLVERS:
            raise FlexOfferError("solver", f"unknown solver {self.solver!r} (one of {', '.join(SOLVERS)})")
        if not isinstance(self.points, Mapping) or not self.points:
            raise FlexOfferError("points", "at least one congestion point: points.NAME = { limit = kWh per interval }")
        for name, spec in self.points.items():
            if not isinstance(spec, Mapping):
                raise FlexOfferError(f"points.{name}", "a table such as { limit = 40.0 }")
            unknown = set(spec) - {"limit", "lower"}
            if unknown:
                raise FlexOfferError(f"points.{name}.{sorted(unknown)[0]}", "unknown key (known: limit, lower)")
            if "limit" not in spec:
                raise FlexOfferError(f"points.{name}.limit", "required (kWh per interval)")
        self.congestion_points()  # checks each point
        if not isinstance(self.aggregators, Mapping):
            raise FlexOfferError("aggregators", "a table: aggregator JID -> [points]")
        for jid, points in self.aggregators.items():
            if not isinstance(points, (list, tuple)) or not points:
                raise FlexOfferError(f"aggregators.{jid}", "a list of congestion points")
            for p in points:
                if p not in self.points:
                    raise FlexOfferError(f"aggregators.{jid}", f"no congestion point named {p!r}")

    def congestion_points(self) -> dict[str, CongestionPoint]:
        return {name: CongestionPoint(name, spec["limit"], spec.get("lower"), self.resolution)
                for name, spec in self.points.items()}

    def points_of(self, aggregator: str) -> tuple[str, ...]:
        for jid, points in self.aggregators.items():
            if bare(jid) == bare(aggregator):
                return tuple(points)
        return ()


@dataclass(frozen=True, slots=True)
class DsoRequest:
    """A flex request sent: to whom, in which round, and whether the DSO has decided on it."""

    msg: FlexRequestMessage
    to: str
    round: int
    decided: bool = False


@dataclass(frozen=True, slots=True)
class DsoReply:
    """An aggregator's answer as received (``order_id`` once the DSO decided on it)."""

    msg: FlexReplyMessage
    sender: str
    received: int
    order_id: Optional[str] = None


@dataclass(frozen=True, slots=True)
class DsoOrder:
    """An order (or a decline) sent, with what verification needs over the request's intervals
    from ``start``: the reply's ``baseline``, the ordered ``scheduled`` load and the ``ordered``
    kWh taken off per interval; then the metering and the settlement."""

    msg: FlexOrderMessage
    to: str
    start: int
    baseline: tuple[float, ...]
    scheduled: tuple[float, ...]
    ordered: tuple[float, ...]
    resolution: int
    measurement: Optional[Measurement] = None
    settlement: Optional[FlexSettlementMessage] = None
    note: Optional[str] = None

    @property
    def end(self) -> int:
        return self.start + len(self.baseline)

    @property
    def ordered_kwh(self) -> float:
        return float(sum(self.ordered))


#: Flex requests sent, by request id.
DSO_REQUESTS: Table[DsoRequest] = Table("dso_requests", DsoRequest)
#: Flex replies received, by reply id.
DSO_REPLIES: Table[DsoReply] = Table("dso_replies", DsoReply)
#: Orders and declines sent, by order id.
DSO_ORDERS: Table[DsoOrder] = Table("dso_orders", DsoOrder)


class DsoEngine(Engine):
    role = "dso"
    tables = Engine.tables + (DSO_REQUESTS, DSO_REPLIES, DSO_ORDERS)
    pause_holds = "flex requests"

    def __init__(self, jid: str, config: DsoConfig, **kw) -> None:
        super().__init__(jid, **kw)
        self.config = config
        self.points = config.congestion_points()
        self._name = self.jid.split("@")[0]

    # -- who may answer ----------------------------------------------------------------------
    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        if not self.config.points_of(sender):
            return f"{sender} is not an aggregator of this DSO"
        return None

    # -- timed work --------------------------------------------------------------------------
    def role_steps(self) -> list[TimedStep]:
        return [
            TimedStep("requests", self._requests,
                      lambda now: None if self.paused else self.ledger[META].get("next_request", 0)),
            TimedStep("orders", self._decide, self._decisions_due),
            TimedStep("settlement", self._settle, self._settlement_due),
        ]

    def _seq(self, name: str) -> int:
        meta = self.ledger[META]
        n = meta.get(name, 0) + 1
        meta.put(name, n)
        return n

    def _requests(self, now: int) -> list[Effect]:
        meta = self.ledger[META]
        if self.paused or now < meta.get("next_request", 0):
            return []
        meta.put("next_request", now + self.config.request_every)
        res = self.config.resolution
        start = now // res + 1  # from the next whole interval
        length = max(1, self.config.horizon // res)
        rnd = self._seq("request_round")
        out: list[Effect] = []
        for agg, points in sorted(self.config.aggregators.items()):
            for name in points:
                point = self.points[name]
                n = self._seq("request_seq")
                lower = point.lower_at(start, length)
                msg = FlexRequestMessage(
                    f"{self._name}-req-{n}", name, start, tuple(point.upper_at(start, length).tolist()), self.config.price,
                    now + self.config.respond_within, None if lower is None else tuple(lower.tolist()), res)
                self.ledger[DSO_REQUESTS].put(msg.request_id, DsoRequest(msg, bare(agg), rnd))
                out += self.send_reliable(agg, msg, now)
        out.append(Note("flex-requests", {"round": rnd, "sent": len(out)}))
        return out

    def _decisions_due(self, now: int) -> Optional[int]:
        times = [r.msg.respond_before for r in self.ledger[DSO_REQUESTS].values() if not r.decided]
        return min(times) if times else None

    # -- answers ------------------------------------------------------------------------------
    @handles(FlexReplyMessage)
    def _reply(self, sender: str, msg: FlexReplyMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        req = self.ledger[DSO_REQUESTS].get(msg.request_id)
        if req is None or req.to != sender:
            return [], f"no flex request {msg.request_id} was sent to {sender}"
        if req.decided:
            return [], f"flex request {msg.request_id} is closed: answers were due before its respond-before time"
        if msg.point != req.msg.point:
            return [], f"point {msg.point} differs from the request's {req.msg.point}"
        if (msg.start, len(msg.baseline), msg.resolution) != (req.msg.start, len(req.msg.max_kwh), req.msg.resolution):
            return [], "the prognosis must cover the request's intervals, at its resolution"
        if any(r.msg.request_id == msg.request_id for r in self.ledger[DSO_REPLIES].values()):
            return [], f"flex request {msg.request_id} was answered already"
        for i, fo in enumerate(msg.offers):
            problem = self._outside(fo, req.msg)
            if problem is not None:
                return [], f"flexoffer[{i}] ({fo.id}): {problem}"
        self.ledger[DSO_REPLIES].put(msg.reply_id, DsoReply(msg, sender, now))
        return [Note("flex-reply", {"from": sender, "reply": msg.reply_id, "offers": len(msg.offers)})], None

    @staticmethod
    def _outside(fo: FlexOffer, req: FlexRequestMessage) -> Optional[str]:
        """Why an offer cannot be planned in the request's period, or None."""
        first, last = fo.earliest_start(), fo.latest_start()
        if first is None or last is None:
            return "has no start window (resolve implicit offers before offering them)"
        if first < req.start or last + max(p.duration for p in fo.profiles) > req.end:
            return "runs outside the request's intervals"
        return None

    # -- deciding -----------------------------------------------------------------------------
    def _decide(self, now: int) -> list[Effect]:
        """For each (round, point) whose answers are due: plan every offer behind the point
        within its limit and order or decline each reply."""
        requests = self.ledger[DSO_REQUESTS]
        due: dict[tuple[int, str], list[DsoRequest]] = {}
        for rec in requests.values():
            if not rec.decided and now >= rec.msg.respond_before:
                due.setdefault((rec.round, rec.msg.point), []).append(rec)
        out: list[Effect] = []
        for (_, point), recs in sorted(due.items()):
            ids = {r.msg.request_id for r in recs}
            replies = sorted((r for r in self.ledger[DSO_REPLIES].values() if r.msg.request_id in ids),
                             key=lambda r: r.msg.reply_id)
            out += self._decide_point(self.points[point], recs[0].msg, replies, now)
            for r in recs:
                requests.put(r.msg.request_id, replace(r, decided=True))
            if len(replies) < len(recs):
                out.append(Note("flex-unanswered", {"point": point, "requests": len(recs), "replies": len(replies)}))
        return out

    def _limits(self, req: FlexRequestMessage, committed: np.ndarray) -> CapacityLimit:
        """The request's limits less the safety margin and the load already committed."""
        keep = 1.0 - self.config.safety
        upper = np.asarray(req.max_kwh) * keep - committed
        lower = None if req.min_kwh is None else np.asarray(req.min_kwh) * keep - committed
        return CapacityLimit(req.point, upper=upper.tolist(), lower=None if lower is None else lower.tolist(),
                             start=req.start)

    def _decide_point(self, point: CongestionPoint, req: FlexRequestMessage, replies: list[DsoReply],
                      now: int) -> list[Effect]:
        if not replies:
            return []
        T, start = len(req.max_kwh), req.start
        baseline = np.zeros(T)
        committed = np.zeros(T)
        for r in replies:
            baseline += np.asarray(r.msg.baseline)
            committed += np.asarray(r.msg.committed)
        load = baseline + committed
        keep = 1.0 - self.config.safety
        over = load > np.asarray(req.max_kwh) * keep + 1e-9
        under = req.min_kwh is not None and bool((load < np.asarray(req.min_kwh) * keep - 1e-9).any())
        offers = [(r, fo) for r in replies for fo in r.msg.offers]
        # a reply without offers still counts with its committed load, but needs no answer
        replies = [r for r in replies if r.msg.offers]
        if not offers:
            return [Note("flex-nothing-offered", {"point": point.name, "congested": bool(over.any() or under)})]
        if not over.any() and not under:
            why = (f"no congestion expected at {point.name}: prognosis peak {load.max():.3f} kWh within "
                   f"{min(req.max_kwh):g}")
            return [e for r in replies for e in self._decline(r, why, now)]
        # plan every offer behind the point together, as close to the baselines as the limit
        # allows; offer ids are the aggregators' own, so they are renamed for the planner
        renamed = [replace(fo, id=f"o{k}") for k, (_, fo) in enumerate(offers)]
        try:
            result = schedule_offers(renamed, Objective.target(baseline.tolist(), start), solver=self.config.solver,
                                     now=now // req.resolution, horizon=(start, start + T),
                                     capacity=[self._limits(req, committed)],
                                     congestion_points={fo.id: point.name for fo in renamed})
        except PlanningError as exc:
            why = f"could not plan the offers at {point.name}: {exc}"
            return [Note("flex-plan-failed", {"point": point.name, "why": str(exc)}),
                    *(e for r in replies for e in self._decline(r, why, now))]
        schedules = {s.offer_id: s for s in result.schedules}
        out: list[Effect] = []
        if result.capacity_violation > 1e-6:
            out.append(Note("flex-limit-not-met", {"point": point.name, "kWh": round(result.capacity_violation, 6)}))
        for r in replies:
            own = [(k, fo) for k, (rr, fo) in enumerate(offers) if rr is r]
            scheduled = np.zeros(T)
            mine = []
            for k, fo in own:
                s = schedules[f"o{k}"]
                place(scheduled, start, *schedule_load(fo, replace(s, offer_id=fo.id)))
                mine.append(Schedule(fo.id, s.start, s.energy, f"s-{fo.id}", 0, s.profile, s.resolution))
            ordered = np.clip(np.asarray(r.msg.baseline) - scheduled, 0.0, None)
            if ordered.sum() <= 1e-6:
                out += self._decline(r, f"its offers are not needed to keep {point.name} within its limit", now)
                continue
            n = self._seq("order_seq")
            msg = FlexOrderMessage(f"{self._name}-order-{n}", r.msg.reply_id, point.name, "ordered", tuple(mine),
                                   round(float(ordered.sum()), 6), self.config.price)
            self._record_order(r, msg, scheduled, ordered)
            out += [Note("flex-order", {"to": r.sender, "order": msg.order_id, "kWh": msg.ordered_kwh}),
                    *self.send_reliable(r.sender, msg, now)]
        return out

    def _decline(self, r: DsoReply, why: str, now: int) -> list[Effect]:
        n = self._seq("order_seq")
        msg = FlexOrderMessage(f"{self._name}-order-{n}", r.msg.reply_id, r.msg.point, "declined", reason=why)
        self._record_order(r, msg, np.asarray(r.msg.baseline), np.zeros(len(r.msg.baseline)))
        return [Note("flex-declined", {"to": r.sender, "reply": r.msg.reply_id, "why": why}),
                *self.send_reliable(r.sender, msg, now)]

    def _record_order(self, r: DsoReply, msg: FlexOrderMessage, scheduled: np.ndarray, ordered: np.ndarray) -> None:
        self.ledger[DSO_ORDERS].put(msg.order_id, DsoOrder(
            msg, r.sender, r.msg.start, r.msg.baseline, tuple(float(x) for x in scheduled),
            tuple(float(x) for x in ordered), r.msg.resolution))
        self.ledger[DSO_REPLIES].put(r.msg.reply_id, replace(r, order_id=msg.order_id))

    # -- metering and settlement -------------------------------------------------------------
    @handles(Measurement)
    def _metering(self, sender: str, m: Measurement, now: int) -> tuple[list[Effect], Optional[str]]:
        rec = self.ledger[DSO_ORDERS].get(m.offer_id)
        if rec is None or rec.to != sender or rec.msg.status != "ordered":
            return [], f"no flex order {m.offer_id} was placed with {sender}"
        if rec.settlement is not None:
            return [], f"flex order {m.offer_id} is settled already"
        if m.resolution != rec.resolution or m.start != rec.start or len(m.energy) != len(rec.baseline):
            return [], "the metering must cover the order's intervals, at its resolution"
        self.ledger[DSO_ORDERS].put(m.offer_id, replace(rec, measurement=m))
        return [Note("flex-metering", {"order": m.offer_id, "kWh": round(sum(m.energy), 6)})], None

    def _settlement_due(self, now: int) -> Optional[int]:
        times = [now if r.measurement is not None else r.end * r.resolution + self.config.settle_after
                 for r in self.ledger[DSO_ORDERS].values() if r.msg.status == "ordered" and r.settlement is None]
        return min(times) if times else None

    def _settle(self, now: int) -> list[Effect]:
        out: list[Effect] = []
        orders = self.ledger[DSO_ORDERS]
        for rec in orders.values():
            if rec.msg.status != "ordered" or rec.settlement is not None:
                continue
            if rec.measurement is None and now < rec.end * rec.resolution + self.config.settle_after:
                continue
            settlement, note = verify(rec, self.config, f"{self._name}-settle-{self._seq('settle_seq')}")
            orders.put(rec.msg.order_id, replace(rec, settlement=settlement, note=note))
            out += [Note("flex-settled", {"order": rec.msg.order_id, "delivered": settlement.delivered_kwh,
                                          "total_cents": settlement.total_cents}),
                    *self.send_reliable(rec.to, settlement, now)]
        return out

    # -- reporting ---------------------------------------------------------------------------
    def cleared_kwh(self) -> float:
        """kWh taken off the baselines in the orders placed."""
        return float(sum(r.ordered_kwh for r in self.ledger[DSO_ORDERS].values() if r.msg.status == "ordered"))

    def status(self) -> str:
        orders = [r for r in self.ledger[DSO_ORDERS].values() if r.msg.status == "ordered"]
        settled = sum(1 for r in orders if r.settlement is not None)
        return (f"{len(self.points)} congestion points, {len(self.ledger[DSO_REQUESTS])} requests, "
                f"{len(orders)} orders ({self.cleared_kwh():.1f} kWh), {settled} settled")


def verify(rec: DsoOrder, config: DsoConfig, settlement_id: str) -> tuple[FlexSettlementMessage, Optional[str]]:
    """Check an order's metered load against the baseline and price it.

    What was taken off is ``baseline - measured`` summed over the intervals where the order
    takes load off, counted up to the ordered kWh (more is not paid: the DSO did not ask for it);
    summed, not capped per interval, so metering noise evens out instead of counting against the
    aggregator. Delivery of at least ``1 - tolerance``
    of the ordered kWh earns the whole incentive (``price`` x ordered); less earns ``price`` x
    delivered and a ``penalty`` per kWh short of the band. Without metering nothing counts as
    delivered (and the note says so)."""
    ordered = np.asarray(rec.ordered)
    baseline = np.asarray(rec.baseline)
    note = None
    if rec.measurement is None:
        measured = baseline
        note = "no metering arrived in time: nothing counts as delivered"
    else:
        measured = np.asarray(rec.measurement.energy)
    total = float(ordered.sum())
    delivered = min(total, float(np.clip(baseline - measured, 0.0, None)[ordered > 1e-9].sum()))
    band = total * (1.0 - config.tolerance)
    if delivered >= band - 1e-9:
        incentive, penalty = cents(config.price * total, "incentive"), 0
    else:
        incentive = cents(config.price * delivered, "incentive")
        penalty = cents(config.penalty * (band - delivered), "penalty")
    msg = FlexSettlementMessage(settlement_id, rec.msg.order_id, round(total, 6), round(delivered, 6), incentive, penalty)
    return msg, note
