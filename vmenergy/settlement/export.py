"""Bills, flags and KPIs as JSON and CSV text.

Pure: every function returns a string; writing it somewhere is the shell's job. Money is exported
twice on purpose: ``amount_cents`` (an integer, what the bill is computed in and what programs
should add up) and ``amount_eur`` (the same as an exact decimal string, for people and
spreadsheets); never as a binary float.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Optional

from vmenergy.flexoffer.timeutil import format_utc

from .bills import Bill
from .kpis import KPIReport
from .settle import Settlement

__all__ = ["bills_to_json", "bills_to_csv", "flags_to_csv", "kpis_to_json", "kpis_to_csv", "BILL_CSV_COLUMNS"]

BILL_CSV_COLUMNS = ("holder", "role", "contract", "mode", "aggregator", "period_start", "period_end", "code", "label",
                    "quantity", "unit", "rate_eur", "amount_cents", "amount_eur", "note")


def _rows(settlement: Settlement, rows: Optional[Iterable[int]]) -> Iterable[int]:
    return range(len(settlement.prosumers)) if rows is None else rows


def bills_to_json(settlement: Settlement, rows: Optional[Iterable[int]] = None, *, indent: Optional[int] = None,
                  flags: bool = True) -> str:
    """All prosumer bills (or those of ``rows``), every participant bill with its reconciliation,
    and (``flags=True``) every flagged prosumer interval."""
    s = settlement
    doc = {
        "period_start": format_utc(s.period_start * s.resolution),
        "period_end": format_utc(s.period_end * s.resolution),
        "resolution": s.resolution,
        "prosumer_bills": [s.bills.bill(i).to_dict() for i in _rows(s, rows)],
        "participant_bills": [
            {**p.bill().to_dict(), "reconciliation": {
                "earnings_cents": p.earnings_cents, "payouts_cents": p.payouts_cents, "margin_cents": p.margin_cents,
                "balanced": p.payouts_cents + p.margin_cents == p.earnings_cents}}
            for p in s.participants
        ],
    }
    if flags:
        doc["flag_counts"] = s.flags.counts()
        doc["flags"] = s.flag_records()
    return json.dumps(doc, indent=indent, allow_nan=False, default=_plain)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _bill_rows(bill: Bill) -> Iterable[list]:
    info = bill.info
    common = [bill.holder, bill.role, info.get("contract", ""), info.get("mode", ""), info.get("aggregator", ""),
              format_utc(bill.period_start), format_utc(bill.period_end)]
    for ln in bill.lines:
        yield common + [ln.code, ln.label, repr(float(ln.quantity)), ln.unit, "" if ln.rate is None else repr(ln.rate),
                        ln.amount_cents, ln.amount, ln.note]
    yield common + ["total", "Total", "", "", "", bill.total_cents, bill.total, ""]


def bills_to_csv(settlement: Settlement, rows: Optional[Iterable[int]] = None, *, participants: bool = True) -> str:
    """One CSV row per bill line (long format, columns :data:`BILL_CSV_COLUMNS`), a ``total`` row
    closing each bill; participant bills follow the prosumer bills."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(BILL_CSV_COLUMNS)
    s = settlement
    for i in _rows(s, rows):
        w.writerows(_bill_rows(s.bills.bill(i)))
    if participants:
        for p in s.participants:
            w.writerows(_bill_rows(p.bill()))
    return out.getvalue()


def flags_to_csv(settlement: Settlement) -> str:
    """Every flagged prosumer interval: prosumer, interval, time, flags, reasons."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(("prosumer", "interval", "time", "flags", "reasons"))
    for rec in settlement.flag_records():
        w.writerow((rec["prosumer"], rec["interval"], rec["time"], "|".join(rec["flags"]), "; ".join(rec["reasons"])))
    return out.getvalue()


def kpis_to_json(report: KPIReport, *, indent: Optional[int] = None) -> str:
    d = report.to_dict()
    d["period_start"] = format_utc(report.period_start)
    d["period_end"] = format_utc(report.period_end)
    d["hours"] = [format_utc(h) for h in report.hours]
    return json.dumps(d, indent=indent, allow_nan=False)


def kpis_to_csv(report: KPIReport, table: str = "hourly") -> str:
    """One KPI table as CSV: ``hourly`` (one row per hour), ``summary`` (metric, value) or
    ``projections`` (one row per scale)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if table == "hourly":
        w.writerow(("hour", "load_adaptability", "demand_variation_kwh", "adaptation_planned_mwh",
                    "adaptation_delivered_mwh"))
        for k, h in enumerate(report.hours):
            la = "" if report.load_adaptability is None else repr(report.load_adaptability[k])
            dv = "" if report.demand_variation_kwh is None else repr(report.demand_variation_kwh[k])
            w.writerow((format_utc(h), la, dv, repr(report.adaptation_planned_mwh[k]),
                        repr(report.adaptation_delivered_mwh[k])))
    elif table == "summary":
        w.writerow(("metric", "value"))
        for key in ("participants", "period_start", "period_end", "peak_demand_kw", "revenue_eur", "imbalance_cost_eur",
                    "earnings_eur", "payouts_eur", "margin_eur", "savings_eur", "flexible_capacity_mw",
                    "capacity_basis", "eur_per_mw_year"):
            v = getattr(report, key)
            if key in ("period_start", "period_end"):
                v = format_utc(v)
            elif key == "participants":
                v = " ".join(v)
            w.writerow((key, "" if v is None else v))
    elif table == "projections":
        cols = ("scale", "flexible_capacity_mw", "adaptation_planned_mwh", "revenue_eur", "imbalance_cost_eur",
                "earnings_eur", "eur_per_mw_year")
        w.writerow(cols)
        for p in report.projections:
            w.writerow(tuple("" if getattr(p, c) is None else getattr(p, c) for c in cols))
    else:
        from .errors import SettlementError

        raise SettlementError("table", "must be hourly, summary or projections")
    return out.getvalue()


