"""The aggregator (FMAN) engine: accept offers, aggregate, send upstream, disaggregate, settle.

The engine only sequences the steps; each step is an object it is given (see
:mod:`vmenergy.protocol.strategies`): its acceptance, aggregation, planning, bidding and
disaggregation strategies and its settlement contract, and where aggregates go is its upstream
strategy (:mod:`vmenergy.protocol.upstream`: ``plan``, ``market`` or ``parent``). The domain work
is done by the core packages (aggregation, planning, settlement).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from vmenergy.aggregation import AggregatedFlexOffer, AggregationResult
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule, State
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.limits import MAX_ID_LENGTH
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.settlement import Contract, default_contract

from .aggregator_config import AggregatorConfig, fed_by_market, objective_from
from .billing import correction_bill, dso_share_bills, settle_offers
from .engine import META, Effect, Engine, Note, Table, TimedStep, bare, handles
from .flexrequests import DSO_MESSAGES, FLEX_REPLIES, DsoSide
from .offer_index import AggOfferIndex
from .messages import (
    Ack,
    AssignmentMessage,
    BillMessage,
    Clearing,
    DeviceFaultReport,
    FlexOrderMessage,
    FlexReplyMessage,
    FlexRequestMessage,
    FlexSettlementMessage,
    MarketSessionNotice,
    Measurement,
    Message,
    OfferMessage,
    OfferRejection,
    ReservationMessage,
    ActivationMessage,
)
from .records import AggOffer, AggregateRecord
from .steering import OVERRIDES, SteeringError, steers
from .strategies import AggregatorStrategies, ObjectivePlanning, plan_schedules
from .trading import METERED, ORDERS, residual_position
from .upstream import MARKET_NOTICES, PlanUpstream, Upstream, make_upstream

__all__ = ["AggregatorConfig", "AggOffer", "AggregateRecord", "AggregatorEngine", "SINGLE", "AGG_OFFERS",
           "AGGREGATES", "AGG_BILLS", "UPSTREAM_BILLS", "DEVICE_FAULTS", "objective_from"]

#: The upstream side of the rounds while an operator has switched trading off.
_OWN_PLAN = PlanUpstream(None)


#: The prosumers' offers, by offer id.
AGG_OFFERS: Table[AggOffer] = Table("offers", AggOffer)
#: The aggregates built, by aggregate id.
AGGREGATES: Table[AggregateRecord] = Table("aggregates", AggregateRecord)
#: The bills sent to prosumers: (prosumer, bill), by bill id.
AGG_BILLS: Table[tuple] = Table("bills", tuple)
#: Device faults the prosumers reported: (prosumer, report), by "prosumer|fault id".
DEVICE_FAULTS: Table[tuple] = Table("device_faults", tuple)
#: The bills received from the market or parent, by bill id.
UPSTREAM_BILLS: Table[BillMessage] = Table("upstream_bills", BillMessage)

#: ``AggOffer.aggregate_id`` of an offer scheduled on its own (it could not be aggregated soundly).
SINGLE = "(single)"
#: Why an accepted offer is rejected when no schedule could be assigned before its deadline.
NOT_ASSIGNED_IN_TIME = "not assigned in time"


class AggregatorEngine(Engine):
    role = "aggregator"
    tables = Engine.tables + (AGG_OFFERS, AGGREGATES, AGG_BILLS, UPSTREAM_BILLS, MARKET_NOTICES, ORDERS,
                              METERED, FLEX_REPLIES)
    # paused, no aggregates, bids or plans are made; deadlines and settlement go on
    pause_holds = "aggregation rounds"

    def __init__(self, jid: str, config: AggregatorConfig = AggregatorConfig(), *,
                 strategies: Optional[AggregatorStrategies] = None, **kw) -> None:
        super().__init__(jid, **kw)
        self.config = config
        self.strategies = strategies if strategies is not None else AggregatorStrategies.from_config(config, self.jid)
        self.contract = self.strategies.contract
        self.upstream_jid = bare(config.upstream_jid) if config.upstream_jid else None
        self.upstream: Upstream = make_upstream(config.upstream, self.upstream_jid, bidding=self.strategies.bidding,
                                                lead=config.lead, cycle=config.cycle,
                                                trading=config.trading_settings(), solver=config.solver)
        # the DSOs' flex requests for the congestion points of its prosumers (flexrequests.py)
        self.dso_side = DsoSide(config.locations, config.dsos, cycle=config.cycle, solver=config.solver)
        self._aggregates: dict[str, AggregatedFlexOffer] = {}  # live objects (rebuilt after restart)
        self._unmeasured: dict[str, int] = {}  # aggregate id -> members not measured yet (see _all_measured)
        # who may send offers, as a set (a city's aggregator enrols 10^5 prosumers); None: anyone
        self._enrolled = None if config.enrolment == "open" else frozenset(bare(p) for p in config.enrolment)
        # counts, deadlines and settlement times follow every write of the offers table, so no
        # message or tick scans the offers held (built before the restore below writes to it)
        self.index = AggOfferIndex(self._assignment_deadline, config.settle_after)
        self.index.rebuild(dict(self.ledger[AGG_OFFERS].mapping()))
        self.ledger.watch(AGG_OFFERS, self.index.changed)
        self._restore_aggregates()
        steered = self.ledger[OVERRIDES].get("objective")
        if steered is not None and isinstance(self.strategies.planning, ObjectivePlanning):
            self._use_objective(steered)  # an operator's objective outlives a restart
        contract = self.ledger[OVERRIDES].get("contract")
        if contract is not None:  # and so does the contract a controller set
            self._use_contract(default_contract(self.jid, contract))

    # -- the planning objective (config, or an operator's) --------------------------------
    def objective(self) -> Optional[dict]:
        """The objective VME's planning uses now (the config's, or the one an operator set), or
        None when the planning step is a user's class (its objective is its own)."""
        if not isinstance(self.strategies.planning, ObjectivePlanning):
            return None
        return self.ledger[OVERRIDES].get("objective") or dict(self.config.objective)

    def _use_objective(self, spec: dict) -> None:
        planning = self.strategies.planning
        solver = planning.solver if isinstance(planning, ObjectivePlanning) else self.config.solver
        self.strategies = replace(self.strategies, planning=ObjectivePlanning(objective_from(spec), solver))

    def market_position(self, now: int) -> dict[int, float]:
        """The position the market clearings committed the portfolio to that its schedules do
        not use yet (:func:`~vmenergy.protocol.trading.residual_position`), from interval ``now``."""
        aggs = self.ledger[AGGREGATES].values()
        cleared = [(r.offer, r.schedule) for r in aggs
                   if r.status == "scheduled" and r.session_id is not None and r.schedule is not None]
        planned = [(r.offer, r.schedule) for r in aggs if r.schedule is not None]
        return residual_position(self.ledger[ORDERS].values(), cleared, planned, since=now)

    @steers("objective")
    def _set_objective(self, now: int, objective: Optional[dict] = None) -> tuple[list[Effect], str]:
        """An operator changes the planning objective (``{"kind": ..., ...}`` as in the config);
        it applies from the next plan (aggregates already scheduled keep their schedules)."""
        if not isinstance(self.strategies.planning, ObjectivePlanning):
            raise SteeringError("objective", "the planning step is a user's class; its objective is its own")
        if not isinstance(objective, dict):
            raise SteeringError("objective", "a table such as {kind = \"peak\"}")
        try:
            objective_from(objective)
        except FlexOfferError as exc:
            raise SteeringError(exc.path, exc.reason) from None
        self.ledger[OVERRIDES].put("objective", dict(objective))
        self._use_objective(objective)
        return [], f"objective {objective.get('kind', 'peak')} from the next plan on"

    # -- trading on or off (an operator's switch) ------------------------------------------
    @property
    def trades_upstream(self) -> bool:
        """Whether it has an upstream to send aggregates to (market, parent, direct), so an
        operator has trading to switch."""
        return self.upstream.mode != "plan"

    @property
    def trading_on(self) -> bool:
        """Whether the rounds send new aggregates upstream (to the market, the parent or the
        direct market); an operator may switch it off, and the aggregator then plans them itself."""
        return bool(self.ledger[OVERRIDES].get("trading", {"on": True})["on"])

    def _round_upstream(self) -> Upstream:
        """Where this round's new aggregates go: the configured upstream, or the aggregator's own
        plan while trading is off (what was already sent upstream still comes back as before)."""
        return self.upstream if self.trading_on else _OWN_PLAN

    @steers("trading")
    def _set_trading(self, now: int, on: object = None) -> tuple[list[Effect], str]:
        """A controller switches trading off (new aggregates are planned here, bids already
        placed stand) or on again (from the next round)."""
        if not self.trades_upstream:
            raise SteeringError("action", "this aggregator plans its aggregates itself: it has no upstream to trade with")
        if not isinstance(on, bool):
            raise SteeringError("on", f"on or off (got {on!r})")
        if on == self.trading_on:
            raise SteeringError("on", f"{'on' if on else 'off'} already")
        self.ledger[OVERRIDES].put("trading", {"on": on})
        if on:
            return [], f"trading on: new aggregates go to {self.upstream.mode} {self.upstream.jid} from the next round"
        return [], "trading off: new aggregates are planned here from the next round; placed bids stand"

    # -- the prosumers' contract (config, or a controller's) ----------------------------------
    def _use_contract(self, contract: Contract) -> None:
        self.contract = contract
        self.strategies = replace(self.strategies, contract=contract)

    @steers("contract")
    def _set_contract(self, now: int, contract: Optional[dict] = None) -> tuple[list[Effect], str]:
        """A controller changes the prosumers' contract (a table as ``[aggregator.contract]``,
        completed with this aggregator's id); it applies to what is settled from now on: bills
        already sent stand, as a changed tariff does."""
        if not isinstance(contract, dict):
            raise SteeringError("contract", "a table such as {mode = \"delegated\", reward = {...}}")
        try:
            new = default_contract(self.jid, contract)
        except FlexOfferError as exc:  # SettlementError names the field inside the table
            raise SteeringError(f"contract.{exc.path}" if exc.path else "contract", exc.reason) from None
        self.ledger[OVERRIDES].put("contract", dict(contract))
        self._use_contract(new)
        return [], f"contract {new.id} ({new.mode}) for what is settled from now on"

    # -- persistence of the live aggregates -----------------------------------------------
    def _restore_aggregates(self) -> None:
        """Aggregates are rebuilt from their members after a restart (aggregation is
        deterministic); one that does not come out the same is re-planned from scratch."""
        offers = self.ledger[AGG_OFFERS]
        for rec in self.ledger[AGGREGATES].values():
            if rec.status in ("scheduled", "fallback", "ordered") and all(
                (o := offers.get(m)) is not None and o.schedule is not None for m in rec.members
            ):
                continue
            members = [offers.get(m) for m in rec.members]
            if any(m is None for m in members):
                self._dissolve(rec, "member missing after restart")
                continue
            result = self.strategies.aggregation.aggregate([m.offer for m in members])  # type: ignore[union-attr]
            agg = result[0] if len(result) == 1 else None
            if agg is None or self._public(agg, rec.aggregate_id) != rec.offer:
                self._dissolve(rec, "aggregate could not be rebuilt identically after restart")
                continue
            self._aggregates[rec.aggregate_id] = agg

    def _public(self, agg: AggregatedFlexOffer, agg_id: str) -> FlexOffer:
        """The aggregate as it goes upstream: a plain offer under this aggregator's id.

        The members' acceptance deadline is the aggregator's own (it has accepted them); upstream
        the binding deadline is the members' assignment deadline, which the aggregate keeps."""
        return replace(agg.plain(), id=agg_id, issuer=self.jid, acceptance_before=None)

    def _dissolve(self, rec: AggregateRecord, why: str) -> None:
        offers = self.ledger[AGG_OFFERS]
        for m in rec.members:
            o = offers.get(m)
            if o is not None and o.schedule is None:
                offers.put(m, replace(o, aggregate_id=None, note=why))
        self.ledger[AGGREGATES].delete(rec.aggregate_id)

    # -- authorization ----------------------------------------------------------------------
    def enrolled(self, peer: str) -> bool:
        return self._enrolled is None or bare(peer) in self._enrolled

    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        if isinstance(msg, (OfferMessage, Measurement, DeviceFaultReport)):
            return None if self.enrolled(sender) else f"{sender} is not enrolled with this aggregator"
        if isinstance(msg, DSO_MESSAGES):
            return self.dso_side.authorize(sender, msg)
        return self.upstream.authorize(sender, msg)

    # -- messages from prosumers ------------------------------------------------------------
    # -- offer ids are scoped by the owner's JID (see records.AggOffer) ----------------------
    def _key_of(self, sender: str, offer_id: str) -> Optional[str]:
        """The ledger key of ``sender``'s offer ``offer_id``, or None if it sent none so named."""
        offers = self.ledger[AGG_OFFERS]
        rec = offers.get(offer_id)
        if rec is not None and rec.owner == sender:
            return offer_id
        scoped = f"{offer_id}/{sender}"
        return scoped if scoped in offers else None

    def _new_key(self, sender: str, offer_id: str) -> str:
        """The key a new offer of ``sender`` is kept under: its own id while no other prosumer
        holds it (an id cannot be squatted: the later owner gets the scoped key)."""
        return offer_id if offer_id not in self.ledger[AGG_OFFERS] else f"{offer_id}/{sender}"

    @handles(OfferMessage)
    def _offer(self, sender: str, msg: OfferMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        offers = self.ledger[AGG_OFFERS]
        if "/" in msg.offer_id:
            return [], "an offer id may not contain '/' (the aggregator scopes offer ids by the sender's JID with it)"
        key = self._key_of(sender, msg.offer_id)
        rec = None if key is None else offers.require(key)
        if msg.op == "delete":
            if rec is None or key is None:
                return [], f"unknown offer {msg.offer_id}"
            if rec.schedule is not None or rec.aggregate_id is not None:
                return [], "already aggregated or assigned; it can no longer be withdrawn"
            offers.put(key, replace(rec, offer=replace(rec.offer, state=State.WITHDRAWN)))
            return [Note("offer-withdrawn", {"offer": msg.offer_id})], None
        fo = msg.offer
        if fo is None:  # OfferMessage refuses this on construction; a message built around it is a bug
            raise ValueError(f"OfferMessage {msg.op} of {msg.offer_id} without its offer")
        if msg.op == "insert" and rec is not None:
            return [], f"offer {fo.id} exists; send an update with a higher version"
        if msg.op == "update":
            if rec is None:
                return [], f"unknown offer {fo.id}"
            if fo.version <= rec.offer.version:
                return [], f"stale version {fo.version} (have {rec.offer.version})"
            if rec.schedule is not None or rec.aggregate_id is not None:
                return [], "already aggregated or assigned; the update comes too late"
        reason = self._acceptance_problem(sender, fo, now)
        if reason is not None:
            return [Note("offer-rejected", {"offer": fo.id, "reason": reason})], reason
        if key is None:
            key = self._new_key(sender, fo.id)
            if len(key) > MAX_ID_LENGTH:
                return [], (f"offer id {fo.id} is another prosumer's, and scoped by your JID it is longer than "
                            f"{MAX_ID_LENGTH} characters: choose another")
        res = fo.resolution
        accepted = replace(fo.resolve(now // res), state=State.ACCEPTED, id=key)
        offers.put(key, AggOffer(accepted, sender, now, wire_id=None if key == fo.id else fo.id))
        return [Note("offer-accepted", {"offer": key, "from": sender})], None

    def _acceptance_problem(self, sender: str, fo: FlexOffer, now: int) -> Optional[str]:
        # who may offer is the protocol's rule; what is worth taking is the acceptance strategy's
        if fo.issuer is not None and bare(fo.issuer) != sender:
            return f"issuer {fo.issuer} is not the sender {sender}"
        return self.strategies.acceptance.problem(fo, now)

    @handles(Measurement)
    def _measurement(self, sender: str, m: Measurement, now: int) -> tuple[list[Effect], Optional[str]]:
        offers = self.ledger[AGG_OFFERS]
        key = self._key_of(sender, m.offer_id)
        rec = None if key is None else offers.get(key)
        if rec is None or key is None:
            return [], f"unknown offer {m.offer_id}"
        if rec.schedule is None:
            return [], "no schedule was assigned for this offer"
        if m.resolution != rec.offer.resolution:
            return [], f"resolution {m.resolution} differs from the offer's {rec.offer.resolution}"
        # metering of other intervals than the schedule's settles nothing, and a reading dated
        # anywhere (the year 1) must not get into the ledger
        first = rec.schedule.start
        last = first + rec.offer.profiles[rec.schedule.profile].duration
        if not (first <= m.start and m.start + len(m.energy) <= last):
            res = rec.offer.resolution
            return [], (f"measured intervals {format_utc(m.start * res)}..{format_utc((m.start + len(m.energy)) * res)} "
                        f"are not within the schedule's {format_utc(first * res)}..{format_utc(last * res)}")
        offer = rec.offer
        if offer.state in (State.ASSIGNED, State.EXECUTING):
            offer = offer.with_state(State.EXECUTED)
        updated = replace(rec, offer=offer, measurement=m)
        offers.put(key, updated)
        out: list[Effect] = [Note("measurement", {"offer": key, "kWh": round(sum(m.energy), 6)})]
        if rec.measurement is None and rec.aggregate_id is not None and rec.aggregate_id != SINGLE \
                and self._all_measured(rec.aggregate_id):
            out += self.upstream.on_measured(self, rec.aggregate_id, now)
        if rec.bill_id is not None and rec.measurement is None:
            # settled as unverified while the measurement was overdue: bill the difference now
            n = self.ledger[META].get("bill_seq", 0) + 1
            bill = correction_bill(rec, updated, self.contract, aggregator=self.jid,
                                   bill_id=f"bill-{self.jid.split('@')[0]}-{n}",
                                   aggregates=self.ledger[AGGREGATES].mapping())
            if bill is not None:
                self.ledger[META].put("bill_seq", n)
                self.ledger[AGG_BILLS].put(bill.bill_id, (sender, bill))
                out += [Note("correction-bill", {"offer": key, "total_cents": bill.total_cents}),
                        *self.send_reliable(sender, bill, now)]
        return out, None

    @handles(DeviceFaultReport)
    def _device_fault(self, sender: str, msg: DeviceFaultReport, now: int) -> tuple[list[Effect], Optional[str]]:
        # kept for the operator and the report; settlement already handles a missing measurement
        # (the offer is settled as unverified when its measurement is overdue)
        self.ledger[DEVICE_FAULTS].put(f"{bare(sender)}|{msg.fault_id}", (bare(sender), msg))
        return [Note("device-fault", {"from": bare(sender), "offer": msg.offer_id, "device": msg.device,
                                      "kind": msg.kind})], None

    # -- messages from upstream (the market or parent): its strategy's business ---------------
    @handles(BillMessage)
    def _upstream_bill(self, sender: str, msg: BillMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        self.ledger[UPSTREAM_BILLS].put(msg.bill_id, msg)
        return [Note("upstream-bill", {"bill": msg.bill_id, "total_cents": msg.total_cents})], None

    @handles(FlexRequestMessage, FlexOrderMessage, FlexSettlementMessage)
    def _from_dso(self, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        return self.dso_side.on_message(self, sender, msg, now)

    @handles(AssignmentMessage, Clearing, ReservationMessage, ActivationMessage)
    def _from_upstream(self, sender: str, msg: Message, now: int) -> tuple[list[Effect], Optional[str]]:
        return self.upstream.on_message(self, sender, msg, now)

    @handles(MarketSessionNotice)
    def _upstream_notice(self, sender: str, msg: Message, now: int) -> list[Effect]:
        out = self.upstream.on_notice(self, sender, msg, now)
        return out if out is not None else [Note("ignored", {"from": sender, "type": type(msg).__name__})]

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        if ack.kind == AssignmentMessage.ack and isinstance(msg, AssignmentMessage):
            offers = self.ledger[AGG_OFFERS]
            key = self._key_of(sender, msg.schedule.offer_id)
            rec = None if key is None else offers.get(key)
            if rec is not None and rec.schedule is not None and \
                    replace(rec.schedule, offer_id=rec.owner_id) == msg.schedule:
                offers.put(rec.offer.id, replace(rec, schedule_confirmed=ack.accepted,
                                                 note=None if ack.accepted else ack.reason))
            return [Note("assignment-" + ack.status, {"offer": key or msg.schedule.offer_id, "reason": ack.reason})]
        if isinstance(msg, (FlexReplyMessage, Measurement)):
            return self.dso_side.on_ack(self, sender, ack, msg, now)
        return self.upstream.on_ack(self, sender, ack, msg, now)

    # -- the round: aggregate, then send upstream ----------------------------------------------
    def role_steps(self) -> list[TimedStep]:
        """Deadlines first (a round that came late, after a restart or a jump of the clock, must
        not try to plan what can no longer start), the upstream side's own work, the
        aggregation round every ``cycle``, with DSOs their orders' work, settlement."""
        steps = [
            TimedStep("deadlines", self._expire, self._expiry_due),
            TimedStep("upstream", lambda now: self.upstream.on_tick(self, now),
                      lambda now: self.upstream.next_due(self, now)),
            TimedStep("round", self._round,
                      lambda now: None if self.paused else self.ledger[META].get("next_cycle", 0)),
        ]
        if self.dso_side.active:  # its DSOs' orders: metering, and aggregates a DSO left unanswered
            steps.append(TimedStep("dso", lambda now: self.dso_side.on_tick(self, self.config.settle_after, now),
                                   lambda now: self.dso_side.next_due(self, self.config.settle_after, now)))
        return [*steps, TimedStep("settlement", self._settle, self._settlement_due)]

    def _round(self, now: int) -> list[Effect]:
        meta = self.ledger[META]
        if self.paused or now < meta.get("next_cycle", 0):
            return []
        meta.put("next_cycle", now + self.config.cycle)
        return self._cycle(now)

    def _expiry_due(self, now: int) -> Optional[int]:
        """Just after the first assignment deadline of an accepted offer not yet aggregated."""
        return self.index.next_expiry()

    def _settlement_due(self, now: int) -> Optional[int]:
        """At once for a measured schedule, ``settle_after`` past its end for one without."""
        return self.index.next_settlement(now)

    @staticmethod
    def _assignment_deadline(fo: FlexOffer) -> int:
        """The last moment (epoch seconds) an accepted offer can still be assigned."""
        return fo.assignment_before if fo.assignment_before is not None else (fo.latest_start() or 0) * fo.resolution

    def _pending(self, now: int) -> list[AggOffer]:
        out = []
        offers = self.ledger[AGG_OFFERS]
        for key in self.index.open:  # accepted and not yet aggregated
            rec = offers.require(key)
            if not self.is_available(rec.owner):
                continue  # an offline prosumer's offers stay out of new aggregates
            out.append(rec)
        return sorted(out, key=lambda r: r.offer.id)

    def _cycle(self, now: int) -> list[Effect]:
        pending, held = self.dso_side.hold(self._pending(now), now)
        if not pending:
            return held
        upstream = self._round_upstream()
        traded = upstream.trade(self, [r.offer for r in pending], now)
        if traded is not None:
            return [*held, *traded]
        selection = upstream.select(self, [r.offer for r in pending], now)
        out: list[Effect] = [*held, *selection.notes]
        if selection.plan_now:
            out += self.plan_offers(selection.plan_now, now)
        if not selection.upstream:
            return out
        chosen = set(selection.upstream)
        recs = [r for r in pending if r.offer.id in chosen]
        result = self.strategies.aggregation.aggregate([r.offer for r in recs])
        out.append(Note("aggregated", {"offers": len(recs), "aggregates": len(result),
                                       "excluded": len(result.excluded)}))
        for offer_id, why in result.excluded.items():
            out.append(Note("excluded", {"offer": offer_id, "reason": why}))
        if result.excluded:  # what cannot be aggregated soundly is scheduled on its own
            out += self._plan_individually([r for r in recs if r.offer.id in result.excluded], now)
        records = self._record_aggregates(result, selection.session)
        return out + upstream.dispatch(self, [(r.aggregate_id, r.offer) for r in records], selection, now)

    def _record_aggregates(self, result: AggregationResult,
                           session: Optional[MarketSessionNotice]) -> list[AggregateRecord]:
        meta, offers = self.ledger[META], self.ledger[AGG_OFFERS]
        n = meta.get("aggregate_seq", 0)
        records: list[AggregateRecord] = []
        for agg in result:
            n += 1
            agg_id = f"{self.jid.split('@')[0]}-agg-{n}"
            rec = AggregateRecord(agg_id, self._public(agg, agg_id), tuple(agg.member_ids), "new",
                                  session.session_id if session else None)
            self._aggregates[agg_id] = agg
            self.ledger[AGGREGATES].put(agg_id, rec)
            records.append(rec)
            for m in agg.member_ids:
                offers.put(m, replace(offers.require(m), aggregate_id=agg_id))
        meta.put("aggregate_seq", n)
        return records

    def _plan_individually(self, recs: list[AggOffer], now: int) -> list[Effect]:
        schedules, info = self._run_planning([r.offer for r in recs], now)
        out: list[Effect] = [Note("planned-individually", {"offers": len(recs), "solver": info.get("solver")})]
        offers = self.ledger[AGG_OFFERS]
        for r, s in zip(recs, schedules):
            offers.put(r.offer.id, replace(r, aggregate_id=SINGLE))
            out += self._send_assignment(r.offer.id, s, now)
        return out

    def _run_planning(self, offers: list[FlexOffer], now: int) -> tuple[list[Schedule], dict]:
        """Schedules from the planning strategy, checked: one per offer and each feasible (a
        user's strategy that breaks this fails here, with the offer named, not at a prosumer)."""
        spec = self.objective()
        if spec is not None and fed_by_market(spec):
            # follow what the clearings so far committed the portfolio to (and its schedules do not use)
            planning = self.strategies.planning
            solver = planning.solver if isinstance(planning, ObjectivePlanning) else self.config.solver
            here = now // offers[0].resolution
            position = self.market_position(here)
            if position:  # the commitment must span every offer's window (0 where nothing is committed)
                lo = min([here, *position])
                hi = max([*position, *((fo.latest_start(here) or here) + max(p.duration for p in fo.profiles)
                                       for fo in offers)]) + 1
                position = {t: position.get(t, 0.0) for t in range(lo, hi)}
            fee = self.config.trading_settings().imbalance_fee
            if fee > 0:  # a deviation from what cleared costs the contract's imbalance fee
                spec = {"over_price": fee, "under_price": fee, **spec}
            self.strategies = replace(self.strategies,
                                      planning=ObjectivePlanning(objective_from(spec, position), solver))
        result = self.strategies.planning.plan(offers, now // offers[0].resolution)
        schedules, info = plan_schedules(result)
        if len(schedules) != len(offers):
            raise ValueError(f"the planning strategy returned {len(schedules)} schedules for {len(offers)} offers")
        for fo, s in zip(offers, schedules):
            if s.offer_id != fo.id:
                raise ValueError(f"the planning strategy returned a schedule of {s.offer_id} for {fo.id}")
        return schedules, info

    def _send_assignment(self, offer_id: str, part: Schedule, now: int) -> list[Effect]:
        offers = self.ledger[AGG_OFFERS]
        o = offers.require(offer_id)
        update = 0 if o.schedule is None else o.schedule.update_id + 1
        # ``part`` is a checked Schedule and the ids are the ledger's: only the new schedule id is
        # checked (a million members are a million schedules; see Schedule.of_columns)
        schedule_id = check.identifier(f"s-{offer_id}", "schedule_id")
        s = Schedule.of_columns(offer_id, part.start, part.energy, schedule_id, update, part.profile, part.resolution)
        offer = o.offer.with_state(State.ASSIGNED) if o.offer.state is State.ACCEPTED else o.offer
        offers.put(offer_id, replace(o, offer=offer, schedule=s, schedule_confirmed=False))
        # the owner knows the offer by its own id; the schedule id stays unique (the ledger key)
        wire = s if o.owner_id == offer_id else Schedule.of_columns(o.owner_id, s.start, s.energy, schedule_id, update,
                                                                    s.profile, s.resolution)
        return self.send_reliable(o.owner, AssignmentMessage(wire), now)

    def _plan(self, records: list[AggregateRecord], now: int) -> list[Effect]:
        if not records:
            return []
        # nothing may be scheduled to start before the current interval
        schedules, info = self._run_planning([r.offer for r in records], now)
        out: list[Effect] = [Note("planned", {"aggregates": len(records), **info})]
        for rec, schedule in zip(records, schedules):
            status = "scheduled" if rec.status != "fallback" else "fallback"
            self.ledger[AGGREGATES].put(rec.aggregate_id, replace(rec, status=status, schedule=schedule))
        return out + self._assign_many([(rec.aggregate_id, s) for rec, s in zip(records, schedules)], now)

    def _assign_many(self, plan: list[tuple[str, Schedule]], now: int) -> list[Effect]:
        """Disaggregate a round's aggregate schedules and send every member its assignment: all
        at once as columns when the disaggregation step can (``split_many``), else, or if any
        schedule cannot be split, one aggregate at a time (which names the one that failed)."""
        split_many = getattr(self.strategies.disaggregation, "split_many", None)
        aggs = [self._aggregates.get(agg_id) for agg_id, _ in plan]
        if split_many is None or not plan or any(a is None for a in aggs):
            return [e for agg_id, schedule in plan for e in self._assign(agg_id, schedule, now)]
        inner = [self._inner(agg, schedule, agg_id) for (agg_id, schedule), agg in zip(plan, aggs)]  # type: ignore[arg-type]
        try:
            parts = split_many(aggs, inner)
        except FlexOfferError:
            return [e for agg_id, schedule in plan for e in self._assign(agg_id, schedule, now)]
        out: list[Effect] = []
        for (agg_id, schedule), agg in zip(plan, aggs):
            members = agg.member_ids  # type: ignore[union-attr]
            for offer_id in members:
                out += self._send_assignment(offer_id, parts[offer_id], now)
            self.ledger[AGGREGATES].put(agg_id, replace(self.ledger[AGGREGATES].require(agg_id), schedule=schedule))
            out.append(Note("assigned", {"aggregate": agg_id, "members": len(members)}))
        return out

    @staticmethod
    def _inner(agg: AggregatedFlexOffer, schedule: Schedule, agg_id: str) -> Schedule:
        """The schedule of the aggregate as the aggregation knows it (its own id, not the public one)."""
        return Schedule(agg.id, schedule.start, schedule.energy, schedule.schedule_id or f"s-{agg_id}",
                        schedule.update_id, schedule.profile, schedule.resolution)

    def _assign(self, agg_id: str, schedule: Schedule, now: int) -> list[Effect]:
        """Disaggregate an aggregate's schedule and send each member its assignment."""
        agg = self._aggregates.get(agg_id)
        rec = self.ledger[AGGREGATES].require(agg_id)
        if agg is None:
            return [Note("assign-failed", {"aggregate": agg_id, "why": "aggregate not available"})]
        inner = self._inner(agg, schedule, agg_id)
        try:
            parts = self.strategies.disaggregation.split(agg, inner)
        except FlexOfferError as exc:
            return [Note("assign-failed", {"aggregate": agg_id, "why": str(exc)})]
        out: list[Effect] = []
        for offer_id, part in parts.items():
            out += self._send_assignment(offer_id, part, now)
        self.ledger[AGGREGATES].put(agg_id, replace(rec, schedule=schedule))
        out.append(Note("assigned", {"aggregate": agg_id, "members": len(parts)}))
        return out

    # -- what the DSO side may ask (flexrequests.FlexPortfolio) --------------------------------
    def offer_records(self) -> list[AggOffer]:
        return self.ledger[AGG_OFFERS].values()

    def offer_record(self, offer_id: str) -> Optional[AggOffer]:
        return self.ledger[AGG_OFFERS].get(offer_id)

    def aggregate_members(self, aggregate_id: str) -> tuple[str, ...]:
        rec = self.ledger[AGGREGATES].get(aggregate_id)
        return () if rec is None else rec.members

    def aggregate_for(self, offer_ids: Sequence[str], status: str,
                      now: int) -> tuple[list[Effect], list[tuple[str, FlexOffer]]]:
        recs = [self.ledger[AGG_OFFERS].require(i) for i in offer_ids]
        result = self.strategies.aggregation.aggregate([r.offer for r in recs])
        out: list[Effect] = [Note("aggregated", {"offers": len(recs), "aggregates": len(result),
                                                 "excluded": len(result.excluded)})]
        if result.excluded:
            out += self._plan_individually([r for r in recs if r.offer.id in result.excluded], now)
        records = self._record_aggregates(result, None)
        for rec in records:
            self.mark_aggregate(rec.aggregate_id, status)
        return out, [(r.aggregate_id, r.offer) for r in records]

    def planning_objective(self):
        """The planning objective as an :class:`Objective` (None for a user's planning class)."""
        spec = self.objective()
        return None if spec is None else objective_from(spec)

    def pass_on_dso_payment(self, aggregate_ids: Sequence[str], msg: FlexSettlementMessage, now: int) -> list[Effect]:
        """The prosumers' share of a DSO's payment, billed to them as the contract shares revenue
        (:func:`~.billing.dso_share_bills`)."""
        offers = self.ledger[AGG_OFFERS]
        members = [r for a in aggregate_ids for m in self.aggregate_members(a) if (r := offers.get(m)) is not None]
        meta = self.ledger[META]
        n = meta.get("bill_seq", 0)
        bills = dso_share_bills(members, self.contract, paid_cents=msg.total_cents, order_id=msg.order_id,
                                aggregator=self.jid, first_bill=n + 1)
        meta.put("bill_seq", n + len(bills))
        out: list[Effect] = [Note("dso-share", {"order": msg.order_id, "bills": len(bills),
                                                "paid_out_cents": sum(b.total_cents for _, b in bills)})]
        for owner, bill in bills:
            self.ledger[AGG_BILLS].put(bill.bill_id, (owner, bill))
            out += self.send_reliable(owner, bill, now)
        return out

    # -- what the upstream strategy may ask (upstream.Portfolio) -------------------------------
    def aggregate_offer(self, aggregate_id: str) -> Optional[FlexOffer]:
        rec = self.ledger[AGGREGATES].get(aggregate_id)
        return None if rec is None else rec.offer

    def mark_aggregate(self, aggregate_id: str, status: str, *, revenue_cents: Optional[int] = None) -> None:
        rec = self.ledger[AGGREGATES].require(aggregate_id)
        rec = replace(rec, status=status) if revenue_cents is None else \
            replace(rec, status=status, revenue_cents=revenue_cents)
        self.ledger[AGGREGATES].put(aggregate_id, rec)

    def aggregate_schedule(self, aggregate_id: str) -> Optional[Schedule]:
        rec = self.ledger[AGGREGATES].get(aggregate_id)
        return None if rec is None else rec.schedule

    def _all_measured(self, aggregate_id: str) -> bool:
        """Whether every member of the aggregate is measured now that one more is: a count kept
        per aggregate (counted once from the ledger, e.g. after a restart), so a measurement
        costs the same whatever the aggregate's size."""
        left = self._unmeasured.get(aggregate_id)
        if left is None:
            rec = self.ledger[AGGREGATES].get(aggregate_id)
            offers = self.ledger[AGG_OFFERS]
            left = 0 if rec is None else sum(1 for m in rec.members
                                             if (o := offers.get(m)) is None or o.measurement is None)
        else:
            left -= 1
        self._unmeasured[aggregate_id] = left
        return left == 0

    def aggregate_metering(self, aggregate_id: str) -> Optional[dict[int, float]]:
        rec = self.ledger[AGGREGATES].get(aggregate_id)
        if rec is None:
            return None
        out: dict[int, float] = {}
        offers = self.ledger[AGG_OFFERS]
        for m in rec.members:
            o = offers.get(m)
            if o is None or o.measurement is None:
                return None
            for k, e in enumerate(o.measurement.energy):
                out[o.measurement.start + k] = out.get(o.measurement.start + k, 0.0) + e
        return out

    def cleared_schedule(self, aggregate_id: str) -> Optional[Schedule]:
        rec = self.ledger[AGGREGATES].get(aggregate_id)
        if rec is None or rec.status != "scheduled" or rec.session_id is None:
            return None
        return rec.schedule

    def book_revenue(self, aggregate_id: str, revenue_cents: int) -> None:
        rec = self.ledger[AGGREGATES].require(aggregate_id)
        self.ledger[AGGREGATES].put(aggregate_id, replace(rec, revenue_cents=rec.revenue_cents + revenue_cents))

    def plan_aggregates(self, aggregate_ids: Sequence[str], now: int) -> list[Effect]:
        return self._plan([self.ledger[AGGREGATES].require(a) for a in aggregate_ids], now)

    def plan_offers(self, offer_ids: Sequence[str], now: int) -> list[Effect]:
        recs = [self.ledger[AGG_OFFERS].require(i) for i in offer_ids]
        result = self.strategies.aggregation.aggregate([r.offer for r in recs])
        out: list[Effect] = []
        if result.excluded:
            out += self._plan_individually([r for r in recs if r.offer.id in result.excluded], now)
        records = [replace(r, status="fallback") for r in self._record_aggregates(result, None)]
        return out + self._plan(records, now)

    def assign_aggregate(self, aggregate_id: str, schedule: Schedule, now: int) -> list[Effect]:
        return self._assign(aggregate_id, schedule, now)

    def assign_offer(self, offer_id: str, schedule: Schedule, now: int) -> list[Effect]:
        offers = self.ledger[AGG_OFFERS]
        offers.put(offer_id, replace(offers.require(offer_id), aggregate_id=SINGLE))
        return self._send_assignment(offer_id, schedule, now)

    def reject_offer(self, offer_id: str, reason: str, now: int) -> list[Effect]:
        offers = self.ledger[AGG_OFFERS]
        rec = offers.require(offer_id)
        offers.put(offer_id, replace(rec, offer=rec.offer.with_state(State.REJECTED), note=reason))
        return [Note("offer-rejected", {"offer": offer_id, "reason": reason}),
                *self.send_reliable(rec.owner, OfferRejection(rec.owner_id, rec.offer.version, reason), now)]

    def fall_back(self, aggregate_id: str, now: int, why: str) -> list[Effect]:
        rec = replace(self.ledger[AGGREGATES].require(aggregate_id), status="fallback")
        self.ledger[AGGREGATES].put(aggregate_id, rec)
        return [Note("fallback-plan", {"aggregate": aggregate_id, "why": why}), *self._plan([rec], now)]

    # -- deadlines and settlement --------------------------------------------------------------
    def _expire(self, now: int) -> list[Effect]:
        """Accepted offers whose assignment deadline (or latest start) passed unassigned are
        rejected, and their prosumers told so (a reliable ``rejection``)."""
        out: list[Effect] = []
        offers = self.ledger[AGG_OFFERS]
        for key in self.index.expired(now):  # earliest deadline first
            rec = offers.require(key)
            fo = rec.offer
            offers.put(fo.id, replace(rec, offer=fo.with_state(State.REJECTED), note=NOT_ASSIGNED_IN_TIME))
            out.append(Note("offer-expired", {"offer": fo.id}))
            out += self.send_reliable(rec.owner, OfferRejection(rec.owner_id, fo.version, NOT_ASSIGNED_IN_TIME), now)
        return out

    def _settle(self, now: int) -> list[Effect]:
        offers = self.ledger[AGG_OFFERS]
        # by key: the bills' numbering must not depend on the order the ledger was loaded in
        ready = [offers.require(k) for k in sorted(self.index.settleable(now))]
        if not ready:
            return []
        meta = self.ledger[META]
        n = meta.get("bill_seq", 0)
        history = offers.values() if self.contract.baseline.history_days else ()
        bills, summary = settle_offers(ready, self.contract, aggregator=self.jid, first_bill=n + 1,
                                       aggregates=self.ledger[AGGREGATES].mapping(), history_from=history)
        meta.put("bill_seq", n + len(bills))
        out: list[Effect] = []
        shortfall = summary.pop("baseline", None)
        if shortfall is not None and not meta.get("baseline_fallback_said", False):
            # said once, not on every batch: it stays true until enough days are metered
            meta.put("baseline_fallback_said", True)
            out.append(Note("baseline", {"why": shortfall}))
        out.append(Note("settled", summary))
        for owner, bill, offer_ids in bills:
            for offer_id in offer_ids:
                o = offers.require(offer_id)
                offer = o.offer
                if offer.state is State.ASSIGNED:  # no measurement in time: settled as unverified
                    offer = offer.with_state(State.EXECUTED)
                offer = offer.with_state(State.SETTLED)
                offers.put(offer_id, replace(o, offer=offer, bill_id=bill.bill_id))
            self.ledger[AGG_BILLS].put(bill.bill_id, (owner, bill))
            out += self.send_reliable(owner, bill, now)
        return out

    # -- reporting -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Offers by state (kept by the index: no scan)."""
        return self.index.state_counts()

    def status(self) -> str:
        c = self.counts()
        n = sum(c.values())
        assigned = sum(c.get(s, 0) for s in ("assigned", "executing", "executed", "settled"))
        aggs = len(self.ledger[AGGREGATES])
        return f"{n} offers, {assigned} assigned, {aggs} aggregates, {c.get('settled', 0)} settled"
