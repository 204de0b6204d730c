"""The run folder's data files: offers.jsonl, schedules.jsonl, timeseries.csv, bills.csv.

Offers and schedules are written in the wire contract's JSON form (one document per line), so
``vmenergy validate offers.jsonl schedules.jsonl`` re-checks every schedule against its offer
with no VME code beyond the validator. Numbers in the CSV files have a fixed number of decimals;
money is integer cents plus the same amount as a decimal EUR string, never a binary float.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterator

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.settlement.money import format_eur
from vmenergy.wire.json import offer_to_json, schedule_to_json

from .collect import RunData, final_schedules, natural_key, prosumer_offers_held
from .series import Series

__all__ = ["run_offers", "run_schedules", "offers_jsonl", "schedules_jsonl", "timeseries_csv", "bills_csv",
           "TIMESERIES_COLUMNS", "BILLS_COLUMNS", "write_data_files"]

TIMESERIES_COLUMNS = ("aggregator", "interval_start", "baseline_kwh", "scheduled_kwh", "measured_kwh",
                      "flex_min_kwh", "flex_max_kwh", "price_eur_per_kwh")
BILLS_COLUMNS = ("bill_id", "from", "to", "period_start", "period_end", "code", "description", "offer_id",
                 "amount_cents", "amount_eur")


def run_offers(run: RunData) -> list[FlexOffer]:
    """Every offer of the run: each prosumer offer as its aggregator accepted it (an implicit
    window is resolved at acceptance, which is what its schedule was made for) or, if the
    aggregator never held it, as the prosumer has it; then every aggregate an aggregator built."""
    held = {rec.offer.id: rec.offer for a in run.aggregators for rec in prosumer_offers_held(a, run)}
    out: dict[str, FlexOffer] = {}
    for p in run.prosumers:
        for rec in p.offers:
            out[rec.offer.id] = held.get(rec.offer.id, rec.offer)
    for oid, fo in held.items():
        out.setdefault(oid, fo)
    offers = [out[k] for k in sorted(out, key=natural_key)]
    for a in run.aggregators:
        offers += [r.offer for r in a.aggregates]
    return offers


def run_schedules(run: RunData) -> list[Schedule]:
    """The schedule that binds each prosumer offer (see :func:`final_schedules`), then the
    schedule of every aggregate that got one (cleared by the market, or planned)."""
    finals = final_schedules(run)
    out = [finals[k] for k in sorted(finals, key=natural_key)]
    for a in run.aggregators:
        out += [r.schedule for r in a.aggregates if r.schedule is not None]
    return out


def offers_jsonl(run: RunData) -> Iterator[str]:
    """offers.jsonl line by line (a million offers' text is not held at once)."""
    return (offer_to_json(fo) + "\n" for fo in run_offers(run))


def schedules_jsonl(run: RunData) -> Iterator[str]:
    """schedules.jsonl line by line."""
    return (schedule_to_json(s) + "\n" for s in run_schedules(run))


def _num(x: float, decimals: int = 6) -> str:
    """Fixed decimals; empty for NaN (no value); never ``-0.000000``."""
    if x is None or not math.isfinite(x):
        return ""
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def timeseries_csv(s: Series) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TIMESERIES_COLUMNS)
    times = [format_utc(int(t)) for t in s.times()]
    for i, name in enumerate(s.aggregators):
        for k, t in enumerate(times):
            w.writerow((name, t, _num(s.baseline[i, k]), _num(s.scheduled[i, k]), _num(s.measured[i, k]),
                        _num(s.flex_min[i, k]), _num(s.flex_max[i, k]), _num(s.price[i, k])))
    return out.getvalue()


def bills_csv(run: RunData) -> str:
    """Every bill line: the bills each aggregator sent (to prosumers or child aggregators), then
    the bills each aggregator received from its market or parent. ``amount_cents`` > 0: ``from``
    pays ``to``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(BILLS_COLUMNS)
    rows = [(a.jid, to, bill) for a in run.aggregators for to, bill in a.bills]
    rows += [(a.upstream_jid or "", a.jid, bill) for a in run.aggregators for bill in a.upstream_bills]
    for frm, to, bill in rows:
        for line in bill.lines:
            w.writerow((bill.bill_id, frm, to, format_utc(bill.period_start), format_utc(bill.period_end), line.code,
                        line.description, line.offer_id or "", line.amount_cents, format_eur(line.amount_cents)))
    return out.getvalue()


def write_data_files(run: RunData, s: Series, run_dir: Path) -> None:
    for name, lines in (("offers.jsonl", offers_jsonl(run)), ("schedules.jsonl", schedules_jsonl(run))):
        with (run_dir / name).open("w") as f:
            f.writelines(lines)
    (run_dir / "timeseries.csv").write_text(timeseries_csv(s))
    (run_dir / "bills.csv").write_text(bills_csv(run))
