"""Open flexibility contracts between a prosumer and its aggregator, as data.

Two trading modes (after GOFLEX):

- **delegated**: the prosumer's offers carry no prices; the aggregator trades on its own account
  and pays the prosumer what the contract says: per kWh of flexible energy placed under its
  control, per hour of time flexibility, per kWh of energy flexibility, per activation, and a
  share of the market revenue the prosumer's verified adaptation earned.
- **direct**: the price comes from the offer (its per-slice up/down prices) or from the market
  (the clearing price of the interval); the aggregator passes it on for the verified adaptation and
  keeps a fee.

Both have a baseline rule (how "what would have happened" is computed), a tolerance band for
deviations from the schedule and penalty terms for deviations outside it.

Contracts are plain data so operators can write them by hand: :func:`parse_contracts` reads TOML
or JSON *text* (or an already parsed dict) and validates every field with an error that names it.
Unknown fields are refused, because a misspelt ``revenue_shar`` that silently defaults to zero
would cost someone money.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime
from typing import Any, Mapping, Optional, Sequence

from vmenergy.flexoffer.errors import DOCUMENT, FlexOfferError
from vmenergy.flexoffer.timeutil import datetime_to_seconds, format_utc, parse_utc
from vmenergy.validation import set_field

from .errors import SettlementError, check

__all__ = [
    "MODES",
    "BASELINE_METHODS",
    "Adjustment",
    "BaselineRule",
    "Tolerance",
    "Reward",
    "DirectPricing",
    "Penalty",
    "Contract",
    "parse_contracts",
    "contracts_to_json",
    "default_contract",
]

MODES = ("delegated", "direct")
#: ``offer``: the offers' own default schedules (a sub-metered device); ``x_of_y``: mean of the X
#: highest (or lowest) of the last Y eligible days; ``comparative_day``: one chosen past day.
BASELINE_METHODS = ("offer", "x_of_y", "comparative_day")
SELECTIONS = ("high", "low")
PRICE_SOURCES = ("offer", "market")
#: No rate of a household flexibility contract comes near 1,000 EUR per kWh, hour or activation.
MAX_RATE = 1_000.0
MAX_DAYS = 366


_TABLE = "a table/object"  # TOML says table, JSON says object


def _rate(value: object, path: str, *, hi: float = MAX_RATE) -> float:
    """A contract's rates, shares and caps are never negative and never beyond ``hi``."""
    return check.number(value, path, minimum=0.0, maximum=hi)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    """Additive same-day adjustment of a baseline.

    The baseline is shifted, for the whole day, by the mean difference between metered energy and
    baseline over ``window`` intervals that end ``gap`` intervals before the prosumer's first
    activated interval (the gap keeps pre-activation behaviour such as pre-cooling out of it).
    ``cap_kwh`` bounds the shift per interval. Why: a day-type baseline misses today's weather;
    the morning's own readings correct it.
    """

    window: int = 4
    gap: int = 1
    cap_kwh: Optional[float] = None
    kind: str = "additive"

    def __post_init__(self) -> None:
        set_field(self, "kind", check.choice(self.kind, "kind", ("additive",)))
        set_field(self, "window", check.integer(self.window, "window", minimum=1, maximum=10_000))
        set_field(self, "gap", check.integer(self.gap, "gap", minimum=0, maximum=10_000))
        if self.cap_kwh is not None:
            set_field(self, "cap_kwh", _rate(self.cap_kwh, "cap_kwh", hi=1e6))


@dataclass(frozen=True)
class BaselineRule:
    """How the baseline of a prosumer under this contract is computed (see module docstring)."""

    method: str = "offer"
    x: int = 5
    y: int = 10
    select: str = "high"
    day: int = -1
    adjustment: Optional[Adjustment] = None

    def __post_init__(self) -> None:
        set_field(self, "method", check.choice(self.method, "method", BASELINE_METHODS))
        set_field(self, "x", check.integer(self.x, "x", minimum=1, maximum=MAX_DAYS))
        set_field(self, "y", check.integer(self.y, "y", minimum=1, maximum=MAX_DAYS))
        if self.x > self.y:
            raise SettlementError("x", f"x ({self.x}) must not exceed y ({self.y})")
        set_field(self, "select", check.choice(self.select, "select", SELECTIONS))
        set_field(self, "day", check.integer(self.day, "day", minimum=-MAX_DAYS, maximum=MAX_DAYS - 1))
        if self.adjustment is not None and not isinstance(self.adjustment, Adjustment):
            raise SettlementError("adjustment", "must be an Adjustment")

    @property
    def history_days(self) -> int:
        """Past days of metering this rule reads (0 for ``offer``)."""
        if self.method == "x_of_y":
            return self.y
        if self.method == "comparative_day":
            return -self.day if self.day < 0 else self.day + 1
        return 0


@dataclass(frozen=True)
class Tolerance:
    """Deviation band per interval: max(absolute_kwh, relative x |requested adaptation|)."""

    absolute_kwh: float = 0.0
    relative: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "absolute_kwh", _rate(self.absolute_kwh, "absolute_kwh", hi=1e6))
        set_field(self, "relative", _rate(self.relative, "relative", hi=10.0))


@dataclass(frozen=True)
class Reward:
    """Delegated-mode rewards (EUR per unit); ``revenue_share`` is a fraction in [0, 1]."""

    per_kwh_flexible: float = 0.0
    per_hour_time_flexibility: float = 0.0
    per_kwh_energy_flexibility: float = 0.0
    per_activation: float = 0.0
    revenue_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_kwh_flexible", "per_hour_time_flexibility", "per_kwh_energy_flexibility", "per_activation"):
            set_field(self, name, _rate(getattr(self, name), name))
        set_field(self, "revenue_share", _rate(self.revenue_share, "revenue_share", hi=1.0))


@dataclass(frozen=True)
class DirectPricing:
    """Direct-mode pricing: price ``source`` and the aggregator's fee."""

    source: str = "offer"
    fee_fraction: float = 0.0
    fee_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "source", check.choice(self.source, "source", PRICE_SOURCES))
        set_field(self, "fee_fraction", _rate(self.fee_fraction, "fee_fraction", hi=1.0))
        set_field(self, "fee_per_kwh", _rate(self.fee_per_kwh, "fee_per_kwh"))


@dataclass(frozen=True)
class Penalty:
    """Per kWh of deviation outside the tolerance band: ``per_kwh`` + ``imbalance_factor`` x the
    interval's imbalance price; at most ``cap_eur`` per bill (None = no cap)."""

    per_kwh: float = 0.0
    imbalance_factor: float = 0.0
    cap_eur: Optional[float] = None

    def __post_init__(self) -> None:
        set_field(self, "per_kwh", _rate(self.per_kwh, "per_kwh"))
        set_field(self, "imbalance_factor", _rate(self.imbalance_factor, "imbalance_factor", hi=100.0))
        if self.cap_eur is not None:
            set_field(self, "cap_eur", _rate(self.cap_eur, "cap_eur", hi=1e9))


@dataclass(frozen=True)
class Contract:
    """One open flexibility contract. ``valid_from``/``valid_until`` are epoch seconds (UTC)."""

    id: str
    mode: str
    aggregator: str
    baseline: BaselineRule = field(default_factory=BaselineRule)
    tolerance: Tolerance = field(default_factory=Tolerance)
    penalty: Penalty = field(default_factory=Penalty)
    reward: Optional[Reward] = None
    pricing: Optional[DirectPricing] = None
    currency: str = "EUR"
    valid_from: Optional[int] = None
    valid_until: Optional[int] = None

    def __post_init__(self) -> None:
        set_field(self, "id", check.identifier(self.id, "id"))
        set_field(self, "mode", check.choice(self.mode, "mode", MODES))
        set_field(self, "aggregator", check.identifier(self.aggregator, "aggregator"))
        if self.currency != "EUR":
            raise SettlementError("currency", f"only EUR is supported (got {self.currency!r})")
        for name, cls in (("baseline", BaselineRule), ("tolerance", Tolerance), ("penalty", Penalty)):
            if not isinstance(getattr(self, name), cls):
                raise SettlementError(name, f"must be a {cls.__name__}")
        if self.mode == "delegated":
            if self.pricing is not None:
                raise SettlementError("pricing", "only for direct contracts (delegated contracts pay by 'reward')")
            if self.reward is None:
                set_field(self, "reward", Reward())
            elif not isinstance(self.reward, Reward):
                raise SettlementError("reward", "must be a Reward")
        else:
            if self.reward is not None:
                raise SettlementError("reward", "only for delegated contracts (direct contracts are paid by 'pricing')")
            if self.pricing is None:
                set_field(self, "pricing", DirectPricing())
            elif not isinstance(self.pricing, DirectPricing):
                raise SettlementError("pricing", "must be a DirectPricing")
        for name in ("valid_from", "valid_until"):
            set_field(self, name, check.optional_integer(getattr(self, name), name))  # epoch seconds
        if self.valid_from is not None and self.valid_until is not None and self.valid_until <= self.valid_from:
            raise SettlementError("valid_until", "must be after valid_from")

    @property
    def bill_kind(self) -> str:
        """``delegated``, ``direct:offer`` or ``direct:market``: which lines its bills carry
        (the ``modes`` of :data:`~vmenergy.settlement.bills.LINES`)."""
        return self.mode if self.pricing is None else f"{self.mode}:{self.pricing.source}"

    def covers(self, start_seconds: int, end_seconds: int) -> bool:
        """True if the contract is valid for the whole period [start, end)."""
        return (self.valid_from is None or self.valid_from <= start_seconds) and (
            self.valid_until is None or end_seconds <= self.valid_until
        )

    # -- data form -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: object) -> "Contract":
        """Build and validate a contract from a parsed TOML/JSON table (paths are local)."""
        d = check.table(data, "", _CONTRACT_FIELDS, noun=_TABLE)
        kw: dict[str, Any] = {}
        for key in ("id", "mode", "aggregator", "currency"):
            if key in d:
                kw[key] = d[key]
        for key in ("id", "mode", "aggregator"):
            if key not in d:
                raise SettlementError(key, "required")
        for key in ("valid_from", "valid_until"):
            if key in d:
                kw[key] = _time(d[key], key)
        if "baseline" in d:
            b = check.table(d["baseline"], "baseline", _BASELINE_FIELDS, noun=_TABLE)
            adj = None
            if "adjustment" in b:
                a = check.table(b["adjustment"], "baseline.adjustment", _ADJUSTMENT_FIELDS, noun=_TABLE)
                adj = check.build("baseline.adjustment", lambda: Adjustment(**a))
            rest = {k: v for k, v in b.items() if k != "adjustment"}
            kw["baseline"] = check.build("baseline", lambda: BaselineRule(**rest, adjustment=adj))
        for key, cls_, fields in (
            ("tolerance", Tolerance, _TOLERANCE_FIELDS),
            ("penalty", Penalty, _PENALTY_FIELDS),
            ("reward", Reward, _REWARD_FIELDS),
            ("pricing", DirectPricing, _PRICING_FIELDS),
        ):
            if key in d:
                t = check.table(d[key], key, fields, noun=_TABLE)
                kw[key] = check.build(key, partial(cls_, **t))
        return cls(**kw)

    def to_dict(self) -> dict:
        """The data form (parses back to an equal contract); unset optional fields are omitted."""
        out: dict[str, Any] = {"id": self.id, "mode": self.mode, "aggregator": self.aggregator,
                               "currency": self.currency}
        if self.valid_from is not None:
            out["valid_from"] = format_utc(self.valid_from)
        if self.valid_until is not None:
            out["valid_until"] = format_utc(self.valid_until)
        b = self.baseline
        bd: dict[str, Any] = {"method": b.method}
        if b.method == "x_of_y":
            bd.update(x=b.x, y=b.y, select=b.select)
        if b.method == "comparative_day":
            bd["day"] = b.day
        if b.adjustment is not None:
            a = b.adjustment
            bd["adjustment"] = {"kind": a.kind, "window": a.window, "gap": a.gap}
            if a.cap_kwh is not None:
                bd["adjustment"]["cap_kwh"] = a.cap_kwh
        out["baseline"] = bd
        out["tolerance"] = {"absolute_kwh": self.tolerance.absolute_kwh, "relative": self.tolerance.relative}
        p = self.penalty
        out["penalty"] = {"per_kwh": p.per_kwh, "imbalance_factor": p.imbalance_factor}
        if p.cap_eur is not None:
            out["penalty"]["cap_eur"] = p.cap_eur
        if self.reward is not None:
            r = self.reward
            out["reward"] = {k: getattr(r, k) for k in _REWARD_FIELDS}
        if self.pricing is not None:
            q = self.pricing
            out["pricing"] = {k: getattr(q, k) for k in _PRICING_FIELDS}
        return out


_CONTRACT_FIELDS = ("id", "mode", "aggregator", "currency", "valid_from", "valid_until", "baseline", "tolerance",
                    "penalty", "reward", "pricing")
_BASELINE_FIELDS = ("method", "x", "y", "select", "day", "adjustment")
_ADJUSTMENT_FIELDS = ("kind", "window", "gap", "cap_kwh")
_TOLERANCE_FIELDS = ("absolute_kwh", "relative")
_PENALTY_FIELDS = ("per_kwh", "imbalance_factor", "cap_eur")
_REWARD_FIELDS = ("per_kwh_flexible", "per_hour_time_flexibility", "per_kwh_energy_flexibility", "per_activation",
                  "revenue_share")
_PRICING_FIELDS = ("source", "fee_fraction", "fee_per_kwh")


def _time(value: object, path: str) -> int:
    """Epoch seconds of an ISO 8601 UTC text or a TOML offset date-time."""
    try:
        if isinstance(value, datetime):
            return datetime_to_seconds(value)
        return parse_utc(value, path)
    except FlexOfferError as exc:
        raise SettlementError(path, exc.reason) from None


def parse_contracts(source: str | bytes | Mapping | Sequence, format: str = "auto") -> list[Contract]:
    """Parse and validate contracts from TOML or JSON text (or an already parsed document).

    The document holds a list ``contracts`` (TOML: ``[[contracts]]`` tables); a single contract
    table on its own is accepted too. Errors name ``contracts[i].field``. Ids must be unique.
    Pure: reads only what it is handed (the shell reads files).
    """
    if format not in ("auto", "toml", "json"):
        raise SettlementError("format", "must be auto, toml or json")
    data: object = source
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SettlementError(DOCUMENT, f"not UTF-8 text ({exc.reason})") from None
        data = source
    if isinstance(source, str):
        kinds = [format] if format != "auto" else (["json", "toml"] if source.lstrip()[:1] == "{" else ["toml", "json"])
        first_error = None
        for kind in kinds:
            try:
                data = json.loads(source, parse_constant=_no_constant) if kind == "json" else tomllib.loads(source)
                break
            except (ValueError, tomllib.TOMLDecodeError) as exc:
                first_error = first_error or f"not valid {kind.upper()}: {exc}"
        else:
            raise SettlementError(DOCUMENT, first_error or "empty document")
    if isinstance(data, Mapping) and "contracts" in data:
        extra = [k for k in data if k != "contracts"]
        if extra:
            raise SettlementError(str(extra[0]), "unknown top-level field (known: contracts)")
        items = data["contracts"]
    elif isinstance(data, Mapping):
        items = [data]
    else:
        items = data
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise SettlementError("contracts", "must be a list of contract tables")
    out: list[Contract] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            c = Contract.from_dict(item)
        except FlexOfferError as exc:
            raise check.adopt(exc).within(f"contracts[{i}]") from None
        if c.id in seen:
            raise SettlementError(f"contracts[{i}].id", f"duplicate id {c.id!r} (also contracts[{seen[c.id]}])")
        seen[c.id] = i
        out.append(c)
    return out


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def contracts_to_json(contracts: Sequence[Contract], *, indent: Optional[int] = 2) -> str:
    """JSON text of ``contracts`` in the form :func:`parse_contracts` reads."""
    return json.dumps({"contracts": [c.to_dict() for c in contracts]}, indent=indent)


def default_contract(aggregator: str, spec: Optional[Mapping] = None) -> Contract:
    """The prosumer contract an aggregator applies: ``spec`` is a contract table as in
    docs/settlement.md (TOML/JSON), completed with the aggregator's id; without one, a delegated
    contract paying for energy flexibility and activations with a 10 % tolerance band."""
    if spec:
        return Contract.from_dict({"id": "default", "mode": "delegated", **dict(spec), "aggregator": aggregator})
    return Contract.from_dict({
        "id": "default", "mode": "delegated", "aggregator": aggregator,
        "reward": {"per_kwh_energy_flexibility": 0.02, "per_activation": 0.10, "revenue_share": 0.5},
        "tolerance": {"relative": 0.10, "absolute_kwh": 0.01},
        "penalty": {"per_kwh": 0.05},
    })
