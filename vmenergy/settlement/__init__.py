"""Settlement: contracts, baselines, verification from metering, bills and KPIs.

Closes the loop of a flexibility day: prosumers are rewarded for the flexibility they offered and
for how well they followed their schedules; aggregators see what they earned, paid out and kept;
KPIs summarise it after the GOFLEX list. Pure core: no I/O, no clock, no XMPP; works on a
population with numpy (prosumers x intervals arrays, in blocks).

    from vmenergy.settlement import settle, kpis
    contracts = parse_contracts(toml_text)
    asg = assignments_from_offers(offers, schedules, meter)      # or assignments_from_sets(...)
    result = settle(meter, asg, contracts, contract_of, market)
    print(result.bill("house17@vme.localhost").text())
    report = kpis(result, aggregated_offers)
    text = bills_to_json(result); table = kpis_to_csv(report)

See ``docs/settlement.md`` for every rule, the rounding and reconciliation rule and each KPI.
"""

from .assignments import Assignments, OfferFlag, assignments_from_offers, assignments_from_sets
from .bills import LINES, Bill, Line, ParticipantBill, ProsumerBills
from .contracts import (
    Adjustment,
    BaselineRule,
    Contract,
    Penalty,
    DirectPricing,
    Reward,
    Tolerance,
    contracts_to_json,
    default_contract,
    parse_contracts,
)
from .errors import SettlementError
from .export import bills_to_csv, bills_to_json, flags_to_csv, kpis_to_csv, kpis_to_json
from .kpis import KPIReport, Projection, kpis
from .market_sales import MarketSales
from .metering import MeterData, MeterFlag, MeterFlags, check_meter
from .money import allocate, cents, format_eur, to_cents
from .settle import Settlement, settle

__all__ = [
    "settle",
    "kpis",
    "Settlement",
    "KPIReport",
    "Projection",
    "SettlementError",
    "Contract",
    "BaselineRule",
    "Adjustment",
    "Tolerance",
    "Reward",
    "DirectPricing",
    "Penalty",
    "parse_contracts",
    "default_contract",
    "contracts_to_json",
    "MeterData",
    "MeterFlag",
    "MeterFlags",
    "check_meter",
    "MarketSales",
    "Assignments",
    "OfferFlag",
    "assignments_from_offers",
    "assignments_from_sets",
    "LINES",
    "Line",
    "Bill",
    "ProsumerBills",
    "ParticipantBill",
    "bills_to_json",
    "bills_to_csv",
    "flags_to_csv",
    "kpis_to_json",
    "kpis_to_csv",
    "to_cents",
    "cents",
    "allocate",
    "format_eur",
]
