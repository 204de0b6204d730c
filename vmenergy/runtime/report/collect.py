"""What the report reads: every agent's ledger, in a fixed order.

Stores return records in insertion order, which depends on message timing; everything here is
sorted by id (numbers inside ids compared as numbers, so ``agg-10`` follows ``agg-9``) so that two
runs that ended in the same state give the same report byte for byte.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Mapping, Optional

from vmenergy.flexoffer import FlexOffer, Profile, Schedule
from vmenergy.flexoffer.checked import already_checked
from vmenergy.protocol.dso import CongestionPoint, DsoOrder
from vmenergy.protocol.engine import Ledger, bare
from vmenergy.protocol.market import BidRecord, SessionRecord
from vmenergy.protocol.messages import BillMessage, FlexSettlementMessage
from vmenergy.protocol.prosumer import DefaultRun, ProsumerOffer
from vmenergy.protocol.records import AggOffer, AggregateRecord
from vmenergy.runtime.scenario import Plan
from vmenergy.settlement import Contract, default_contract
from vmenergy.store import read_ledger

__all__ = ["ProsumerData", "AggregatorData", "MarketData", "DsoData", "RunData", "collect", "run_data", "part_timings",
           "final_schedules", "prosumer_offers_held", "natural_key", "REPORT_TABLES"]


def natural_key(text: str) -> tuple:
    """Sort key that compares the digit runs of ``text`` as numbers (``house2`` < ``house10``)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p)


@dataclass(frozen=True)
class ProsumerData:
    jid: str
    aggregator: str
    planned: tuple[str, ...]  # ids of the offers the plan gives it
    started: bool  # False: no store (the agent never ran)
    offers: tuple[ProsumerOffer, ...]
    bills: tuple[BillMessage, ...]
    default_runs: tuple[DefaultRun, ...] = ()  # normal programmes its devices ran instead of a schedule


@dataclass(frozen=True)
class AggregatorData:
    jid: str
    upstream: str  # plan | market | parent
    upstream_jid: Optional[str]
    contract: Contract
    started: bool
    offers: tuple[AggOffer, ...]
    aggregates: tuple[AggregateRecord, ...]
    bills: tuple[tuple[str, BillMessage], ...]  # (addressee, bill) as sent
    upstream_bills: tuple[BillMessage, ...]  # bills from its market or parent
    unanswered: int  # messages still waiting for an acknowledgement
    flex_settlements: tuple[FlexSettlementMessage, ...] = ()  # what its DSOs paid for their orders


@dataclass(frozen=True)
class MarketData:
    jid: str
    started: bool
    bill_after: int  # seconds after a session's delivery ends before it is billed
    sessions: tuple[SessionRecord, ...]
    bids: tuple[BidRecord, ...]
    participants: tuple[str, ...]
    unanswered: int


@dataclass(frozen=True)
class DsoData:
    """A DSO as its ledger left it: its congestion points (with their limits), the prosumers
    behind each (from the aggregators' ``locations`` in the plan), what it sent."""

    jid: str
    started: bool
    points: Mapping[str, CongestionPoint]
    behind: Mapping[str, tuple[str, ...]]  # point -> prosumer JIDs
    requests: int
    replies: int
    orders: tuple[DsoOrder, ...]
    unanswered: int


@dataclass(frozen=True)
class RunData:
    """A run's agents as their ledgers left them (plus the plan's facts the report needs)."""

    name: str
    seed: int
    start: int
    until: int
    clock_mode: str
    roles: Mapping[str, str]  # bare JID -> role
    prosumers: tuple[ProsumerData, ...]
    aggregators: tuple[AggregatorData, ...]
    markets: tuple[MarketData, ...]
    dsos: tuple[DsoData, ...] = ()

    @property
    def resolution(self) -> int:
        """The offers' resolution (seconds per interval; 900 when no offer was seen)."""
        for p in self.prosumers:
            for rec in p.offers:
                return rec.offer.resolution
        return 900

    def role_of(self, jid: str) -> str:
        return self.roles.get(bare(jid), "unknown")


def _values(ledger: Optional[Ledger], table: str) -> list:
    if ledger is None:
        return []
    return [v for _, v in sorted(ledger.table(table).items(), key=lambda kv: natural_key(kv[0]))]


def _bits(profiles: tuple[Profile, ...]) -> bytes:
    """Every number of ``profiles`` as IEEE bits: ``==`` takes -0.0 for 0.0, which the report's
    files tell apart."""
    out = array("d")
    for p in profiles:
        for s in p.slices:
            out.append(s.min)
            out.append(s.max)
            if s.values:
                out.extend(s.values)
        if p.total is not None:
            out.extend(x for x in (p.total.min, p.total.max) if x is not None)
        if p.polytope is not None:
            out.extend(p.polytope.b)
            for row in p.polytope.A:
                out.extend(row)
    return out.tobytes()


class SharedOffers:
    """One copy of each offer's profiles in the report. A prosumer's store and its aggregator's
    hold the same offer, and each store is decoded on its own, so the report held every offer
    twice (a heat pump's day is a 48 x 24 polytope): an offer read again under the same id and
    version whose profiles are identical, to the bit, takes the profiles read first."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, int], tuple[Profile, ...]] = {}

    def offer(self, fo: FlexOffer) -> FlexOffer:
        held = self._first.setdefault((fo.id, fo.version), fo.profiles)
        if held is fo.profiles or held != fo.profiles or _bits(held) != _bits(fo.profiles):
            return fo
        with already_checked():  # the same parts, checked when they were first made
            return replace(fo, profiles=held)

    def records(self, recs: list) -> tuple:
        """``recs`` (records with an ``offer``) with their offers' profiles shared."""
        out = []
        for rec in recs:
            fo = self.offer(rec.offer)
            out.append(rec if fo is rec.offer else replace(rec, offer=fo))
        return tuple(out)


def run_data(plan: Plan, ledgers: Mapping[str, Optional[Ledger]]) -> RunData:
    """The run from ``ledgers`` (bare JID -> ledger, None or absent for an agent that never
    started); used directly by tests that run the engines in memory."""
    def ledger_of(jid: str) -> Optional[Ledger]:
        return ledgers.get(bare(jid))

    shared = SharedOffers()

    prosumers = []
    for spec in sorted(plan.by_role("prosumer"), key=lambda s: natural_key(bare(s.jid))):
        led = ledger_of(spec.jid)
        prosumers.append(ProsumerData(
            bare(spec.jid), bare(spec.config.get("aggregator", "")),
            tuple(sorted((o["offer"]["id"] for o in spec.offers), key=natural_key)), led is not None,
            shared.records(_values(led, "offers")), tuple(_values(led, "bills")), tuple(_values(led, "default_runs"))))
    aggregators = []
    for spec in sorted(plan.by_role("aggregator"), key=lambda s: natural_key(bare(s.jid))):
        led = ledger_of(spec.jid)
        up_jid = spec.config.get("upstream_jid")
        aggregators.append(AggregatorData(
            bare(spec.jid), spec.config.get("upstream", "plan"), bare(up_jid) if up_jid else None,
            default_contract(bare(spec.jid), spec.config.get("contract")), led is not None,
            shared.records(_values(led, "offers")), tuple(_values(led, "aggregates")),
            tuple(sorted(_values(led, "bills"), key=lambda ob: natural_key(ob[1].bill_id))),
            tuple(sorted(_values(led, "upstream_bills"), key=lambda b: natural_key(b.bill_id))),
            0 if led is None else len(led.table("outbox")),
            tuple(sorted((r.settlement for r in _values(led, "flex_replies") if r.settlement is not None),
                         key=lambda s: natural_key(s.settlement_id)))))
    markets = []
    for spec in sorted(plan.by_role("market"), key=lambda s: natural_key(bare(s.jid))):
        led = ledger_of(spec.jid)
        markets.append(MarketData(
            bare(spec.jid), led is not None, int(spec.config.get("bill_after", 3600)),
            tuple(sorted(_values(led, "sessions"), key=lambda r: (r.opened, natural_key(r.notice.session_id)))),
            tuple(_values(led, "bids")), tuple(sorted(led.table("participants"), key=natural_key) if led else ()),
            0 if led is None else len(led.table("outbox"))))
    behind: dict[str, list[str]] = {}
    for spec in plan.by_role("aggregator"):
        for prosumer, point in (spec.config.get("locations") or {}).items():
            behind.setdefault(point, []).append(bare(prosumer))
    dsos = []
    for spec in sorted(plan.by_role("dso"), key=lambda s: natural_key(bare(s.jid))):
        led = ledger_of(spec.jid)
        res = int(spec.config.get("resolution", 900))
        points = {name: CongestionPoint(name, p["limit"], p.get("lower"), res)
                  for name, p in sorted(spec.config.get("points", {}).items())}
        dsos.append(DsoData(
            bare(spec.jid), led is not None, points,
            {name: tuple(sorted(behind.get(name, ()), key=natural_key)) for name in points},
            0 if led is None else len(led.table("dso_requests")), 0 if led is None else len(led.table("dso_replies")),
            tuple(_values(led, "dso_orders")), 0 if led is None else len(led.table("outbox"))))
    return RunData(
        name=plan.name, seed=plan.seed, start=plan.start, until=plan.until,
        clock_mode=str(plan.clock.get("mode", "")), roles={bare(a.jid): a.role for a in plan.agents},
        prosumers=tuple(prosumers), aggregators=tuple(aggregators), markets=tuple(markets), dsos=tuple(dsos))


#: The ledger tables :func:`run_data` reads, by role (the rest of a store is not decoded).
REPORT_TABLES: dict[str, tuple[str, ...]] = {
    "prosumer": ("offers", "bills", "default_runs"),
    "aggregator": ("offers", "aggregates", "bills", "upstream_bills", "outbox", "flex_replies"),
    "market": ("sessions", "bids", "participants", "outbox"),
    "dso": ("dso_requests", "dso_replies", "dso_orders", "outbox"),
}


class _Stores(Mapping[str, Optional[Ledger]]):
    """Bare JID -> the agent's ledger, read from its store when asked and not kept: the report
    holds what :func:`run_data` takes from each ledger, never every store at once. The records
    were written by the agents from objects that had passed their rules, so they are read back
    without checking them again (:func:`vmenergy.flexoffer.checked.already_checked`)."""

    def __init__(self, plan: Plan) -> None:
        self._agents = {bare(a.jid): a for a in plan.agents}

    def __getitem__(self, jid: str) -> Optional[Ledger]:
        agent = self._agents[jid]
        with already_checked():
            return read_ledger(agent.store, REPORT_TABLES.get(agent.role))

    def __iter__(self) -> Iterator[str]:
        return iter(self._agents)

    def __len__(self) -> int:
        return len(self._agents)


def collect(plan: Plan) -> RunData:
    """The run as the agents' stores hold it (read-only; agents may still be writing)."""
    return run_data(plan, _Stores(plan))


def part_timings(run_dir: Path, plan: Plan) -> dict:
    """Start-up figures each swarm process wrote, and the priority it ran at (runtime/priority.py;
    wall-clock and machine facts: they go to timings.json only)."""
    out = {}
    for part in plan.parts:
        f = Path(run_dir) / "parts" / f"{part}.json"
        if f.exists():
            d = json.loads(f.read_text())
            out[part] = {k: d[k] for k in ("agents", "start_seconds", "per_agent_ms", "niceness", "group_niceness",
                                     "session_leader")
                         if k in d}
    return out


def final_schedules(run: RunData) -> dict[str, Schedule]:
    """Offer id -> the schedule that binds it: the one its prosumer accepted (and executed), or,
    for a prosumer whose store is missing, the one its aggregator had confirmed."""
    out: dict[str, Schedule] = {}
    for a in run.aggregators:
        for rec in a.offers:
            if rec.schedule is not None and rec.schedule_confirmed and run.role_of(rec.owner) == "prosumer":
                out[rec.offer.id] = rec.schedule
    for p in run.prosumers:
        for rec in p.offers:
            if rec.schedule is not None:
                out[rec.offer.id] = rec.schedule
    return out


def prosumer_offers_held(a: AggregatorData, run: RunData) -> list[AggOffer]:
    """The offers an aggregator holds from prosumers (a parent's offers from child aggregators
    are aggregates, counted with their child)."""
    return [rec for rec in a.offers if run.role_of(rec.owner) == "prosumer"]
