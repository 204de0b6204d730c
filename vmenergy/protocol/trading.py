"""An aggregator trading on pool markets: its trading settings and the orders it makes from its plan.

Pools (one-sided, two-sided) clear simple price-volume orders, not flex-offers. An aggregator
bidding in a pool therefore plans its aggregate first (its own planning, the schedule its
members get whatever the pool decides) and turns the plan into one order per interval:

- ``two-sided`` (energy): the plan's energy itself, a buy where the portfolio consumes and a
  sell where it produces; it buys at most at its energy value and sells at least at its energy
  cost (each less/plus the proportional margin). What does not clear is bought or sold as
  imbalance later: the plan stands.
- ``one-sided`` (flexibility, KIBERnet-style merit order with the buyer's cut-off): the room
  the plan leaves in the direction the pool buys. ``up`` (less consumption / more production)
  is the plan minus the slices' minima, ``down`` the maxima minus the plan. Its price is the
  portfolio's scheduling cost of that deviation (the aggregate's own deviation price, or
  ``flex_cost`` when it has none) plus the proportional margin, plus ``margin_at_max`` scaled
  by how much of the slice's range the order takes (the full absolute margin at maximum
  deviation). A cleared order is a reservation the market may later activate; an activation
  moves the aggregate's schedule by the activated energy (:func:`activated_schedule`).

Only intervals inside the session's delivery window and within ``horizon`` intervals of now are
bid. Pure: values in, orders out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.market import Award, MarketResult, Product
from vmenergy.planning import Objective, schedule_offers
from vmenergy.settlement.money import cents
from vmenergy.validation import Checks, set_field

from .engine import Table
from .messages import MarketSessionNotice, Measurement

__all__ = ["TradingSettings", "PlannedOrder", "OrderRecord", "ORDERS", "METERED", "POOLS", "pool_orders",
           "activated_schedule", "order_bid_id", "delivery_metering", "residual_position", "hourly_series", "curve",
           "imbalance_charge"]

#: The mechanisms that take simple orders rather than flex-offer bids.
POOLS = ("one-sided", "two-sided")
#: Volumes below this (kWh) are not worth an order.
MIN_VOLUME = 1e-6
PRODUCTS = ("up", "down")
_check = Checks(FlexOfferError)


@dataclass(frozen=True)
class TradingSettings:
    """The ``trading`` table of an aggregator (all prices EUR/kWh, times seconds).

    ``horizon``: how many intervals ahead orders reach (a multiple of the resolution by
    construction; 0 = the whole session). ``energy_value``: what a kWh its portfolio consumes is
    worth to it (the most it bids for energy before margin); ``energy_cost``: the least it takes
    for a kWh produced.
    ``flex_cost``: the cost of a kWh of deviation when an aggregate carries no prices. The same
    energy value and cost (with the margin) price its flex-offer bids in many-to-many and
    implicit-capacity sessions, unless ``bid_prices`` gives that curve outright.
    ``frequency`` (seconds, 0: every aggregation round): how often it trades; offers wait for the
    next trading round, or the last round before the gate closes.
    ``imbalance_fee`` (EUR/kWh) and ``imbalance_cutoff`` (kWh per interval): the market
    contract's imbalance terms as the aggregator knows them; ``follow_market`` plans price a
    deviation from the clearings at the fee (unless the objective says otherwise), and the
    aggregator logs the imbalance charge it expects for each bid it meters.
    ``update_threshold`` (kWh, the bid update policy): offers that fit the open session are bid
    once their minimum or maximum energy together changes the portfolio's by more than this, and
    in any case in the last round before the gate closes (0: every round bids what it has).
    ``margin``: proportional margin (0.1 = 10 %); ``margin_at_max``: absolute margin at maximum
    deviation. ``product``: what it sells in a one-sided pool; ``activation_price``: what it
    asks per activated kWh. ``zone``: where it registers with a market that has zones (implicit
    capacity; empty: none). ``prices`` (24 EUR/kWh, by UTC hour) and ``volume_limit`` (kWh per
    interval the market takes at those prices; 0: no limit): the market an aggregator in
    ``direct`` mode trades against (GOFLEX direct trading)."""

    horizon: int = 0
    energy_value: float = 0.30
    energy_cost: float = 0.0
    flex_cost: float = 0.05
    margin: float = 0.0
    margin_at_max: float = 0.0
    product: str = "up"
    activation_price: float = 0.10
    zone: str = ""
    prices: tuple[float, ...] = ()
    volume_limit: float = 0.0
    update_threshold: float = 0.0
    frequency: int = 0
    imbalance_fee: float = 0.0
    imbalance_cutoff: float = 0.0

    def __post_init__(self) -> None:
        for name in ("horizon", "frequency"):  # intervals, seconds
            _check.integer(getattr(self, name), f"trading.{name}", minimum=0)
        for name in ("energy_value", "energy_cost", "flex_cost", "margin", "margin_at_max", "activation_price",
                     "update_threshold", "imbalance_fee", "imbalance_cutoff", "volume_limit"):
            set_field(self, name, _check.number(getattr(self, name), f"trading.{name}", minimum=0))
        if self.margin >= 1:  # a fraction of the price
            raise FlexOfferError("trading.margin", f"a fraction below 1 (got {self.margin!r})")
        if self.prices:
            prices = _check.numbers(self.prices, "trading.prices", at_least=24, at_most=24)  # EUR/kWh by UTC hour
            set_field(self, "prices", prices)
        _check.text(self.zone, "trading.zone", required=False)
        _check.choice(self.product, "trading.product", PRODUCTS)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TradingSettings":
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise FlexOfferError(f"trading.{key}", f"unknown trading setting (known: {', '.join(sorted(known))})")
        return cls(**dict(d))



@dataclass(frozen=True)
class PlannedOrder:
    """One order an aggregator places: ``volume`` kWh in ``interval`` at limit ``price``."""

    interval: int
    side: str
    kind: str
    volume: float
    price: float
    activation_price: Optional[float] = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order the aggregator placed for an aggregate, and what became of it."""

    aggregate_id: str
    session_id: str
    interval: int
    side: str
    kind: str
    volume: float
    price: float
    status: str = "placed"  # placed | accepted | partial | rejected | withdrawn
    cleared: float = 0.0
    amount_cents: int = 0  # what the market pays (+) or charges (-)
    reservation_id: Optional[str] = None
    activated: float = 0.0  # kWh per interval activated so far
    activation_price: Optional[float] = None  # EUR/kWh asked for an activation


#: The aggregator's pool orders, by bid id.
ORDERS: Table[OrderRecord] = Table("orders", OrderRecord)
#: The bids whose delivery the aggregator has metered to its market: bid id -> measurement id.
METERED: Table[str] = Table("metered", str)


def curve(settings: TradingSettings) -> tuple[float, float]:
    """(up, down) EUR/kWh of a flex-offer bid from the trading settings: the most it pays per kWh
    its portfolio consumes (its energy value less the margin) and the least it takes per kWh it
    produces (its energy cost plus the margin)."""
    return settings.energy_value * (1 - settings.margin), settings.energy_cost * (1 + settings.margin)


def hourly_series(prices: tuple[float, ...], start: int, end: int, resolution: int) -> list[float]:
    """The 24 hourly (UTC) prices as one value per interval of [start, end)."""
    return [prices[(t * resolution // 3600) % 24] for t in range(start, end)]


def order_bid_id(aggregate_id: str, interval: int) -> str:
    return f"ord-{aggregate_id}-{interval}"


def _per_interval(offer: FlexOffer, schedule: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plan, minima, maxima) kWh per interval from the schedule's start."""
    profile = offer.profiles[schedule.profile]
    return (profile.spread(schedule.energy), profile.spread([s.min for s in profile.slices]),
            profile.spread([s.max for s in profile.slices]))


def _slice_of(offer: FlexOffer, schedule: Schedule) -> np.ndarray:
    profile = offer.profiles[schedule.profile]
    return np.repeat(np.arange(len(profile.slices)), [s.duration for s in profile.slices])


def pool_orders(offer: FlexOffer, schedule: Schedule, session: MarketSessionNotice, settings: TradingSettings,
                now: int) -> list[PlannedOrder]:
    """The orders for an aggregate planned as ``schedule`` in a pool ``session`` (module doc)."""
    if session.mechanism not in POOLS:
        raise FlexOfferError("mechanism", f"{session.mechanism} is not a pool ({', '.join(POOLS)})")
    plan, lo, hi = _per_interval(offer, schedule)
    which = _slice_of(offer, schedule)
    res = session.resolution
    first = max(session.delivery_start, -(-now // res))
    last = session.delivery_end
    if settings.horizon:
        last = min(last, first + settings.horizon)
    out: list[PlannedOrder] = []
    for k, e in enumerate(plan):
        t = schedule.start + k
        if not first <= t < last:
            continue
        if session.mechanism == "two-sided":
            if abs(e) < MIN_VOLUME:
                continue
            buy, sell = curve(settings)
            if e > 0:
                out.append(PlannedOrder(t, "buy", "energy", round(float(e), 6), round(buy, 6)))
            else:
                out.append(PlannedOrder(t, "sell", "energy", round(float(-e), 6), round(sell, 6)))
            continue
        up = settings.product == "up"
        volume = float(e - lo[k]) if up else float(hi[k] - e)
        span = float(hi[k] - lo[k])
        if volume < MIN_VOLUME or span <= 0:
            continue
        cost = settings.flex_cost
        if offer.prices is not None:
            sp = offer.prices.for_slice(int(which[k]))
            # "up" regulation is the offer deviating down (less consumption), and the reverse
            own = sp.down if up else sp.up
            if own > 0:
                cost = own
        price = cost * (1 + settings.margin) + settings.margin_at_max * min(1.0, volume / span)
        out.append(PlannedOrder(t, "sell", settings.product, round(volume, 6), round(price, 6),
                                settings.activation_price))
    return out


def activated_schedule(offer: FlexOffer, schedule: Schedule, changes: Mapping[int, float], *, now: int,
                       solver: str = "auto") -> Schedule:
    """The aggregate's schedule moved by ``changes`` (interval -> kWh added, - for less), as
    near as its constraints allow, always feasible: an activation the portfolio cannot fully
    follow is delivered in part, and the shortfall is imbalance.

    Each slice takes the changes of its intervals, within its bounds; when that breaks another
    constraint (a total, a polytope, discrete values) the aggregate is planned against the
    moved plan as a target instead, at the same start and profile (an activation moves energy,
    not the time the devices run)."""
    profile = offer.profiles[schedule.profile]
    which = _slice_of(offer, schedule)
    energy = np.asarray(schedule.energy, dtype=float)
    for t, d in changes.items():
        k = t - schedule.start
        if 0 <= k < len(which):
            energy[which[k]] += d
    energy = np.clip(energy, [s.min for s in profile.slices], [s.max for s in profile.slices])
    direct = replace(schedule, energy=tuple(float(e) for e in energy))
    if not offer.check(direct):
        return direct
    plan, _, _ = _per_interval(offer, schedule)
    target = plan.copy()
    for t, d in changes.items():
        k = t - schedule.start
        if 0 <= k < len(target):
            target[k] += d
    pinned = replace(offer, profiles=(replace(profile, start_after=None, start_before=None),),
                     start_after=schedule.start, start_before=schedule.start, start_before_duration=None,
                     baseline=None, assignment_before=None, acceptance_before=None)
    result = schedule_offers([pinned], Objective.target(target.tolist(), schedule.start), solver=solver,
                             now=min(now, schedule.start))
    (s,) = result.schedules
    return replace(schedule, energy=tuple(s.energy))


def delivery_metering(bid_id: str, metered: Mapping[int, float], first: int, end: int,
                      resolution: int) -> Optional[Measurement]:
    """What the aggregator reports to its market for one cleared bid: its portfolio's measured
    kWh in each interval of [first, end) (0 where nothing was metered); None for no intervals."""
    if end <= first:
        return None
    energy = tuple(round(float(metered.get(t, 0.0)), 6) for t in range(first, end))
    return Measurement(f"mm-{bid_id}", bid_id, first, energy, resolution)


def imbalance_charge(awarded: Mapping[int, float], metered: Mapping[int, float], price: float,
                     cutoff: float) -> tuple[float, int]:
    """(kWh, cents) of imbalance: per interval the metered minus the awarded energy (the market
    core's imbalance lines), beyond ``cutoff`` kWh, at ``price`` EUR/kWh. The one rule both the
    market (billing) and the aggregator (expecting the bill) apply."""
    award = Award("bid", "participant", "buy", Product.ENERGY, dict(awarded), 0.0)
    lines = MarketResult("session", "pool", "uniform", {"bid": award}, {}, {}, 0.0).imbalance(
        {"participant": metered}, price)
    beyond = math.fsum(max(0.0, abs(line.deviation) - cutoff) for line in lines)
    return round(beyond, 6), cents(price * beyond)


def residual_position(orders: Iterable[OrderRecord], cleared: Iterable[tuple[FlexOffer, Schedule]],
                      planned: Iterable[tuple[FlexOffer, Schedule]], *, since: int) -> dict[int, float]:
    """What the market clearings committed the portfolio to and its schedules do not yet use,
    kWh per interval from ``since`` (+ bought, - sold): cleared energy orders and cleared
    flex-offer schedules, less every schedule the portfolio already has. A ``follow_market``
    objective fed by this puts new offers where energy was bought and not yet used (and away
    from where the plan runs beyond what cleared)."""
    out: dict[int, float] = {}
    for o in orders:
        if o.kind == "energy" and o.status in ("accepted", "partial") and o.interval >= since:
            out[o.interval] = out.get(o.interval, 0.0) + (o.cleared if o.side == "buy" else -o.cleared)
    for sign, pairs in ((1.0, cleared), (-1.0, planned)):
        for offer, s in pairs:
            for k, e in enumerate(offer.profiles[s.profile].spread(s.energy)):
                t = s.start + k
                if t >= since:
                    out[t] = out.get(t, 0.0) + sign * float(e)
    return {t: round(v, 9) for t, v in sorted(out.items()) if abs(v) > MIN_VOLUME}
