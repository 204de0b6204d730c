"""The steps of the role engines a researcher can replace, each behind a one-method interface.

The engines call these objects and never decide the step themselves: an aggregator asks its
:class:`Acceptance` whether to take an offer, its :class:`Aggregation` to build aggregates, its
:class:`Planning` to schedule them, its :class:`Bidding` for the price curve of a market bid and
its :class:`Disaggregation` to split an aggregate's schedule among the members, and bills with its
settlement ``contract``; a prosumer takes its offers from an :class:`OfferSource`. Each default
below is VME's own behaviour, configured by the aggregator's config table.

To try another policy, write a class with the same method (subclassing the interface is
optional) and name it in the aggregator's config: ``bidding = "mypackage.module:MyBidding"``, or
``bidding = {class = "mypackage.module:MyBidding", markup = 0.02}`` to pass options to its
constructor. See docs/extending.md. The engines stay sans-IO: a strategy gets values and returns
values, it does not send, sleep or read clocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from vmenergy.aggregation import (AggregatedFlexOffer, AggregationParams, AggregationResult, aggregate, disaggregate,
                                  disaggregate_many)
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Prices, Schedule, SlicePrice
from vmenergy.planning import Objective, schedule_offers
from vmenergy.planning.result import PlanResult
from vmenergy.settlement import Contract, default_contract

from .aggregator_config import STRATEGY_KEYS, AggregatorConfig, StrategySpec, objective_from
from .messages import MarketSessionNotice
from .trading import curve

#: The prosumer contract of an aggregator trading directly, unless its config gives one: the
#: prosumer is paid for its verified adaptation at its own offer's prices.
DIRECT_CONTRACT = {"mode": "direct", "pricing": {"source": "offer"},
                   "tolerance": {"relative": 0.10, "absolute_kwh": 0.01}}

__all__ = [
    "DIRECT_CONTRACT",
    "OfferSource",
    "OfferChange",
    "ScheduledOffers",
    "CombinedOffers",
    "Acceptance",
    "DeadlineAcceptance",
    "Aggregation",
    "ParamsAggregation",
    "Planning",
    "ObjectivePlanning",
    "Bidding",
    "FixedCurveBidding",
    "Disaggregation",
    "MemberDisaggregation",
    "AggregatorStrategies",
    "plan_schedules",
]


# ------------------------------------------------------------------------------------------
# prosumer


@dataclass(frozen=True)
class OfferChange:
    """A source revises an offer it gave: ``offer`` is the new content (same id), or None to
    withdraw it (an EV that leaves early; a device that broke)."""

    offer_id: str
    offer: Optional[FlexOffer] = None


class OfferSource(ABC):
    """Where a prosumer's offers come from (templates, files, device models, a forecast).

    The engine asks on construction and on every tick; an offer whose id it already holds is
    not added again, so a source restarted with its agent may offer everything once more."""

    @abstractmethod
    def offers(self, now: Optional[int]) -> Iterable[tuple[int, FlexOffer]]:
        """New ``(release, offer)`` pairs: the offer is sent at ``release`` (epoch seconds).
        ``now`` is None when the engine is being built (before the clock runs)."""

    def changes(self, now: int) -> Iterable[OfferChange]:
        """Offers the source revises or takes back at ``now`` (asked after :meth:`offers`); the
        engine updates or withdraws them if their state still allows it."""
        return ()

    def next_due(self, now: int) -> Optional[int]:
        """When the source will next have new offers or changes (epoch seconds), so a
        coordinated clock wakes the prosumer then; None if it has nothing more to give."""
        return None


class ScheduledOffers(OfferSource):
    """A fixed list of offers, each sent at its release time: the offers a scenario makes from
    its templates, or the offer files of a prosumer box. Each is handed over once."""

    def __init__(self, offers: Iterable[tuple[int, FlexOffer]] = ()) -> None:
        self._offers = list(offers)

    def offers(self, now: Optional[int]) -> list[tuple[int, FlexOffer]]:
        out, self._offers = self._offers, []
        return out


class CombinedOffers(OfferSource):
    """Several sources as one (a box with template offers and device models)."""

    def __init__(self, *sources: OfferSource) -> None:
        self.sources = sources

    def offers(self, now: Optional[int]) -> list[tuple[int, FlexOffer]]:
        return [pair for s in self.sources for pair in s.offers(now)]

    def changes(self, now: int) -> list[OfferChange]:
        return [c for s in self.sources for c in s.changes(now)]

    def next_due(self, now: int) -> Optional[int]:
        times = [t for t in (s.next_due(now) for s in self.sources) if t is not None]
        return min(times) if times else None


# ------------------------------------------------------------------------------------------
# aggregator


class Acceptance(ABC):
    """Whether an aggregator takes an offer (the sender is enrolled and is its issuer)."""

    @abstractmethod
    def problem(self, offer: FlexOffer, now: int) -> Optional[str]:
        """None to accept ``offer`` at ``now`` (epoch seconds), else the reason for rejecting it."""


class DeadlineAcceptance(Acceptance):
    """VME's rule: the acceptance deadline has not passed and the latest start leaves ``lead``
    seconds to assign a schedule before the assignment deadline."""

    def __init__(self, lead: int) -> None:
        self.lead = lead

    def problem(self, offer: FlexOffer, now: int) -> Optional[str]:
        if offer.acceptance_before is not None and now > offer.acceptance_before:
            return "acceptance deadline passed"
        res = offer.resolution
        latest = offer.resolve(now // res).latest_start()
        if latest is None or latest * res < now + self.lead:
            return "starts too soon to be scheduled (latest start before now + lead time)"
        if offer.assignment_before is not None and offer.assignment_before < now + 1:
            return "assignment deadline passed"
        return None


class Aggregation(ABC):
    """How accepted offers become aggregates. Must be deterministic: after a restart the
    aggregator rebuilds waiting aggregates from their members and checks they come out the same."""

    @abstractmethod
    def aggregate(self, offers: Sequence[FlexOffer]) -> AggregationResult:
        """Aggregates of ``offers`` (each lists its member ids), and the offers left out with why."""


class ParamsAggregation(Aggregation):
    """VME's aggregation (:func:`vmenergy.aggregation.aggregate`) with fixed parameters."""

    def __init__(self, params: AggregationParams = AggregationParams()) -> None:
        self.params = params

    def aggregate(self, offers: Sequence[FlexOffer]) -> AggregationResult:
        return aggregate(list(offers), self.params)


class Planning(ABC):
    """How an aggregator schedules what it plans itself (its aggregates in ``plan`` mode, the
    fallback when a bid is not cleared, offers that cannot be aggregated)."""

    @abstractmethod
    def plan(self, offers: Sequence[FlexOffer], now: int) -> PlanResult | Sequence[Schedule]:
        """One feasible schedule per offer, in order (a :class:`PlanResult`, or just the list of
        schedules); ``now`` is the current interval at the offers' resolution: no schedule may
        start before it."""


def plan_schedules(result: Any) -> tuple[list[Schedule], dict]:
    """The schedules a planning strategy returned (a :class:`PlanResult`, or simply a list of
    schedules), and what is worth logging about how they were found."""
    if isinstance(result, PlanResult):
        return list(result.schedules), {"solver": result.solver, "objective": round(result.objective, 6)}
    return list(result), {}


class ObjectivePlanning(Planning):
    """VME's planning: :func:`vmenergy.planning.schedule_offers` against one objective."""

    def __init__(self, objective: Objective, solver: str = "auto") -> None:
        self.objective = objective
        self.solver = solver

    @classmethod
    def from_config(cls, spec: Mapping, solver: str = "auto") -> "ObjectivePlanning":
        return cls(objective_from(spec), solver)

    def plan(self, offers: Sequence[FlexOffer], now: int) -> PlanResult:
        return schedule_offers(list(offers), self.objective, solver=self.solver, now=now)


class Bidding(ABC):
    """The price curve of an aggregate bid on a market (see docs/market.md for its reading)."""

    @abstractmethod
    def prices(self, offer: FlexOffer, session: MarketSessionNotice) -> Prices:
        """Prices for bidding ``offer`` (an aggregate) in ``session``."""


class FixedCurveBidding(Bidding):
    """VME's bidding: the same curve for every bid, ``up`` EUR/kWh for consumption and ``down``
    for production. A portfolio that can both consume and produce (batteries) gets one
    indifference price (``mixed``, default the middle), so it never buys dearer than it sells."""

    def __init__(self, up: float = 0.30, down: float = 0.0, mixed: Optional[float] = None) -> None:
        self.up, self.down = float(up), float(down)
        self.mixed = (self.up + self.down) / 2 if mixed is None else float(mixed)

    def prices(self, offer: FlexOffer, session: MarketSessionNotice) -> Prices:
        up, down = (self.mixed, self.mixed) if offer.direction == "mixed" else (self.up, self.down)
        return Prices((SlicePrice(up, down),))


class Disaggregation(ABC):
    """How an aggregate's schedule is split into one schedule per member."""

    @abstractmethod
    def split(self, aggregate: AggregatedFlexOffer, schedule: Schedule) -> Mapping[str, Schedule]:
        """member offer id -> its schedule, each feasible for its offer; raise FlexOfferError if
        the schedule cannot be split."""


class MemberDisaggregation(Disaggregation):
    """VME's disaggregation (:func:`vmenergy.aggregation.disaggregate`); a round's aggregates
    all at once with the columnar :func:`vmenergy.aggregation.disaggregate_many`."""

    def split(self, aggregate: AggregatedFlexOffer, schedule: Schedule) -> Mapping[str, Schedule]:
        return disaggregate(aggregate, schedule)

    def split_many(self, aggregates: Sequence[AggregatedFlexOffer],
                   schedules: Sequence[Schedule]) -> Mapping[str, Schedule]:
        """Member offer id -> its schedule for every aggregate (``schedules[i]`` is
        ``aggregates[i]``'s, by its id); validated once as columns, raises FlexOfferError if any
        schedule cannot be split (the caller then splits one by one to name it)."""
        return disaggregate_many(aggregates, schedules).to_dict()


@dataclass(frozen=True)
class AggregatorStrategies:
    """Every replaceable step of an aggregator, as objects."""

    acceptance: Acceptance
    aggregation: Aggregation
    planning: Planning
    bidding: Bidding
    disaggregation: Disaggregation
    contract: Contract

    @classmethod
    def from_config(cls, config: AggregatorConfig, jid: str,
                    load: Optional[Callable[[StrategySpec], Any]] = None) -> "AggregatorStrategies":
        """VME's defaults configured by ``config``, with the user's classes it names built by
        ``load`` (the shell's :func:`vmenergy.agents.plugins.build_strategy`). Without ``load``,
        a config that names a class is an error: the core does not import code."""
        specs = config.strategy_specs()
        if specs and load is None:
            raise FlexOfferError(next(iter(specs)), "names a class; build the engine with strategies loaded by the "
                                                    "shell (vmenergy.agents.plugins.aggregator_strategies)")
        chosen: dict[str, Any] = {}
        for key, spec in specs.items():
            obj = load(spec)  # type: ignore[misc]
            method = STRATEGY_KEYS[key]
            if not callable(getattr(obj, method, None)):
                raise FlexOfferError(spec.path, f"{spec.target} has no {method}() method, so it cannot be the {key} step")
            chosen[key] = obj
        # the flex-offer bids' curve: given outright, or from the trading settings' value and cost
        prices = dict(config.bid_prices) if config.bid_prices else \
            dict(zip(("up", "down"), curve(config.trading_settings())))
        return cls(
            acceptance=chosen["acceptance"] if "acceptance" in chosen else DeadlineAcceptance(config.lead),
            aggregation=chosen["aggregation"] if "aggregation" in chosen
            else ParamsAggregation(config.aggregation_params()),
            planning=chosen["planning"] if "planning" in chosen
            else ObjectivePlanning.from_config(config.objective, config.solver),
            bidding=chosen["bidding"] if "bidding" in chosen
            else FixedCurveBidding(prices["up"], prices["down"], prices.get("mixed")),
            disaggregation=chosen["disaggregation"] if "disaggregation" in chosen else MemberDisaggregation(),
            contract=default_contract(jid, config.contract
                                      or (DIRECT_CONTRACT if config.upstream == "direct" else None)),
        )
