"""How an aggregator runs: its config table, checked when it is built.

The same class validates an agent's ``[aggregator]`` section and a scenario's ``[[aggregator]]``
tables, so a typo fails before anything starts. Keys that name a replaceable step
(``acceptance``, ``aggregation``, ``planning``, ``bidding``, ``disaggregation``) may name a
user's class instead of VME's default: ``"package.module:Class"``, or a table
``{class = "package.module:Class", option = ...}`` whose other keys are passed to the class. Here
they are only parsed (:class:`StrategySpec`); importing the class is the shell's job
(:mod:`vmenergy.agents.plugins`), because the core does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from vmenergy.aggregation import AggregationParams
from vmenergy.flexoffer import FlexOfferError
from vmenergy.planning import Objective
from vmenergy.planning.scheduling import SOLVERS

from .trading import TradingSettings

__all__ = ["AggregatorConfig", "StrategySpec", "UPSTREAMS", "STRATEGY_KEYS", "parse_strategy", "objective_from",
           "fed_by_market"]

UPSTREAMS = ("plan", "market", "parent", "direct")
#: Config keys that may name a user's class, and the method such a class must have.
STRATEGY_KEYS = {
    "acceptance": "problem",
    "aggregation": "aggregate",
    "planning": "plan",
    "bidding": "prices",
    "disaggregation": "split",
}
_TARGET = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


def fed_by_market(spec: Mapping) -> bool:
    """``{kind = "follow_market"}`` without a ``commitment``: the aggregator follows the position
    its market clearings give it (:func:`vmenergy.protocol.trading.residual_position`)."""
    return spec.get("kind") == "follow_market" and "commitment" not in spec


def objective_from(spec: Mapping, position: Optional[Mapping[int, float]] = None) -> Objective:
    """An :class:`Objective` from its config form (``{"kind": ..., ...}``). A ``follow_market``
    fed by the market takes its commitment from ``position``; before any clearing (no position)
    it plans for the least peak."""
    spec = dict(spec)
    if fed_by_market(spec):
        unknown = set(spec) - {"kind", "over_price", "under_price"}
        if unknown:
            raise FlexOfferError(f"objective.{sorted(unknown)[0]}",
                                 "follow_market takes commitment, over_price, under_price")
        if not position:
            return Objective.peak()
        spec["commitment"] = dict(position)
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


@dataclass(frozen=True)
class StrategySpec:
    """A config key that names a class: ``target`` is ``"package.module:Class"``, ``options`` the
    keyword arguments it is built with, ``path`` the config key (for error messages)."""

    path: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_strategy(value: Any, path: str) -> Optional[StrategySpec]:
    """None (VME's default), or the class a strategy key names. Errors name ``path``."""
    if value is None:
        return None
    if isinstance(value, str):
        target, options = value, {}
    elif isinstance(value, Mapping) and "class" in value:
        target, options = value["class"], {k: v for k, v in value.items() if k != "class"}
        path_target = f"{path}.class"
        if not isinstance(target, str):
            raise FlexOfferError(path_target, "a \"package.module:Class\" string")
    else:
        raise FlexOfferError(path, "a \"package.module:Class\" string, or a table with class = \"package.module:Class\"")
    if not _TARGET.match(target.strip()):
        where = path if isinstance(value, str) else f"{path}.class"
        raise FlexOfferError(where, f"{target!r} is not \"package.module:Class\"")
    for key in options:
        if not isinstance(key, str) or not key.isidentifier():
            raise FlexOfferError(f"{path}.{key}", "an option name must be an identifier")
    return StrategySpec(path, target.strip(), dict(options))


@dataclass(frozen=True)
class AggregatorConfig:
    """How an aggregator runs (loaded from its TOML config by the shell).

    ``enrolment``: "open" or a tuple of prosumer JIDs allowed to send offers.
    ``upstream``: "plan" | "market" | "parent" | "direct"; ``upstream_jid`` the market or parent
    (``direct``: GOFLEX direct trading against ``trading.prices``, no market agent).
    ``objective``: for ``plan`` and as the fallback when a bid is rejected, e.g.
    ``{"kind": "peak"}``, ``{"kind": "target", "values": [...], "start": interval}``;
    ``{"kind": "follow_market"}`` (no commitment) follows what its market clearings committed
    the portfolio to.
    ``cycle``: seconds between planning/bidding rounds; ``lead``: seconds an assignment must
    arrive before a schedule starts (offers that cannot be assigned in time are left out and
    rejected when their assignment deadline passes); ``settle_after``: seconds after a schedule
    ends before it is settled without a measurement (settlement flags the missing readings).
    ``bid_prices``: the price curve of the aggregator's flex-offer bids outright (EUR/kWh: ``up``
    the most it pays per kWh its portfolio consumes, ``down`` the least it takes per kWh it
    produces); without it the curve comes from ``trading`` (energy value and cost, margin).
    ``trading``: how it trades in pool markets (:class:`~vmenergy.protocol.trading.TradingSettings`:
    horizon, energy value and cost, flexibility cost, margins, product, activation price).
    ``contract``: the prosumer contract table (see docs/settlement.md); default: a delegated
    contract paying for energy flexibility and activations
    (:func:`vmenergy.settlement.default_contract`).
    ``aggregation``: the parameters of VME's aggregation (:class:`AggregationParams`), or a table
    with ``class`` naming a user's aggregation. ``acceptance``, ``planning``, ``bidding``,
    ``disaggregation``: None for VME's default, or a user's class (see docs/extending.md).
    ``locations``: prosumer JID -> the congestion point it is behind; ``dsos``: congestion point
    -> the JID of the DSO that runs it (a scenario fills both in from its topology; see
    :mod:`vmenergy.protocol.flexrequests`). Offers behind a point a DSO runs wait for its flex
    requests.
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
    bid_prices: dict = field(default_factory=dict)
    trading: dict = field(default_factory=dict)
    acceptance: Any = None
    planning: Any = None
    bidding: Any = None
    disaggregation: Any = None
    locations: dict = field(default_factory=dict)
    dsos: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.upstream not in UPSTREAMS:
            raise FlexOfferError("upstream", f"must be plan, market, parent or direct (got {self.upstream!r})")
        if self.upstream in ("market", "parent") and not self.upstream_jid:
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
        for name in ("objective", "aggregation", "contract", "bid_prices", "trading", "locations", "dsos"):
            if not isinstance(getattr(self, name), Mapping):
                raise FlexOfferError(name, "must be a table")
        if self.planning is None:
            objective_from(self.objective)  # the objective is used: check it now, not at the first cycle
        for key in ("up", "down", "mixed"):
            v = self.bid_prices.get(key, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise FlexOfferError(f"bid_prices.{key}", f"a price in EUR/kWh (got {v!r})")
        for key in ("up", "down"):
            if self.bid_prices and key not in self.bid_prices:
                raise FlexOfferError(f"bid_prices.{key}", "required (EUR/kWh)")
        for point in self.locations.values():
            if not isinstance(point, str) or not point:
                raise FlexOfferError("locations", f"congestion point names are text (got {point!r})")
        for point, jid in self.dsos.items():
            if not isinstance(jid, str) or "@" not in jid:
                raise FlexOfferError(f"dsos.{point}", f"the JID of the DSO (got {jid!r})")
        trading = self.trading_settings()
        if self.upstream == "direct" and not trading.prices:
            raise FlexOfferError("trading.prices",
                                 "required with upstream = \"direct\": the 24 hourly prices it trades at")
        for key in STRATEGY_KEYS:
            if key != "aggregation":
                parse_strategy(getattr(self, key), key)
        if "class" in self.aggregation:
            parse_strategy(self.aggregation, "aggregation")
        else:
            self.aggregation_params()

    def trading_settings(self) -> TradingSettings:
        """How it trades in pool markets (:mod:`vmenergy.protocol.trading`)."""
        return TradingSettings.from_dict(self.trading)

    def strategy_specs(self) -> dict[str, StrategySpec]:
        """The strategy keys that name a user's class, by key."""
        out = {}
        for key in STRATEGY_KEYS:
            value = getattr(self, key)
            if key == "aggregation" and "class" not in value:
                continue
            spec = parse_strategy(value, key)
            if spec is not None:
                out[key] = spec
        return out

    def aggregation_params(self) -> AggregationParams:
        """The parameters of VME's aggregation from the ``aggregation`` table."""
        try:
            return AggregationParams(**self.aggregation)
        except TypeError as exc:  # an unknown key
            raise FlexOfferError("aggregation", f"bad parameters: {exc}") from None
        except FlexOfferError as exc:
            raise FlexOfferError(f"aggregation.{exc.path.removeprefix('params.')}", exc.reason) from None
