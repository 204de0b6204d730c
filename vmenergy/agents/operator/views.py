"""The read-only operator commands: what an agent's ledger says, as short text.

Each view takes the command's context (:class:`Ctx`: the agent, the scenario time, who asks)
and its checked argument values, and only reads: it runs between engine steps (under the
agent's engine lock), so it sees a consistent ledger. Times are UTC; energies kWh; money EUR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from vmenergy.flexoffer import FlexOffer, Schedule, State
from vmenergy.protocol.aggregator import AGG_BILLS, AGG_OFFERS, AGGREGATES, UPSTREAM_BILLS
from vmenergy.protocol.market import BIDS, MARKET_SESSIONS, PARTICIPANTS, market_summary
from vmenergy.protocol.operators import Access
from vmenergy.protocol.prosumer import PROSUMER_BILLS, PROSUMER_OFFERS
from vmenergy.protocol.upstream import MARKET_NOTICES
from vmenergy.settlement.money import format_eur

from .text import kwh, pairs, table, when

#: A :class:`vmenergy.agents.base.VmeAgent` (not imported: the agent imports this package).
VmeAgent = Any

__all__ = ["VmeAgent", "Ctx", "offer_records", "schedules", "aggregate_records", "session_records", "bill_keys",
           "window"]


@dataclass(frozen=True)
class Ctx:
    """What a view needs: the ``agent``, scenario time ``now``, the ``sender`` (bare JID) and
    their ``access``, the commands they may use and the operator desk (for ``watch``)."""

    agent: VmeAgent
    now: int
    sender: str
    access: Access
    commands: tuple = ()
    desk: Any = None
    full_jid: str = ""


# -- lookups shared with the commands' options --------------------------------------------------
def offer_records(agent: VmeAgent) -> list:
    table_ = PROSUMER_OFFERS if agent.role == "prosumer" else AGG_OFFERS
    if agent.role not in ("prosumer", "aggregator"):
        return []
    return sorted(agent.engine.ledger[table_].values(), key=lambda r: r.offer.id)  # type: ignore[attr-defined]


def aggregate_records(agent: VmeAgent) -> list:
    if agent.role != "aggregator":
        return []
    return sorted(agent.engine.ledger[AGGREGATES].values(), key=lambda r: r.aggregate_id)


def session_records(agent: VmeAgent) -> list:
    if agent.role != "market":
        return []
    return sorted(agent.engine.ledger[MARKET_SESSIONS].values(), key=lambda r: (r.opened, r.notice.session_id))


def schedules(agent: VmeAgent) -> list[tuple[str, Schedule]]:
    """(offer or aggregate id, schedule) of everything scheduled, by start."""
    out = [(r.offer.id, r.schedule) for r in offer_records(agent) if r.schedule is not None]
    out += [(r.aggregate_id, r.schedule) for r in aggregate_records(agent) if r.schedule is not None]
    return sorted(out, key=lambda x: (x[1].start * x[1].resolution, x[0]))


def bill_keys(agent: VmeAgent) -> list[str]:
    """What ``bill`` takes: a prosumer's bill ids, an aggregator's prosumers, a market's participants."""
    ledger = agent.engine.ledger
    if agent.role == "prosumer":
        return sorted(ledger[PROSUMER_BILLS].keys())
    if agent.role == "aggregator":
        return sorted({owner for owner, _ in ledger[AGG_BILLS].values()})
    return sorted({b.participant for b in ledger[BIDS].values()})


def window(fo: FlexOffer, now: Optional[int] = None) -> str:
    """The start window of an offer, ``18:30-20:00`` (UTC; with the date unless it is ``now``'s
    day), or ``now`` for an implicit one."""
    res = fo.resolution
    first, last = fo.earliest_start(), fo.latest_start()
    if first is None:
        return "now"
    a = when(first * res, now)
    return a if last is None or last == first else f"{a}-{when(last * res)[-5:]}"


def _energy(fo: FlexOffer) -> str:
    lo, hi = fo.min_total_energy, fo.max_total_energy
    return kwh(lo) if abs(hi - lo) < 1e-9 else f"{kwh(lo)}..{kwh(hi)}"


def _node(jid: str) -> str:
    return jid.split("@", 1)[0]


# -- every role --------------------------------------------------------------------------------
def help_view(ctx: Ctx, values: dict) -> str:
    role = ctx.agent.role
    rows = [(c.usage_for(role), c.summary_for(role)) for c in ctx.commands]
    lines = [f"{ctx.agent.role} {ctx.agent.jid}; you are a {ctx.access}", table(rows, limit=len(rows))]
    if ctx.full_jid:
        lines.append(f"ad-hoc commands (XEP-0050): {ctx.full_jid}")
    return "\n".join(lines)


def status(ctx: Ctx, values: dict) -> str:
    agent, engine = ctx.agent, ctx.agent.engine
    clock = agent.clock.mode
    last = engine.last_steering()
    rows: list[tuple[str, object]] = [
        ("time", f"{when(ctx.now)} UTC, {clock} clock"),
        ("state", f"paused ({engine.pause_holds} held)" if engine.paused else "running"),
    ]
    if agent.role == "aggregator" and engine.trades_upstream:
        rows.append(("trading", f"on ({engine.upstream.mode} {engine.upstream.jid})" if engine.trading_on
                     else "off (new aggregates planned here)"))
    if last is not None:
        rows.append(("steered", f"{when(last.at, ctx.now)} by {last.operator}: {last.action}"))
    pending = len(engine.pending())
    if pending:
        rows.append(("waiting", f"{pending} messages for an answer"))
    return f"{agent.role} {agent.jid}\n{engine.status()}\n{pairs(rows)}"


def watch(ctx: Ctx, values: dict) -> str:
    on = values.get("state") == "on"
    ctx.desk.set_watch(ctx.sender, on)
    if on:
        return "watching: a line for every message this agent sends or receives (watch off to stop)"
    return "not watching"


def kpi(ctx: Ctx, values: dict) -> str:
    role = ctx.agent.role
    if role == "prosumer":
        return _prosumer_kpi(ctx)
    if role == "aggregator":
        return _aggregator_kpi(ctx)
    s = market_summary(ctx.agent.engine.ledger)
    bids = ctx.agent.engine.ledger[BIDS].values()
    volume = sum(b.clearing.volume for b in bids if b.clearing is not None and b.status in ("accepted", "partial"))
    return pairs([("participants", s["participants"]), ("sessions", s["sessions"]), ("bids", s["bids"]),
                  ("cleared", s["cleared"]), ("volume", f"{kwh(volume)} kWh"),
                  ("traded", f"{format_eur(sum(b.amount_cents for b in bids))} EUR paid by buyers, net")])


def _counts(records) -> str:
    c: dict[str, int] = {}
    for r in records:
        c[r.offer.state.value] = c.get(r.offer.state.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(c.items())) or "none"


def _prosumer_kpi(ctx: Ctx) -> str:
    ledger = ctx.agent.engine.ledger
    bills = ledger[PROSUMER_BILLS].values()
    recs = ledger[PROSUMER_OFFERS].values()
    flexible = sum(r.offer.max_total_energy - r.offer.min_total_energy for r in recs
                   if r.state in (State.ASSIGNED, State.EXECUTED, State.SETTLED))
    return pairs([("offers", _counts(recs)), ("flexibility", f"{kwh(flexible)} kWh in assigned offers"),
                  ("bills", len(bills)), ("received", f"{format_eur(sum(b.total_cents for b in bills))} EUR")])


def _aggregator_kpi(ctx: Ctx) -> str:
    from vmenergy.protocol.billing import settle_records
    from vmenergy.settlement import SettlementError, kpis

    engine = ctx.agent.engine
    ledger = engine.ledger
    recs = [r for r in ledger[AGG_OFFERS].values() if r.schedule is not None and r.schedule_confirmed]
    head = [("offers", _counts(ledger[AGG_OFFERS].values()))]
    if not recs:
        return pairs(head + [("kpis", "none yet: no offer has a confirmed schedule")])
    try:
        settlement = settle_records(recs, engine.contract, aggregator=engine.jid,  # type: ignore[attr-defined]
                                    aggregates=ledger[AGGREGATES].mapping())
        k = kpis(settlement, [r.offer for r in recs], participants=(engine.jid,))
    except SettlementError as exc:
        return pairs(head + [("kpis", f"not computed: {exc}")])
    per_year = "-" if k.eur_per_mw_year is None else f"{k.eur_per_mw_year:,.0f}"
    return pairs(head + [
        ("period", f"{when(k.period_start, ctx.now)} to {when(k.period_end, ctx.now)}"),
        ("revenue", f"{k.revenue_eur} EUR"), ("imbalance", f"{k.imbalance_cost_eur} EUR"),
        ("earnings", f"{k.earnings_eur} EUR"), ("payouts", f"{k.payouts_eur} EUR"), ("margin", f"{k.margin_eur} EUR"),
        ("capacity", f"{k.flexible_capacity_mw:.3f} MW ({k.capacity_basis})"),
        ("adapted", f"{sum(k.adaptation_planned_mwh):.3f} MWh planned, "
                    f"{sum(k.adaptation_delivered_mwh):.3f} MWh delivered"),
        ("EUR/MW/y", per_year),
    ])


def bill(ctx: Ctx, values: dict) -> str:
    of = values.get("of")
    ledger = ctx.agent.engine.ledger
    role = ctx.agent.role
    if role == "prosumer":
        bills = sorted(ledger[PROSUMER_BILLS].values(), key=lambda b: (b.period_start, b.bill_id))
        if of is None:
            rows = [(b.bill_id, f"{when(b.period_start, ctx.now)}-{when(b.period_end, ctx.now)[-5:]}",
                     len(b.lines), format_eur(b.total_cents)) for b in bills]
            return table(rows, ("bill", "period", "lines", "EUR"), narrow="bill ID shows one") if rows else "no bills"
        return _bill_lines([ledger[PROSUMER_BILLS].require(of)])
    if role == "aggregator":
        sent = ledger[AGG_BILLS].values()
        if of is None:
            per: dict[str, list] = {}
            for owner, b in sent:
                per.setdefault(owner, []).append(b)
            rows = [(_node(o), len(bs), format_eur(sum(b.total_cents for b in bs))) for o, bs in sorted(per.items())]
            up = ledger[UPSTREAM_BILLS].values()
            text = table(rows, ("prosumer", "bills", "EUR"), narrow="bill PROSUMER shows one") if rows \
                else "no bills sent"
            if up:
                text += f"\nupstream: {len(up)} bills, {format_eur(sum(b.total_cents for b in up))} EUR"
            return text
        return _bill_lines([b for owner, b in sent if owner == of], f"bills sent to {of}")
    bids = [b for b in ledger[BIDS].values() if b.status in ("accepted", "partial")]
    if of is None:
        per_p: dict[str, list] = {}
        for b in bids:
            per_p.setdefault(b.participant, []).append(b)
        rows = [(_node(p), len(bs), format_eur(sum(b.amount_cents for b in bs))) for p, bs in sorted(per_p.items())]
        return table(rows, ("participant", "awards", "EUR to pay"), narrow="bill PARTICIPANT shows one") if rows \
            else "no awards to bill"
    rows = [(b.bid.bid_id, b.bid.session_id, b.status, format_eur(b.amount_cents))
            for b in sorted(bids, key=lambda b: b.bid.bid_id) if b.participant == of]
    return table(rows, ("bid", "session", "status", "EUR to pay")) if rows else f"no awards for {of}"


def _bill_lines(bills: list, title: str = "") -> str:
    out = [title] if title else []
    for b in bills:
        out.append(f"{b.bill_id}: {format_eur(b.total_cents)} {b.currency}, "
                   f"{when(b.period_start)} to {when(b.period_end)}")
        out.append(table([(line.code, format_eur(line.amount_cents), line.description) for line in b.lines],
                         limit=12))
    return "\n".join(out) if out else "no bills"


# -- prosumer and aggregator: offers and schedules ------------------------------------------------
def offers(ctx: Ctx, values: dict) -> str:
    state = values.get("state")
    recs = offer_records(ctx.agent)
    head = f"{len(recs)} offers: {_counts(recs)}"
    if state is not None:
        recs = [r for r in recs if r.offer.state.value == state]
        if not recs:
            return f"{head}\nnone {state}"
    if not recs:
        return "no offers"
    if ctx.agent.role == "prosumer":
        rows = [(r.offer.id, r.state.value, window(r.offer, ctx.now), _energy(r.offer)) for r in recs]
        body = table(rows, ("offer", "state", "start", "kWh"), narrow="offers STATE shows one state")
    else:
        rows = [(r.offer.id, _node(r.owner), r.offer.state.value, r.aggregate_id or "-") for r in recs]
        body = table(rows, ("offer", "from", "state", "aggregate"), narrow="offers STATE shows one state")
    return f"{head}\n{body}"


def offer(ctx: Ctx, values: dict) -> str:
    rec = next(r for r in offer_records(ctx.agent) if r.offer.id == values["id"])
    fo = rec.offer
    rows: list[tuple[str, object]] = [
        ("offer", f"{fo.id} v{fo.version}"), ("state", fo.state.value),
        ("from", getattr(rec, "owner", None)), ("start", window(fo, ctx.now)),
        ("energy", f"{_energy(fo)} kWh, {fo.direction}"),
        ("profiles", f"{len(fo.profiles)}, {sum(p.n_slices for p in fo.profiles)} slices"),
        ("accept by", when(fo.acceptance_before, ctx.now) if fo.acceptance_before is not None else None),
        ("assign by", when(fo.assignment_before, ctx.now) if fo.assignment_before is not None else None),
    ]
    if rec.schedule is not None:
        s = rec.schedule
        rows.append(("schedule", f"{when(s.start * s.resolution, ctx.now)}, {kwh(s.total)} kWh "
                                 f"(update {s.update_id})"))
    if ctx.agent.role == "prosumer":
        rows += [("sent", when(rec.sent_at, ctx.now) if rec.sent_at is not None else None),
                 ("reason", rec.reason), ("measured", rec.measurement_id), ("bill", rec.bill_id)]
    else:
        rows += [("aggregate", rec.aggregate_id), ("confirmed", "yes" if rec.schedule_confirmed else None),
                 ("measured", f"{kwh(sum(rec.measurement.energy))} kWh" if rec.measurement else None),
                 ("bill", rec.bill_id), ("note", rec.note)]
    return pairs(rows)


def schedule(ctx: Ctx, values: dict) -> str:
    items = schedules(ctx.agent)
    if values.get("id") is None:
        if not items:
            return "no schedules"
        rows = [(key, when(s.start * s.resolution, ctx.now), len(s.energy), kwh(s.total)) for key, s in items]
        return table(rows, ("for", "start", "slices", "kWh"), narrow="schedule ID shows one")
    key, s = next((k, s) for k, s in items if k == values["id"])
    lines = pairs([("for", key), ("schedule", s.schedule_id), ("update", s.update_id), ("profile", s.profile),
                   ("start", f"{when(s.start * s.resolution, ctx.now)} UTC"), ("total", f"{kwh(s.total)} kWh")])
    slices = table([(i, kwh(e)) for i, e in enumerate(s.energy)], ("slice", "kWh"), limit=24)
    return f"{lines}\n{slices}"


# -- aggregator ------------------------------------------------------------------------------------
def aggregates(ctx: Ctx, values: dict) -> str:
    recs = aggregate_records(ctx.agent)
    if not recs:
        return "no aggregates"
    rows = [(r.aggregate_id, len(r.members), r.status, r.session_id or "-",
             when(r.schedule.start * r.schedule.resolution, ctx.now) if r.schedule else "-") for r in recs]
    return table(rows, ("aggregate", "members", "status", "session", "start"), narrow="aggregate ID shows one")


def aggregate(ctx: Ctx, values: dict) -> str:
    rec = next(r for r in aggregate_records(ctx.agent) if r.aggregate_id == values["id"])
    rows: list[tuple[str, object]] = [
        ("aggregate", rec.aggregate_id), ("status", rec.status), ("session", rec.session_id),
        ("start", window(rec.offer, ctx.now)), ("energy", f"{_energy(rec.offer)} kWh"),
        ("revenue", f"{format_eur(rec.revenue_cents)} EUR" if rec.revenue_cents else None),
    ]
    if rec.schedule is not None:
        rows.append(("schedule", f"{when(rec.schedule.start * rec.schedule.resolution, ctx.now)}, "
                                 f"{kwh(rec.schedule.total)} kWh"))
    members = ", ".join(rec.members[:20]) + (f" and {len(rec.members) - 20} more" if len(rec.members) > 20 else "")
    rows.append(("members", f"{len(rec.members)}: {members}"))
    return pairs(rows)


# -- market -------------------------------------------------------------------------------------
def market(ctx: Ctx, values: dict) -> str:
    engine = ctx.agent.engine
    ledger = engine.ledger
    if ctx.agent.role == "aggregator":
        notices = sorted(ledger[MARKET_NOTICES].values(), key=lambda n: n.session_id)
        rows = [(n.session_id, n.state, when(n.gate_closure, ctx.now)) for n in notices[-8:]]
        bidding = [r for r in ledger[AGGREGATES].values() if r.session_id is not None]
        text = table(rows, ("session", "state", "gate closure")) if rows else "no market session seen yet"
        if bidding:
            won = sum(r.revenue_cents for r in bidding)
            states: dict[str, int] = {}
            for r in bidding:
                states[r.status] = states.get(r.status, 0) + 1
            text += (f"\nbids: {len(bidding)} ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}), "
                     f"{format_eur(won)} EUR earned")
        return text
    sessions = session_records(ctx.agent)
    bids = ledger[BIDS].values()
    rows = []
    for r in sessions[-8:]:
        mine = [b for b in bids if b.bid.session_id == r.notice.session_id]
        rows.append((r.notice.session_id, r.notice.state, when(r.notice.gate_closure, ctx.now),
                     when(r.notice.delivery_start * r.notice.resolution, ctx.now), len(mine),
                     sum(1 for b in mine if b.status in ("accepted", "partial"))))
    next_open = ledger.get("meta", "next_open")
    calendar = "paused" if engine.paused else "not started" if next_open is None else \
        f"next session at {when(next_open, ctx.now)}"
    lines = [f"{len(ledger[PARTICIPANTS])} participants; calendar {calendar}"]
    lines.append(table(rows, ("session", "state", "gate", "delivery", "bids", "won"), limit=8) if rows
                 else "no sessions yet")
    cleared = [r for r in sessions if r.notice.state == "cleared"]
    if cleared:
        last = cleared[-1]
        mine = [b for b in bids if b.bid.session_id == last.notice.session_id]
        won = [b for b in mine if b.status in ("accepted", "partial") and b.clearing is not None]
        prices = [b.clearing.price for b in won if b.clearing.price is not None]
        price = f", mean price {sum(prices) / len(prices):.4f} EUR/kWh" if prices else ""
        lines.append(f"last clearing: {last.notice.session_id}, {len(won)} of {len(mine)} bids accepted, "
                     f"{kwh(sum(b.clearing.volume for b in won))} kWh{price}")
    return "\n".join(lines)


# -- prosumer ----------------------------------------------------------------------------------
def devices(ctx: Ctx, values: dict) -> str:
    agent = ctx.agent
    executor = getattr(agent, "executor", None)
    describe = getattr(executor, "describe", None)
    what = describe() if callable(describe) else type(executor).__name__
    running = agent.running() if hasattr(agent, "running") else []  # type: ignore[attr-defined]
    rows = []
    for offer_id in running:
        rec = agent.engine.ledger[PROSUMER_OFFERS].get(offer_id)
        if rec is not None and rec.schedule is not None:
            s = rec.schedule
            end = (s.start + rec.offer.profiles[s.profile].duration) * s.resolution
            rows.append((offer_id, when(s.start * s.resolution, ctx.now), when(end, ctx.now), kwh(s.total)))
    text = f"executor: {what}"
    if rows:
        return text + "\n" + table(rows, ("running", "from", "to", "kWh"))
    return text + "\nnothing running"


# -- DSO ----------------------------------------------------------------------------------------
def grid(ctx: Ctx, values: dict) -> str:
    """A DSO's congestion points and its latest orders with what was delivered and paid."""
    from vmenergy.protocol.dso import DSO_ORDERS, DSO_REQUESTS

    engine = ctx.agent.engine
    ledger = engine.ledger
    def limit(v: Any) -> str:
        return f"{min(v):g}..{max(v):g} by time of day" if isinstance(v, tuple) else f"{v:g}"

    points = [(name, limit(p.limit), "-" if p.lower is None else limit(p.lower))
              for name, p in engine.points.items()]  # type: ignore[attr-defined]
    orders = sorted(ledger[DSO_ORDERS].values(), key=lambda o: int(o.msg.order_id.rsplit("-", 1)[-1]))
    rows = []
    for o in orders[-8:]:
        s = o.settlement
        rows.append((o.msg.order_id, _node(o.to), o.msg.point, o.msg.status, kwh(o.ordered_kwh),
                     "-" if s is None else kwh(s.delivered_kwh), "-" if s is None else format_eur(s.total_cents)))
    nxt = ledger.get("meta", "next_request")
    lines = [table(points, ("point", "limit kWh", "lower kWh")),
             f"{len(ledger[DSO_REQUESTS])} flex requests sent; "
             + ("paused" if engine.paused else "next at " + when(nxt, ctx.now) if nxt else "none yet"),
             table(rows, ("order", "aggregator", "point", "status", "ordered kWh", "delivered", "paid EUR"), limit=8)
             if rows else "no orders yet"]
    return "\n".join(lines)
