"""Bills: line items per prosumer and per market participant, in integer cents.

A prosumer's bill lists what it is paid (positive) and what it pays (negative), each line with a
quantity, a unit and, where there is one, a rate, so a person can check it with a calculator. A
market participant's (aggregator's) bill lists its market revenue and imbalance cost (its
earnings), what it paid out to its prosumers and the margin left. Every amount is rounded to the
cent once (:mod:`vmenergy.settlement.money`); totals are integer sums, so

    payouts + margin == earnings            (to the cent, for every participant)

holds by construction and each bill's lines add up to its total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from vmenergy.flexoffer.timeutil import format_utc

from .money import format_eur

__all__ = ["LINES", "LineSpec", "Line", "Bill", "ProsumerBills", "ParticipantBill"]


@dataclass(frozen=True)
class LineSpec:
    code: str
    label: str
    unit: str
    modes: tuple[str, ...]


#: Every line a prosumer bill can carry, in bill order; ``modes``: contracts whose bills show it.
LINES: tuple[LineSpec, ...] = (
    LineSpec("flexible_energy", "Flexible energy placed under the aggregator's control", "kWh", ("delegated",)),
    LineSpec("time_flexibility", "Time flexibility offered", "h", ("delegated",)),
    LineSpec("energy_flexibility", "Energy flexibility offered", "kWh", ("delegated",)),
    LineSpec("activations", "Activations", "activations", ("delegated",)),
    LineSpec("revenue_share", "Share of the market revenue of your verified adaptation", "kWh", ("delegated",)),
    LineSpec("offer_price", "Verified adaptation at your offer prices", "kWh", ("direct:offer",)),
    LineSpec("market_price", "Verified adaptation at market prices", "kWh", ("direct:market",)),
    LineSpec("fee", "Aggregator fee", "kWh", ("direct:offer", "direct:market")),
    LineSpec("penalty", "Deviation outside the tolerance band", "kWh", ("delegated", "direct:offer", "direct:market")),
    LineSpec("unverified", "Intervals not verified (see flags): not rewarded, not penalised", "intervals",
             ("delegated", "direct:offer", "direct:market")),
)
LINE_CODES = tuple(s.code for s in LINES)


@dataclass(frozen=True)
class Line:
    """One line of a bill: ``amount_cents`` is paid to the bill's holder when positive."""

    code: str
    label: str
    quantity: float
    unit: str
    rate: Optional[float]
    amount_cents: int
    note: str = ""

    @property
    def amount(self) -> str:
        return format_eur(self.amount_cents)

    def to_dict(self) -> dict:
        out = {"code": self.code, "label": self.label, "quantity": self.quantity, "unit": self.unit,
               "rate_eur": self.rate, "amount_cents": self.amount_cents, "amount_eur": self.amount}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Bill:
    """A readable bill of one party over one period."""

    holder: str
    role: str  # "prosumer" or "participant"
    period_start: int
    period_end: int
    lines: tuple[Line, ...]
    total_cents: int
    info: dict = field(default_factory=dict)

    @property
    def total(self) -> str:
        return format_eur(self.total_cents)

    def to_dict(self) -> dict:
        return {
            "holder": self.holder, "role": self.role, "period_start": format_utc(self.period_start),
            "period_end": format_utc(self.period_end), **self.info,
            "lines": [ln.to_dict() for ln in self.lines], "total_cents": self.total_cents, "total_eur": self.total,
        }

    def text(self) -> str:
        """Plain-text rendering for a person."""
        head = (f"{self.role.capitalize()} {self.holder}, "
                f"{format_utc(self.period_start)} to {format_utc(self.period_end)}")
        extra = ", ".join(f"{k} {v}" for k, v in self.info.items())
        rows = [head] + ([extra] if extra else [])
        for ln in self.lines:
            rate = "" if ln.rate is None else f" x {ln.rate:.4f} EUR"
            rows.append(f"  {ln.label:<62} {ln.quantity:>12.3f} {ln.unit:<11}{rate:<16} {ln.amount:>12} EUR"
                        + (f"  ({ln.note})" if ln.note else ""))
        rows.append(f"  {'Total':<62} {'':>12} {'':<11}{'':<16} {self.total:>12} EUR")
        return "\n".join(rows)


@dataclass(eq=False)
class ProsumerBills:
    """The bills of a whole population, columnar. Per line code: ``quantity`` (float64),
    ``rate`` (EUR per unit, NaN where the amount is not quantity x one rate), ``amount``
    (int64 cents). ``shown[code]`` says which rows' bills carry the line (by contract mode)."""

    prosumers: np.ndarray
    contract_index: np.ndarray
    contract_ids: tuple[str, ...]
    bill_kind: np.ndarray  # per contract: "delegated", "direct:offer" or "direct:market"
    aggregators: tuple[str, ...]
    aggregator_index: np.ndarray
    period_start: int
    period_end: int
    quantity: dict[str, np.ndarray]
    rate: dict[str, np.ndarray]
    amount: dict[str, np.ndarray]
    share: np.ndarray  # revenue-share fraction of each row's contract (0 if none)
    attributed_eur: np.ndarray  # market revenue attributed to each row's verified adaptation
    exempt: np.ndarray  # penalty waived (an assigned schedule was infeasible)

    def __len__(self) -> int:
        return len(self.prosumers)

    @property
    def total(self) -> np.ndarray:
        """Int64 cents per prosumer: the sum of its lines."""
        return sum((self.amount[c] for c in LINE_CODES), np.zeros(len(self), np.int64))

    def kind(self, i: int) -> str:
        return str(self.bill_kind[int(self.contract_index[i])])

    def bill(self, i: int) -> Bill:
        """Bill of prosumer row ``i``."""
        i = int(i)
        kind = self.kind(i)
        lines = []
        for spec in LINES:
            if kind not in spec.modes:
                continue
            r = float(self.rate[spec.code][i])
            note = ""
            if spec.code == "revenue_share" and self.share[i] > 0:
                note = f"{self.share[i] * 100:g} % of EUR {self.attributed_eur[i]:.4f} attributed to you"
            if spec.code == "penalty" and self.exempt[i]:
                note = "waived: an assigned schedule was infeasible"
            lines.append(Line(spec.code, spec.label, float(self.quantity[spec.code][i]), spec.unit,
                              None if np.isnan(r) else r, int(self.amount[spec.code][i]), note))
        total = sum(ln.amount_cents for ln in lines)
        return Bill(
            holder=str(self.prosumers[i]), role="prosumer", period_start=self.period_start, period_end=self.period_end,
            lines=tuple(lines), total_cents=total,
            info={"contract": self.contract_ids[int(self.contract_index[i])], "mode": kind,
                  "aggregator": self.aggregators[int(self.aggregator_index[i])]},
        )


@dataclass(frozen=True)
class ParticipantBill:
    """A market participant's (aggregator's) settlement: earnings, payouts, margin, in cents."""

    participant: str
    period_start: int
    period_end: int
    sold_kwh: float
    revenue_cents: int
    imbalance_kwh: float
    imbalance_cents: int  # cost, >= 0 when imbalance prices are >= 0
    payouts_cents: int
    prosumers: int

    @property
    def earnings_cents(self) -> int:
        return self.revenue_cents - self.imbalance_cents

    @property
    def margin_cents(self) -> int:
        return self.earnings_cents - self.payouts_cents

    def bill(self) -> Bill:
        lines = (
            Line("market_revenue", "Flexibility sold on the market", self.sold_kwh, "kWh", None, self.revenue_cents),
            Line("imbalance", "Imbalance (delivered vs sold adaptation)", self.imbalance_kwh, "kWh", None,
                 -self.imbalance_cents),
            Line("payouts", "Paid out to prosumers (net of their penalties)", float(self.prosumers), "prosumers",
                 None, -self.payouts_cents),
        )
        return Bill(
            holder=self.participant, role="participant", period_start=self.period_start, period_end=self.period_end,
            lines=lines, total_cents=self.margin_cents,
            info={"earnings_eur": format_eur(self.earnings_cents), "margin_eur": format_eur(self.margin_cents)},
        )
