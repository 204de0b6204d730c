"""Settlement of a population over one period: verification from metering, then money.

For every prosumer i and interval t of the period (all vectorised over blocks of prosumers):

    r = scheduled - default            requested adaptation (from the placed slices)
    b = baseline (contract's rule)     what the meter would have shown without activation
    e = b + r                          what the meter should show
    d = m - b                          delivered adaptation (m = metered energy)
    dev = m - e = d - r                deviation from the schedule
    band = max(tol_abs, tol_rel x |r|) tolerance band
    v = |r| if |dev| - band <= 1e-6 else clip(d x sign(r), 0, |r|)   verified adaptation (kWh)
    excess = max(|dev| - band, 0)      deviation outside the band (kWh, penalised)

only in *covered* intervals (some schedule or default runs there) that are *usable* (no meter
flag, baseline known); other covered intervals are counted as unverified: no reward, no penalty.

Money (per prosumer, then rounded once per line, see :mod:`vmenergy.settlement.bills`):
delegated contracts pay their rates for the flexibility of the offers whose schedule starts in the
period, plus ``revenue_share`` of the market revenue attributed to the prosumer: each interval's
revenue is split over the aggregator's prosumers in proportion to their verified adaptation
``v``; direct contracts pay ``v`` at the offer's price (up or down) or at the market price, less
the fee. Penalties: ``excess x (per_kwh + imbalance_factor x imbalance price)``, capped, never
negative; a prosumer who received an infeasible schedule is not penalised in the period.

The aggregator's earnings are its market revenue minus its imbalance cost, where its imbalance is
(delivered - sold) per interval and the delivered adaptation of the portfolio counts ``d`` in
usable covered intervals and ``r`` (as if delivered as scheduled) in unverified ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from vmenergy.flexoffer.limits import TOLERANCE
from vmenergy.flexoffer.ragged import sums_at
from vmenergy.flexoffer.timeutil import format_utc

from . import baselines as bl
from .assignments import Assignments, OfferFlag
from .bills import ParticipantBill, ProsumerBills
from .contracts import Contract
from .errors import SettlementError
from .market_sales import MarketSales
from .metering import MeterData, MeterFlag, MeterFlags, plausibility
from .money import allocate, to_cents
from .raster import cell_prices, rasterise

__all__ = ["Settlement", "settle", "DEFAULT_CHUNK", "QUANTITIES", "SERIES"]

#: Prosumers per block: 2048 x 96 intervals x 8 bytes = 1.5 MB per dense array, so a block's
#: working set stays cache-friendly and the memory settlement needs does not grow with the block.
DEFAULT_CHUNK = 2048
#: Tolerance comparisons allow this much float noise (kWh).
BAND_SLACK = TOLERANCE

#: Per-prosumer quantities of :attr:`Settlement.quantities` (kWh unless said otherwise): sums over
#: covered intervals of |r|, v, d x sign(r) (verified intervals), |dev| and excess; the additive
#: adjustment (kWh per interval); interval counts; per-offer sums over offers starting in the
#: period; values in EUR before rounding (v at offer prices, v at market prices, excess x imbalance
#: price, market revenue attributed to the prosumer's v).
QUANTITIES = (
    "requested_kwh", "verified_kwh", "delivered_kwh", "deviation_kwh", "excess_kwh", "adjustment_kwh",
    "covered_intervals", "unverified_intervals", "outside_tolerance_intervals",
    "offers", "flexible_kwh", "time_flexibility_h", "energy_flexibility_kwh", "activations",
    "value_offer_eur", "value_market_eur", "imbalance_charge_eur", "attributed_revenue_eur",
)
#: Per-participant interval series of :attr:`Settlement.portfolio` (kWh per interval).
SERIES = ("baseline", "measured", "requested", "delivered", "verified")


@dataclass(eq=False)
class Settlement:
    """Result of :func:`settle` for one period.

    ``bills`` (columnar prosumer bills; ``bills.bill(i)`` gives a readable one), ``participants``
    (one :class:`ParticipantBill` per aggregator), ``quantities`` (per prosumer, see
    :data:`QUANTITIES`), ``portfolio`` (per aggregator x interval, see :data:`SERIES`),
    ``market`` (the market results used, by participant), ``flags`` (every flagged prosumer
    interval), ``offer_ids``/``offer_prosumer``/``offer_flags`` (per assigned offer), and ``detail``
    (full prosumer x interval arrays, only with ``detail=True``).
    """

    period_start: int
    n_intervals: int
    resolution: int
    prosumers: np.ndarray
    contracts: tuple[Contract, ...]
    contract_index: np.ndarray
    aggregators: tuple[str, ...]
    aggregator_index: np.ndarray
    quantities: dict[str, np.ndarray]
    bills: ProsumerBills
    participants: tuple[ParticipantBill, ...]
    portfolio: dict[str, np.ndarray]
    market: dict[str, MarketSales]
    flags: MeterFlags
    offer_ids: np.ndarray
    offer_prosumer: np.ndarray
    offer_flags: np.ndarray
    detail: Optional[dict[str, np.ndarray]] = None

    @property
    def period_end(self) -> int:
        """End of the period (interval number, exclusive)."""
        return self.period_start + self.n_intervals

    def row(self, prosumer: str) -> int:
        hit = np.flatnonzero(self.prosumers == prosumer)
        if not len(hit):
            raise SettlementError("prosumer", f"no prosumer {prosumer!r} in this settlement")
        return int(hit[0])

    def bill(self, prosumer: str | int):
        """Readable bill of a prosumer (id or row)."""
        return self.bills.bill(prosumer if isinstance(prosumer, (int, np.integer)) else self.row(prosumer))

    def participant(self, name: str) -> ParticipantBill:
        for p in self.participants:
            if p.participant == name:
                return p
        raise SettlementError("participant", f"no participant {name!r} (have: {', '.join(self.aggregators)})")

    def flag_records(self, limit: Optional[int] = None) -> list[dict]:
        """Flagged prosumer intervals as readable records (prosumer, interval, time, reasons)."""
        return self.flags.records(self.prosumers, self.resolution, limit)

    def describe(self) -> str:
        return (f"settlement {format_utc(self.period_start * self.resolution)} + {self.n_intervals} x "
                f"{self.resolution} s: {len(self.prosumers)} prosumers, {len(self.offer_ids)} offers, "
                f"{len(self.flags)} flagged intervals")


# ---------------------------------------------------------------------------------------------


def _contract_index(contract_of: object, contracts: tuple[Contract, ...], n: int) -> np.ndarray:
    a = np.asarray(contract_of)
    if a.shape != (n,):
        raise SettlementError("contract_of", f"must give one contract per prosumer ({n}), got shape {a.shape}")
    if a.dtype.kind in "iu":
        bad = np.flatnonzero((a < 0) | (a >= len(contracts)))
        if len(bad):
            raise SettlementError(f"contract_of[{int(bad[0])}]",
                                  f"no contract #{int(a[bad[0]])} ({len(contracts)} given)")
        return a.astype(np.int64)
    ids = {c.id: k for k, c in enumerate(contracts)}
    uniq, inv = np.unique(a.astype(object).astype(str), return_inverse=True)
    codes = np.empty(len(uniq), dtype=np.int64)
    for j, u in enumerate(uniq.tolist()):
        if u not in ids:
            k = int(np.flatnonzero(inv == j)[0])
            raise SettlementError(f"contract_of[{k}]", f"unknown contract {u!r} (have: {', '.join(ids)})")
        codes[j] = ids[u]
    return codes[inv]


def _markets(market: object, aggregators: tuple[str, ...], T: int) -> dict[str, MarketSales]:
    if market is None:
        items: list[MarketSales] = []
    elif isinstance(market, MarketSales):
        items = [market]
    elif isinstance(market, Mapping):
        items = list(market.values())
    elif isinstance(market, Iterable):
        items = list(market)
    else:
        raise SettlementError("market", f"not a MarketSales or a collection of them: {type(market).__name__}")
    out: dict[str, MarketSales] = {}
    for k, mr in enumerate(items):
        if not isinstance(mr, MarketSales):
            raise SettlementError(f"market[{k}]", f"not a MarketSales: {type(mr).__name__}")
        if mr.participant not in aggregators:
            raise SettlementError(
                f"market[{k}].participant",
                f"{mr.participant!r} is not the aggregator of any contract in use ({', '.join(aggregators)})",
            )
        if mr.participant in out:
            raise SettlementError(f"market[{k}].participant", f"two market results for {mr.participant!r}")
        mr.check_period(T)
        out[mr.participant] = mr
    return out


def _per_contract(contracts: Sequence[Contract], fn) -> np.ndarray:
    return np.array([fn(c) for c in contracts], dtype=np.float64)


def settle(
    meter: MeterData,
    assignments: Assignments,
    contracts: Sequence[Contract],
    contract_of: Sequence[str] | Sequence[int] | np.ndarray,
    market: MarketSales | Mapping[str, MarketSales] | Iterable[MarketSales] | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
    detail: bool = False,
) -> Settlement:
    """Settle one period: verify every prosumer's metering and compute all bills.

    ``meter``: the period's metering (defines prosumers, period and resolution);
    ``assignments``: the assigned offers (:func:`~vmenergy.settlement.assignments_from_offers` or
    ``assignments_from_sets``); ``contracts`` and ``contract_of`` (per prosumer: a contract id, or
    an index into ``contracts``); ``market``: each aggregator's :class:`MarketSales` (an
    aggregator without one sold nothing). ``detail=True`` keeps the full prosumer x interval
    arrays (for small populations and audits). Raises :class:`SettlementError` on input that
    cannot be interpreted; bad meter values are flagged, never raised.
    """
    contracts = tuple(contracts)
    for k, contract in enumerate(contracts):
        if not isinstance(contract, Contract):
            raise SettlementError(f"contracts[{k}]", f"not a Contract: {type(contract).__name__}")
    if not isinstance(meter, MeterData):
        raise SettlementError("meter", "must be a MeterData")
    if not isinstance(assignments, Assignments):
        raise SettlementError("assignments", "must be Assignments (assignments_from_offers / _from_sets)")
    if chunk < 1:
        raise SettlementError("chunk", "must be >= 1")
    n, T, res, start = meter.n, meter.n_intervals, meter.resolution, meter.start
    if assignments.n_prosumers != n or assignments.resolution != res:
        raise SettlementError("assignments", "built for other meter data (prosumer count or resolution differ)")
    ci = _contract_index(contract_of, contracts, n)
    used = np.bincount(ci, minlength=len(contracts)) > 0
    p_start, p_end = start * res, (start + T) * res
    for k, contract in enumerate(contracts):
        if used[k] and not contract.covers(p_start, p_end):
            first_row = int(np.flatnonzero(ci == k)[0])
            raise SettlementError(
                f"contract_of[{first_row}]",
                f"contract {contract.id!r} is not valid for the whole period {format_utc(p_start)} - {format_utc(p_end)}",
            )
        if used[k] and contract.baseline.history_days:
            need = contract.baseline.history_days
            have = meter.history_days
            if have < need:
                raise SettlementError(
                    "meter.history",
                    f"contract {contract.id!r} ({contract.baseline.method}) needs {need} days of history, "
                    f"the meter data has {have}",
                )
    aggregators = tuple(sorted({c.aggregator for k, c in enumerate(contracts) if used[k]}))
    agg_pos = {a: g for g, a in enumerate(aggregators)}
    agg_of_contract = np.array([agg_pos.get(c.aggregator, -1) for c in contracts], dtype=np.int64)
    ai = agg_of_contract[ci] if n else np.zeros(0, np.int64)
    n_agg = len(aggregators)
    markets = _markets(market, aggregators, T)
    price = np.zeros((n_agg, T))
    sold = np.zeros((n_agg, T))
    imb_price = np.zeros((n_agg, T))
    for name, mr in markets.items():
        pos = agg_pos[name]
        price[pos], sold[pos], imb_price[pos] = mr.price, mr.sold_kwh, mr.imbalance_price

    # per-contract parameters, gathered per prosumer row inside the loop
    tol_abs = _per_contract(contracts, lambda c: c.tolerance.absolute_kwh)
    tol_rel = _per_contract(contracts, lambda c: c.tolerance.relative)
    share = _per_contract(contracts, lambda c: c.reward.revenue_share if c.reward else 0.0)
    offer_priced = np.array([c.bill_kind == "direct:offer" for c in contracts], dtype=bool)
    needs_default = np.array([c.baseline.method == "offer" for c in contracts], dtype=bool)
    sharing = share[ci] > 0 if n else np.zeros(0, bool)
    # verified adaptation of revenue-sharing prosumers, kept sparse (row, interval, kWh) until the
    # portfolio's verified total of every interval is known
    v_rows: list[np.ndarray] = []
    v_cols: list[np.ndarray] = []
    v_vals: list[np.ndarray] = []

    # prosumers who received an infeasible schedule are not penalised
    infeasible = (assignments.flags & OfferFlag.INFEASIBLE) != 0
    exempt = np.bincount(assignments.prosumer[infeasible], minlength=n) > 0

    q: dict[str, np.ndarray] = {name: np.zeros(n) for name in QUANTITIES}
    portfolio = {name: np.zeros((n_agg, T)) for name in SERIES}
    flag_parts: list[MeterFlags] = []
    keep: dict[str, list[np.ndarray]] = {k: [] for k in ("metered", "baseline", "requested", "expected", "delivered",
                                                         "verified", "excess", "flags")} if detail else {}
    history = meter.history
    nan_bit = np.uint8(MeterFlag.NO_BASELINE)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        c = b - a
        rs = slice(a, b)
        cic = ci[a:b]
        aic = ai[a:b]
        present = np.flatnonzero(np.bincount(cic, minlength=len(contracts)))
        e = np.asarray(meter.energy[a:b])  # as stored (float32 is fine: compared and gathered only)
        fl = plausibility(meter, rs, energy=e)
        meter_ok = fl == 0
        any_flag = not meter_ok.all()
        ras = rasterise(assignments, a, b, start, T, default=bool(needs_default[present].any()),
                        prices=bool(offer_priced[present].any()))
        r = ras.requested
        base = _baselines(contracts, present, cic, ras, history, a, b, e, meter_ok, r, q["adjustment_kwh"][rs])
        # verification happens only where a schedule or default runs: work on those cells alone
        cell = np.flatnonzero(ras.covered)
        row = cell // T
        t = cell - row * T
        mf = e.ravel()[cell].astype(np.float64)
        bf = base.ravel()[cell]
        rf = r.ravel()[cell]
        flf = fl.ravel()[cell]
        with np.errstate(invalid="ignore"):
            nb = ~np.isfinite(bf)
            if nb.any():
                flf = flf | np.where(nb, nan_bit, np.uint8(0))
                fl.ravel()[cell[nb]] |= nan_bit
            ok = flf == 0  # meter plausible and baseline known
            bad = ~ok
            d = mf - bf
            dev = d - rf
            absr = np.abs(rf)
            band = tol_rel[cic][row] * absr
            np.maximum(band, tol_abs[cic][row], out=band)
            over = np.abs(dev)  # |dev|, then |dev| - band
            over[bad] = 0.0
            adev = over.copy()
            over -= band
            inside = (over <= BAND_SLACK) & ok
            toward = d * np.sign(rf)
            toward[bad] = 0.0
            v = np.clip(toward, 0.0, absr)
            v[inside] = absr[inside]
            excess = np.maximum(over, 0.0)
            excess[bad] = 0.0
            delivered = np.where(ok, d, rf)
        rsum = _row_sum(row, c)
        q["requested_kwh"][rs] = rsum(absr)
        q["verified_kwh"][rs] = rsum(v)
        q["delivered_kwh"][rs] = rsum(toward)
        q["deviation_kwh"][rs] = rsum(adev)
        q["excess_kwh"][rs] = rsum(excess)
        n_cov = np.bincount(row, minlength=c)
        n_ok = np.bincount(row[ok], minlength=c)
        q["covered_intervals"][rs] = n_cov
        q["unverified_intervals"][rs] = n_cov - n_ok
        q["outside_tolerance_intervals"][rs] = n_ok - np.bincount(row[inside], minlength=c)
        # values at interval prices
        g = aic[row]
        q["value_market_eur"][rs] = rsum(v * price[g, t])
        q["imbalance_charge_eur"][rs] = rsum(excess * imb_price[g, t])
        if ras.price_up is not None:
            q["value_offer_eur"][rs] = rsum(v * cell_prices(ras, cell, rf))
        # portfolio series per aggregator (baseline and metered over every interval, the rest over
        # covered ones: elsewhere r, the delivered and the verified adaptation are 0)
        slot = g * T + t
        for name, arr in (("requested", rf), ("delivered", delivered), ("verified", v)):
            portfolio[name] += sums_at(slot, arr, n_agg * T).reshape(n_agg, T)
        with np.errstate(invalid="ignore"):
            m0 = np.where(meter_ok, e, 0) if any_flag else e
            b0 = np.where(np.isfinite(base), base, 0.0)
        for name, arr in (("measured", m0), ("baseline", b0)):
            if n_agg == 1:
                portfolio[name][0] += np.add.reduce(arr, axis=0, dtype=np.float64)
            else:
                portfolio[name] += np.stack([np.add.reduce(arr[aic == k], axis=0, dtype=np.float64)
                                             for k in range(n_agg)])
        keep_v = sharing[a:b][row] & (v != 0)
        if keep_v.any():
            v_rows.append(row[keep_v] + a)
            v_cols.append(t[keep_v].astype(np.int32))
            v_vals.append(v[keep_v])
        if any_flag or nb.any():
            flag_parts.append(MeterFlags.from_dense(fl, a, start))
        if detail:
            def dense(values: np.ndarray) -> np.ndarray:
                out = np.zeros(c * T)
                out[cell] = values
                return out.reshape(c, T)

            keep["metered"].append(np.array(e, dtype=np.float64))
            keep["baseline"].append(base)
            keep["requested"].append(r)
            keep["expected"].append(base + r)
            keep["delivered"].append(dense(np.where(ok, d, 0.0)))
            keep["verified"].append(dense(v))
            keep["excess"].append(dense(excess))
            keep["flags"].append(fl)

    # per-offer quantities: paid in the period in which the schedule starts
    asg = assignments
    in_period = (asg.start >= start) & (asg.start < start + T)
    pr = asg.prosumer
    q["offers"] = sums_at(pr, in_period, n)
    q["flexible_kwh"] = sums_at(pr, asg.flexible_energy * in_period, n)
    q["time_flexibility_h"] = sums_at(pr, asg.time_flexibility * (res / 3600.0) * in_period, n)
    q["energy_flexibility_kwh"] = sums_at(pr, asg.energy_flexibility * in_period, n)
    q["activations"] = sums_at(pr, asg.activated & in_period, n)

    # market revenue attributed to prosumers by verified adaptation, interval by interval
    revenue_t = price * np.abs(sold)
    # divided only where some adaptation was verified: elsewhere a near-zero sum would overflow
    verified = portfolio["verified"]
    unit = np.divide(revenue_t, verified, out=np.zeros_like(revenue_t), where=verified > TOLERANCE)
    if v_rows:
        rows_ = np.concatenate(v_rows)
        cols_ = np.concatenate(v_cols)
        vals_ = np.concatenate(v_vals)
        q["attributed_revenue_eur"] = sums_at(rows_, vals_ * unit[ai[rows_], cols_], n)

    bills = _bills(q, contracts, ci, ai, aggregators, exempt, share, start, T, res, meter.prosumers)
    payouts = np.zeros(n_agg, dtype=np.int64)
    np.add.at(payouts, ai, bills.total)  # integer sums: exact
    n_members = np.bincount(ai, minlength=n_agg) if n else np.zeros(n_agg, np.int64)
    participants = []
    for g, name in enumerate(aggregators):
        imbalance = portfolio["delivered"][g] - sold[g]
        participants.append(ParticipantBill(
            participant=name, period_start=start * res, period_end=(start + T) * res,
            sold_kwh=float(np.abs(sold[g]).sum()), revenue_cents=int(to_cents(revenue_t[g].sum())),
            imbalance_kwh=float(np.abs(imbalance).sum()) if name in markets else 0.0,
            imbalance_cents=int(to_cents((np.abs(imbalance) * imb_price[g]).sum())) if name in markets else 0,
            payouts_cents=int(payouts[g]), prosumers=int(n_members[g]),
        ))
    return Settlement(
        period_start=start, n_intervals=T, resolution=res, prosumers=meter.prosumers, contracts=contracts,
        contract_index=ci, aggregators=aggregators, aggregator_index=ai, quantities=q, bills=bills,
        participants=tuple(participants), portfolio=portfolio, market=markets,
        flags=MeterFlags.concat(flag_parts), offer_ids=asg.offer_ids, offer_prosumer=asg.prosumer,
        offer_flags=asg.flags,
        detail={k: np.concatenate(v) if v else np.zeros((0, T)) for k, v in keep.items()} if detail else None,
    )


def _row_sum(row: np.ndarray, c: int):
    """Per-row sums of cell values (cells in row-major order, so each row adds in interval order)."""
    def fn(values: np.ndarray) -> np.ndarray:
        return sums_at(row, values, c)
    return fn


def _baselines(contracts: tuple[Contract, ...], present: np.ndarray, cic: np.ndarray, ras, history, a: int, b: int,
               energy: np.ndarray, meter_ok: np.ndarray, r: np.ndarray, adjustment_out: np.ndarray) -> np.ndarray:
    """Baseline of rows [a, b), one contract (one rule) at a time; writes each row's additive
    adjustment into ``adjustment_out``. Flagged readings take no part in an adjustment."""
    c, T = r.shape
    methods = {contracts[k].baseline.method for k in present}
    # rows on the offers' defaults start from the default raster (no gather, no scatter for them)
    base = ras.default if "offer" in methods else np.empty((c, T))  # ours to overwrite
    whole = len(present) == 1
    for k in present:
        rule = contracts[k].baseline
        rows = slice(None) if whole else np.flatnonzero(cic == k)
        if rule.method == "offer":
            if rule.adjustment is None:
                continue
            bk = base[rows]
        elif rule.method == "x_of_y":
            h = np.asarray(history[a:b]) if whole else np.asarray(history[a:b])[rows]
            bk = bl.x_of_y(h, rule.x, rule.y, rule.select)
        else:
            h = np.asarray(history[a:b, rule.day]) if whole else np.asarray(history[a:b, rule.day])[rows]
            bk = h.astype(np.float64)
        if rule.adjustment is not None:
            adj = rule.adjustment
            m = np.where(meter_ok[rows], energy[rows], np.nan)
            bk, shift = bl.additive_adjustment(bk, m, r[rows], adj.window, adj.gap, adj.cap_kwh)
            adjustment_out[rows] = shift
        base[rows] = bk
    return base


def _bills(q: dict[str, np.ndarray], contracts: tuple[Contract, ...], ci: np.ndarray, ai: np.ndarray,
           aggregators: tuple[str, ...], exempt: np.ndarray, share: np.ndarray, start: int, T: int, res: int,
           prosumers: np.ndarray) -> ProsumerBills:
    n = len(ci)
    kinds = np.array([c.bill_kind for c in contracts], dtype=object)
    kind = kinds[ci] if n else np.zeros(0, dtype=object)
    dele = kind == "delegated"
    d_off = kind == "direct:offer"
    d_mkt = kind == "direct:market"
    zero = np.zeros(n)

    def rate(fn) -> np.ndarray:
        return _per_contract(contracts, fn)[ci] if n else zero

    quantity: dict[str, np.ndarray] = {}
    rates: dict[str, np.ndarray] = {}
    amount: dict[str, np.ndarray] = {}

    def line(code: str, qty: np.ndarray, rt: np.ndarray, raw_eur: np.ndarray, mask: np.ndarray) -> None:
        quantity[code] = np.where(mask, qty, 0.0)
        rates[code] = np.where(mask, rt, np.nan)
        amount[code] = np.where(mask, to_cents(np.where(mask, raw_eur, 0.0), code), 0)

    for code, qname, fn in (
        ("flexible_energy", "flexible_kwh", lambda c: c.reward.per_kwh_flexible if c.reward else 0.0),
        ("time_flexibility", "time_flexibility_h", lambda c: c.reward.per_hour_time_flexibility if c.reward else 0.0),
        ("energy_flexibility", "energy_flexibility_kwh",
         lambda c: c.reward.per_kwh_energy_flexibility if c.reward else 0.0),
        ("activations", "activations", lambda c: c.reward.per_activation if c.reward else 0.0),
    ):
        rt = rate(fn)
        line(code, q[qname], rt, q[qname] * rt, dele)

    # revenue share: split each contract's pot (its share of the attributed revenue) by largest remainder
    sh = share[ci] if n else zero
    exact = sh * q["attributed_revenue_eur"] * 100.0
    exact = np.where(dele, exact, 0.0)
    pot = to_cents(sums_at(ci, exact, len(contracts)) / 100.0, "revenue_share") if n else \
        np.zeros(len(contracts), np.int64)
    quantity["revenue_share"] = np.where(dele, q["verified_kwh"], 0.0)
    rates["revenue_share"] = np.full(n, np.nan)
    amount["revenue_share"] = np.where(dele, allocate(exact, ci, pot), 0) if n else np.zeros(0, np.int64)
    verified = q["verified_kwh"]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_offer = np.where(verified > 0, q["value_offer_eur"] / verified, np.nan)
        avg_market = np.where(verified > 0, q["value_market_eur"] / verified, np.nan)
    line("offer_price", verified, avg_offer, q["value_offer_eur"], d_off)
    line("market_price", verified, avg_market, q["value_market_eur"], d_mkt)
    fee_frac = rate(lambda c: c.pricing.fee_fraction if c.pricing else 0.0)
    fee_kwh = rate(lambda c: c.pricing.fee_per_kwh if c.pricing else 0.0)
    gross = np.where(d_off, q["value_offer_eur"], np.where(d_mkt, q["value_market_eur"], 0.0))
    line("fee", verified, np.full(n, np.nan), -(fee_frac * gross + fee_kwh * verified), d_off | d_mkt)

    per_kwh = rate(lambda c: c.penalty.per_kwh)
    factor = rate(lambda c: c.penalty.imbalance_factor)
    cap = rate(lambda c: np.inf if c.penalty.cap_eur is None else c.penalty.cap_eur)
    raw = per_kwh * q["excess_kwh"] + factor * q["imbalance_charge_eur"]
    raw = np.minimum(np.maximum(raw, 0.0), cap)
    raw = np.where(exempt, 0.0, raw)
    line("penalty", q["excess_kwh"], np.where(factor > 0, np.nan, per_kwh), -raw, np.ones(n, bool))
    line("unverified", q["unverified_intervals"], np.full(n, np.nan), zero, np.ones(n, bool))
    return ProsumerBills(
        prosumers=prosumers, contract_index=ci, contract_ids=tuple(c.id for c in contracts), bill_kind=kinds,
        aggregators=aggregators, aggregator_index=ai, period_start=start * res, period_end=(start + T) * res,
        quantity=quantity, rate=rates, amount=amount, share=np.where(dele, sh, 0.0),
        attributed_eur=q["attributed_revenue_eur"], exempt=exempt,
    )
