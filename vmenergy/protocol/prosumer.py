"""The prosumer (FOA) engine: offers up, schedules down, measurements up, bills down.

Its offers come from an :class:`~vmenergy.protocol.strategies.OfferSource` (a scenario's
templates, files, device models) with a release time; each offer's lifecycle follows
:data:`vmenergy.flexoffer.TRANSITIONS` so an illegal step (an assignment for a rejected offer, a
second execution) is refused rather than silently applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from vmenergy.flexoffer import TRANSITIONS, FlexOffer, FlexOfferError, Schedule, State
from vmenergy.settlement.money import cents

from .engine import META, Effect, Engine, Execute, Note, RunDefault, Table, TimedStep, bare, handles
from .messages import (Ack, AssignmentMessage, BidMessage, BillMessage, Clearing, DeviceFaultReport,
                       MarketSessionNotice, Measurement, Message, OfferMessage, OfferRejection, Registration)
from .steering import SteeringError, steers
from .strategies import OfferSource
from .trading import ORDERS, OrderRecord, TradingSettings, order_bid_id, pool_orders
from .upstream import MARKET_NOTICES

__all__ = ["ProsumerOffer", "DefaultRun", "ProsumerEngine", "PROSUMER_OFFERS", "PROSUMER_BILLS",
           "PROSUMER_DEFAULT_RUNS"]


@dataclass(frozen=True, slots=True)
class ProsumerOffer:
    """One offer as the prosumer tracks it."""

    offer: FlexOffer
    release: int  # epoch seconds at which it is sent
    reason: Optional[str] = None  # why it was rejected, if it was
    schedule: Optional[Schedule] = None
    measurement_id: Optional[str] = None
    bill_id: Optional[str] = None
    sent_at: Optional[int] = None  # when the offer (this version) went out
    answered_at: Optional[int] = None  # when the aggregator's acceptance arrived
    #: the version the aggregator accepted, while an update of it waits for its answer: if the
    #: update is refused (the offer was aggregated meanwhile), that version still binds
    accepted: Optional[FlexOffer] = None

    @property
    def state(self) -> State:
        return self.offer.state


@dataclass(frozen=True, slots=True)
class DefaultRun:
    """What the meter saw while the device behind a rejected (or never assigned) offer ran its
    normal programme: ``start`` is an interval at ``resolution``, ``energy`` kWh per interval.
    It stays with the prosumer (nothing is settled for an offer that was not scheduled)."""

    offer_id: str
    start: int
    energy: tuple[float, ...]
    resolution: int
    reason: Optional[str] = None


#: The prosumer's offers as it tracks them, by offer id.
PROSUMER_OFFERS: Table[ProsumerOffer] = Table("offers", ProsumerOffer)
#: The bills received from the aggregator, by bill id.
PROSUMER_BILLS: Table[BillMessage] = Table("bills", BillMessage)
#: The normal programmes devices ran instead of a schedule, by offer id.
PROSUMER_DEFAULT_RUNS: Table[DefaultRun] = Table("default_runs", DefaultRun)


class ProsumerEngine(Engine):
    """``market`` (optional): a two-sided pool the prosumer trades its scheduled energy on, peer
    to peer (eDREAM), priced by ``trading`` (a buy at most at its energy value, a sell at least
    at its energy cost, margins as for an aggregator: :mod:`.trading`)."""

    role = "prosumer"
    tables = Engine.tables + (PROSUMER_OFFERS, PROSUMER_BILLS, PROSUMER_DEFAULT_RUNS, MARKET_NOTICES, ORDERS)
    pause_holds = "sending new offers"

    def __init__(self, jid: str, aggregator: str, *, source: Optional[OfferSource] = None,
                 market: Optional[str] = None, trading: Optional[TradingSettings] = None, **kw) -> None:
        super().__init__(jid, **kw)
        self.aggregator = bare(aggregator)
        self.source = source
        self.market = bare(market) if market else None
        self.trading = trading if trading is not None else TradingSettings()
        # The offers not sent yet (state initial): id -> release. The release step and its due
        # time read these, not every offer the prosumer holds (a day's worth, or a FOA's
        # thousands), which each step and each wake of the step scanned.
        self._unsent: dict[str, int] = {
            key: rec.release for key, rec in self.ledger[PROSUMER_OFFERS].items() if rec.state is State.INITIAL}
        # Offers by state, kept as they are written: the agent reports them after every step it
        # runs (the run's progress), and an FOA of a thousand households holds thousands of
        # offers, which that report scanned each time.
        self._counts: dict[State, int] = {}
        for rec in self.ledger[PROSUMER_OFFERS].values():
            self._counts[rec.state] = self._counts.get(rec.state, 0) + 1
        self.ledger.watch(PROSUMER_OFFERS, self._offer_written)
        self._take_offers(None)  # known before the clock runs: they are the prosumer's first work

    def _offer_written(self, key: str, old: Optional[ProsumerOffer], new: Optional[ProsumerOffer]) -> None:
        if old is not None:
            left = self._counts[old.state] - 1
            if left:
                self._counts[old.state] = left
            else:
                del self._counts[old.state]
        if new is not None:
            self._counts[new.state] = self._counts.get(new.state, 0) + 1
        if new is not None and new.state is State.INITIAL:
            self._unsent[key] = new.release
        else:
            self._unsent.pop(key, None)

    def _take_offers(self, now: Optional[int]) -> list[Effect]:
        """New offers from the source; an id already held is not taken again (a restarted agent
        finds its offers in the ledger and its source offering them once more). Then the
        source's changes: updates and withdrawals of offers it gave earlier."""
        if self.source is None:
            return []
        offers = self.ledger[PROSUMER_OFFERS]
        for release, fo in self.source.offers(now):
            if fo.id not in offers:
                offers.put(fo.id, ProsumerOffer(replace(fo, state=State.INITIAL), release))
        if now is None:
            return []
        out: list[Effect] = []
        for change in self.source.changes(now):
            if change.offer is None:
                out += self.withdraw(change.offer_id, now)
            else:
                out += self._update(change.offer, now, now)
        return out

    # -- inputs from the shell -------------------------------------------------------------
    def add_offer(self, offer: FlexOffer, release: int, now: int) -> list[Effect]:
        """Register an offer to send at ``release`` (epoch seconds); an existing id is updated."""
        return self._update(offer, release, now) + self.on_tick(now)

    def _update(self, offer: FlexOffer, release: int, now: int) -> list[Effect]:
        offers = self.ledger[PROSUMER_OFFERS]
        old = offers.get(offer.id)
        if old is None:
            offers.put(offer.id, ProsumerOffer(replace(offer, state=State.INITIAL), release))
            return []
        if old.state in (State.INITIAL,):
            offers.put(offer.id, replace(old, offer=offer, release=release))
            return []
        # an update of an offer the aggregator already has: same id, next version
        try:
            revised = old.offer.revised(**{f: getattr(offer, f) for f in (
                "profiles", "label", "start_after", "start_before", "start_before_duration", "baseline", "prices",
                "acceptance_before", "assignment_before")})
        except FlexOfferError as exc:
            return [Note("update-refused", {"offer": offer.id, "why": exc.reason})]
        kept = old.offer if old.state is State.ACCEPTED else old.accepted
        offers.put(offer.id, replace(old, offer=revised, reason=None, sent_at=now, accepted=kept))
        return self.send_reliable(self.aggregator, OfferMessage("update", offer.id, revised), now)

    def withdraw(self, offer_id: str, now: int) -> list[Effect]:
        rec = self.ledger[PROSUMER_OFFERS].get(offer_id)
        if rec is None:
            return [Note("unknown-offer", {"offer": offer_id})]
        try:
            offer = rec.offer.with_state(State.WITHDRAWN)
        except FlexOfferError as exc:
            return [Note("withdraw-refused", {"offer": offer_id, "why": exc.reason})]
        self.ledger[PROSUMER_OFFERS].put(offer_id, replace(rec, offer=offer))
        if rec.state is State.INITIAL:
            return []
        return self.send_reliable(self.aggregator, OfferMessage("delete", offer_id, version=offer.version), now)

    def withdrawable(self) -> list[ProsumerOffer]:
        """The offers that may still be withdrawn (their lifecycle allows it), by id."""
        return sorted((r for r in self.ledger[PROSUMER_OFFERS].values() if State.WITHDRAWN in TRANSITIONS[r.state]),
                      key=lambda r: r.offer.id)

    @steers("withdraw")
    def _withdraw_offers(self, now: int, offers: tuple = ()) -> tuple[list[Effect], str]:
        """An operator withdraws ``offers`` (ids): all of them, or none if one cannot be."""
        ids = tuple(dict.fromkeys(offers))
        if not ids:
            raise SteeringError("offers", "name at least one offer")
        table = self.ledger[PROSUMER_OFFERS]
        for i, offer_id in enumerate(ids):
            rec = table.get(offer_id)
            if rec is None:
                raise SteeringError(f"offers[{i}]", f"no offer {offer_id}")
            if State.WITHDRAWN not in TRANSITIONS[rec.state]:
                raise SteeringError(f"offers[{i}]", f"{offer_id} is {rec.state.value}: it can no longer be withdrawn")
        out: list[Effect] = []
        for offer_id in ids:
            out += self.withdraw(offer_id, now)
        return out, f"withdrew {', '.join(ids)}"

    def executed(self, offer_id: str, start: int, energy: list[float], now: int) -> list[Effect]:
        """The device followed (or tried to follow) the schedule: report what the meter says.

        ``start`` is an interval at the offer's resolution, ``energy`` kWh per interval.
        """
        rec = self.ledger[PROSUMER_OFFERS].get(offer_id)
        if rec is None or rec.schedule is None:
            return [Note("unknown-execution", {"offer": offer_id})]
        try:
            offer = rec.offer.with_state(State.EXECUTED)
        except FlexOfferError as exc:
            return [Note("execution-refused", {"offer": offer_id, "why": exc.reason})]
        mid = f"m-{offer_id}-{rec.schedule.update_id}"
        msg = Measurement(mid, offer_id, start, tuple(energy), rec.offer.resolution)
        self.ledger[PROSUMER_OFFERS].put(offer_id, replace(rec, offer=offer, measurement_id=mid))
        return [Note("executed", {"offer": offer_id, "kWh": round(sum(energy), 6)}),
                *self.send_reliable(self.aggregator, msg, now)]

    def device_fault(self, offer_id: str, device: str, kind: str, reason: str, now: int) -> list[Effect]:
        """A device behind ``offer_id`` misbehaved (its executor already put it in its safe state):
        tell the aggregator, reliably, since its settlement may wait for a measurement that will
        be late or never come."""
        n = self.ledger[META].get("fault_seq", 0) + 1
        self.ledger[META].put("fault_seq", n)
        msg = DeviceFaultReport(f"df-{n}", offer_id, device, kind, reason, now)
        return [Note("device-fault", {"offer": offer_id, "device": device, "kind": kind}),
                *self.send_reliable(self.aggregator, msg, now)]

    # -- engine hooks ----------------------------------------------------------------------
    def role_steps(self) -> list[TimedStep]:
        steps = [TimedStep("releases", self.on_tick, self.on_next_due)]
        if self.market is not None:
            steps.append(TimedStep("market", self._register,
                                   lambda now: None if self.ledger[META].get("registration_sent", False) else now))
        return steps

    # -- peer-to-peer trading in a two-sided pool --------------------------------------------
    def _register(self, now: int) -> list[Effect]:
        meta = self.ledger[META]
        if self.market is None or meta.get("registration_sent", False):
            return []
        meta.put("registration_sent", True)
        return self.send_reliable(self.market, Registration("register", self.jid, "both"), now)

    def _trade(self, now: int) -> list[Effect]:
        """Bid every assigned schedule not traded yet in the open session that delivers all of it:
        its energy per interval, bought or sold (:func:`~vmenergy.protocol.trading.pool_orders`)."""
        if self.market is None:
            return []
        sessions = [s for s in self.ledger[MARKET_NOTICES].values()
                    if s.state == "open" and s.gate_closure > now and s.mechanism == "two-sided"]
        orders = self.ledger[ORDERS]
        traded = {o.aggregate_id for o in orders.values()}
        out: list[Effect] = []
        for rec in sorted(self.ledger[PROSUMER_OFFERS].values(), key=lambda r: r.offer.id):
            s = rec.schedule
            if s is None or rec.offer.id in traded or rec.state is not State.ASSIGNED:
                continue
            end = s.start + rec.offer.profiles[s.profile].duration
            fits = [x for x in sessions if x.delivery_start <= max(s.start, -(-now // x.resolution))
                    and end <= x.delivery_end and x.resolution == rec.offer.resolution]
            if not fits:
                continue
            session = min(fits, key=lambda x: (x.gate_closure, x.session_id))
            for o in pool_orders(rec.offer, s, session, self.trading, now):
                bid_id = order_bid_id(rec.offer.id, o.interval)
                orders.put(bid_id, OrderRecord(rec.offer.id, session.session_id, o.interval, o.side, o.kind, o.volume,
                                               o.price))
                out += self.send_reliable(self.market, BidMessage(
                    bid_id, session.session_id, o.side, volume=o.volume, price=o.price, start=o.interval,
                    end=o.interval + 1, resolution=session.resolution), now)
        return out

    @handles(MarketSessionNotice)
    def _session(self, sender: str, msg: MarketSessionNotice, now: int) -> list[Effect]:
        if sender != self.market:  # a notice is not answered, so not authorised: checked here
            return [Note("ignored", {"from": sender, "type": type(msg).__name__})]
        self.ledger[MARKET_NOTICES].put(msg.session_id, msg)
        return [Note("market-session", {"session": msg.session_id, "state": msg.state}), *self._trade(now)]

    @handles(Clearing)
    def _clearing(self, sender: str, c: Clearing, now: int) -> tuple[list[Effect], Optional[str]]:
        orders = self.ledger[ORDERS]
        rec = orders.get(c.bid_id)
        if rec is None:
            return [], f"unknown bid {c.bid_id}"
        earned = -cents(c.amount) if c.amount is not None else 0
        orders.put(c.bid_id, replace(rec, status=c.status, cleared=c.volume, amount_cents=earned))
        return [Note("order-" + c.status, {"bid": c.bid_id, "volume": c.volume, "reason": c.reason})], None

    def on_tick(self, now: int) -> list[Effect]:
        out: list[Effect] = self._take_offers(now)
        if self.paused:  # an operator holds new offers back; they go out on resume
            return out
        offers = self.ledger[PROSUMER_OFFERS]
        due = [key for key, release in self._unsent.items() if release <= now]
        if len(due) > 1:  # sent in the table's order, as a scan of the table sends them
            wanted = set(due)
            due = [key for key in offers if key in wanted]
        for key in due:
            rec = offers.require(key)
            offer = rec.offer.with_state(State.OFFERED)
            offers.put(offer.id, replace(rec, offer=offer, sent_at=now))
            out += self.send_reliable(self.aggregator, OfferMessage("insert", offer.id, offer), now)
        return out

    def on_next_due(self, now: int) -> Optional[int]:
        """The first release of an offer not yet sent, and when the source has new offers."""
        if self.paused:
            return None
        times = list(self._unsent.values())
        upcoming = self.source.next_due(now) if self.source is not None else None
        if upcoming is not None:
            times.append(upcoming)
        return min(times) if times else None

    def authorize(self, sender: str, msg: Message, now: int) -> Optional[str]:
        if self.market is not None and sender == self.market:
            if isinstance(msg, (Clearing, MarketSessionNotice, BillMessage)):
                return None
            return f"{sender} is this prosumer's market: it takes no {msg.element} from it"
        if sender != self.aggregator:
            return f"{sender} is not this prosumer's aggregator"
        if isinstance(msg, (Clearing, MarketSessionNotice)):
            return f"{sender} is not this prosumer's market"
        return None

    @handles(AssignmentMessage)
    def _assignment(self, sender: str, msg: AssignmentMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        schedule = msg.schedule
        rec = self.ledger[PROSUMER_OFFERS].get(schedule.offer_id)
        if rec is None:
            return [], f"unknown offer {schedule.offer_id}"
        if rec.accepted is not None:
            # an update is on its way, yet the aggregator assigns: it answers in order, so it had
            # not taken the update (its refusal follows) and the schedule is the accepted version's
            rec = replace(rec, offer=rec.accepted, accepted=None)
        if rec.schedule is not None and schedule.update_id <= rec.schedule.update_id:
            return [], f"stale update {schedule.update_id} (have {rec.schedule.update_id})"
        violations = self.window_offer(rec).check(schedule, now=now // rec.offer.resolution)
        if violations:
            return [], "infeasible: " + "; ".join(str(v) for v in violations)
        try:
            offer = rec.offer.with_state(State.ASSIGNED)
        except FlexOfferError as exc:
            return [], exc.reason
        self.ledger[PROSUMER_OFFERS].put(offer.id, replace(rec, offer=offer, schedule=schedule))
        return [Execute(offer, schedule), Note("assigned", {"offer": offer.id, "schedule": schedule.schedule_id}),
                *self._trade(now)], None

    @handles(OfferRejection)
    def _rejection(self, sender: str, msg: OfferRejection, now: int) -> tuple[list[Effect], Optional[str]]:
        """The aggregator takes back an acceptance (the offer could not be assigned in time)."""
        offers = self.ledger[PROSUMER_OFFERS]
        rec = offers.get(msg.offer_id)
        if rec is None:
            return [], f"unknown offer {msg.offer_id}"
        if rec.offer.version != msg.version:
            return [], f"version {msg.version} is not the current version {rec.offer.version}"
        if rec.state is State.REJECTED:
            return [], None  # already rejected (an earlier rejection, told again): nothing changes
        try:
            offer = rec.offer.with_state(State.REJECTED)
        except FlexOfferError as exc:
            return [], exc.reason
        offers.put(offer.id, replace(rec, offer=offer, reason=msg.reason))
        return [Note("offer-rejected", {"offer": offer.id, "reason": msg.reason}), RunDefault(offer, msg.reason)], None

    @staticmethod
    def window_offer(rec: ProsumerOffer) -> FlexOffer:
        """The offer with the start window the aggregator may have used.

        An implicit window is fixed by the aggregator at the moment it accepted the offer, which
        the prosumer only knows to lie between sending the offer and receiving the acceptance;
        a start is admissible if it is admissible for some moment in that span."""
        fo = rec.offer
        if not fo.is_implicit or rec.sent_at is None or rec.answered_at is None:
            return fo
        res = fo.resolution
        first, last = rec.sent_at // res, rec.answered_at // res
        return replace(fo.resolve(first), start_before=fo.resolve(last).latest_start())

    @handles(BillMessage)
    def _bill(self, sender: str, bill: BillMessage, now: int) -> tuple[list[Effect], Optional[str]]:
        self.ledger[PROSUMER_BILLS].put(bill.bill_id, bill)
        offers = self.ledger[PROSUMER_OFFERS]
        for line in bill.lines:
            rec = offers.get(line.offer_id) if line.offer_id else None
            if rec is not None and rec.state is State.ASSIGNED:
                # billed before our measurement reached the aggregator; it is still on its way
                # (a correction bill follows), so the offer is executed as far as billing goes
                rec = replace(rec, offer=rec.offer.with_state(State.EXECUTED))
            if rec is not None and rec.state is State.EXECUTED:
                offers.put(rec.offer.id, replace(rec, offer=rec.offer.with_state(State.SETTLED), bill_id=bill.bill_id))
        return [Note("bill", {"bill": bill.bill_id, "total_cents": bill.total_cents})], None

    def on_ack(self, sender: str, ack: Ack, msg: Message, now: int) -> list[Effect]:
        if ack.kind != OfferMessage.ack or not isinstance(msg, OfferMessage) or msg.op == "delete":
            return []
        offers = self.ledger[PROSUMER_OFFERS]
        rec = offers.get(ack.ref)
        if rec is None or rec.offer.version != ack.version or rec.state is not State.OFFERED:
            return []
        if not ack.accepted and msg.op == "update" and rec.accepted is not None:
            # the aggregator refused the update but holds the version it accepted (aggregated
            # already): that one stands, and its schedule will come; the device does what it can
            offers.put(ack.ref, replace(rec, offer=rec.accepted, accepted=None, answered_at=now))
            return [Note("update-refused", {"offer": ack.ref, "why": ack.reason})]
        new_state = State.ACCEPTED if ack.accepted else State.REJECTED
        offer = rec.offer.with_state(new_state)
        offers.put(ack.ref, replace(rec, offer=offer, reason=ack.reason, answered_at=now, accepted=None))
        out: list[Effect] = [Note("offer-" + new_state.value, {"offer": ack.ref, "reason": ack.reason})]
        if not ack.accepted:
            out.append(RunDefault(offer, ack.reason))
        return out

    def ran_default(self, offer_id: str, start: int, energy: list[float], now: int) -> list[Effect]:
        """The device behind a rejected offer ran its normal programme; ``start`` is an interval
        at the offer's resolution, ``energy`` what the meter saw, kWh per interval."""
        rec = self.ledger[PROSUMER_OFFERS].get(offer_id)
        if rec is None:
            return [Note("unknown-default-run", {"offer": offer_id})]
        run = DefaultRun(offer_id, start, tuple(float(e) for e in energy), rec.offer.resolution, rec.reason)
        self.ledger[PROSUMER_DEFAULT_RUNS].put(offer_id, run)
        return [Note("default-run", {"offer": offer_id, "kWh": round(sum(energy), 6)})]

    # -- reporting -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Offers by state (kept as the offers are written: no scan)."""
        return {state.value: n for state, n in self._counts.items()}

    def count(self, state: State) -> int:
        """How many offers are in ``state`` (no scan)."""
        return self._counts.get(state, 0)

    def status(self) -> str:
        c = self.counts()
        n = sum(c.values())
        done = c.get("assigned", 0) + c.get("executed", 0) + c.get("settled", 0)
        return f"{n} offers, {done} assigned, {c.get('settled', 0)} settled"
