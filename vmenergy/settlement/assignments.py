"""What was assigned: offers, their binding schedules and default schedules, as placed slices.

Settlement compares metering per interval with what the schedule asked for, so every slice of
every schedule (and of every offer's default schedule) is *placed* in time: slice k of a schedule
starting at interval s covers intervals [s + d_0 + ... + d_{k-1}, ... + d_k) and its energy is
spread evenly over them (a slice's energy is kWh over its whole duration). :class:`Assignments`
holds those placed slices flat, sorted by prosumer (CSR offsets over the meter rows), plus the
per-offer numbers delegated contracts pay for. Build it from columnar sets
(:func:`assignments_from_sets`, the one implementation) or from objects
(:func:`assignments_from_offers`, which checks them, names the offending object, and hands
their columnar copy to the same implementation).

Default schedule: the offer's ``baseline`` (what the device does without flexibility). An offer
without one is taken to run the *same energies at its earliest start* (the natural behaviour of a
device that starts when it can), so moving it in time is an activation while its energy amounts
count as not adapted; the offer is flagged NO_DEFAULT.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Iterable, Mapping, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, Schedule, ScheduleSet
from vmenergy.flexoffer.limits import TOLERANCE
from vmenergy.flexoffer.offerset import NA, check as check_sets
from vmenergy.flexoffer.ragged import expand_rows, offsets_from_counts, positions, segment_any, segment_sum, starts_within

from .errors import SettlementError
from .metering import MeterData

__all__ = ["OfferFlag", "Assignments", "assignments_from_offers", "assignments_from_sets"]


class OfferFlag(IntFlag):
    """Per-offer remarks (bits) carried to the settlement result."""

    INFEASIBLE = 1  # the schedule violates its offer: the prosumer is not penalised this period
    NO_DEFAULT = 2  # no default schedule: default = schedule energies at the earliest start
    NO_PRICES = 4  # no EUR prices in the offer (matters for direct contracts priced by offer)
    IMPLICIT_WINDOW = 8  # time flexibility measured from the creation time or schedule start


@dataclass(eq=False)
class Assignments:
    """Assigned offers as flat arrays, sorted by prosumer.

    Per offer (m, in prosumer order): ``offer_ids``, ``prosumer`` (meter row), ``start`` (schedule
    start interval), ``default_start``, ``time_flexibility`` (intervals), ``energy_flexibility``
    (kWh), ``flexible_energy`` (kWh: sum of |scheduled slice energy|), ``activated`` (schedule
    differs from default), ``priced`` (EUR prices known), ``flags`` (:class:`OfferFlag`).
    Per placed slice (S, schedule and default slices, in prosumer order): ``owner`` (offer),
    ``sign`` (+1 schedule, -1 default), ``t0`` (first interval), ``duration``, ``energy`` (kWh over
    the slice), ``price_up``/``price_down`` (EUR/kWh, NaN = none).
    ``offer_offsets``/``slice_offsets`` (n_prosumers + 1) index both by meter row.
    """

    resolution: int
    n_prosumers: int
    offer_ids: np.ndarray
    prosumer: np.ndarray
    start: np.ndarray
    default_start: np.ndarray
    time_flexibility: np.ndarray
    energy_flexibility: np.ndarray
    flexible_energy: np.ndarray
    activated: np.ndarray
    priced: np.ndarray
    flags: np.ndarray
    owner: np.ndarray
    sign: np.ndarray
    t0: np.ndarray
    duration: np.ndarray
    energy: np.ndarray
    price_up: np.ndarray
    price_down: np.ndarray
    offer_offsets: np.ndarray
    slice_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offer_ids)

    @property
    def n_slices(self) -> int:
        return len(self.t0)


# ---------------------------------------------------------------------------------------------
# the common tail of both builders


def _finish(
    resolution: int, n_prosumers: int, offer_ids: np.ndarray, prosumer: np.ndarray, start: np.ndarray,
    default_start: np.ndarray, tf: np.ndarray, ef: np.ndarray, activated: np.ndarray, priced: np.ndarray,
    flags: np.ndarray, s_off: np.ndarray, s_dur: np.ndarray, s_en: np.ndarray, s_pu: np.ndarray, s_pd: np.ndarray,
    d_off: np.ndarray, d_dur: np.ndarray, d_en: np.ndarray, d_pu: np.ndarray, d_pd: np.ndarray,
) -> Assignments:
    m = len(offer_ids)
    order = None
    if m > 1 and np.any(np.diff(prosumer) < 0):
        order = np.argsort(prosumer, kind="stable")

    def placed(off, dur, start_of):
        owner, _ = positions(np.diff(off))
        return owner, start_of[owner] + starts_within(dur, off)

    s_owner, s_t0 = placed(s_off, s_dur, start)
    d_owner, d_t0 = placed(d_off, d_dur, default_start)
    # interleave per offer: its schedule slices, then its default slices (positions, no sort)
    s_pos = np.arange(len(s_owner), dtype=np.int64) + d_off[:-1][s_owner]
    d_pos = np.arange(len(d_owner), dtype=np.int64) + s_off[1:][d_owner]
    total = len(s_owner) + len(d_owner)

    def merged(a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
        out = np.empty(total, dtype=dtype)
        out[s_pos] = a
        out[d_pos] = b
        return out

    owner = merged(s_owner, d_owner, np.int64)
    sign = merged(np.ones(len(s_owner), np.int8), -np.ones(len(d_owner), np.int8), np.int8)
    t0 = merged(s_t0, d_t0, np.int64)
    dur = merged(s_dur, d_dur, np.int32)
    en = merged(s_en, d_en, np.float64)
    pu = merged(s_pu, d_pu, np.float64)
    pd = merged(s_pd, d_pd, np.float64)
    flexible = segment_sum(np.abs(s_en.astype(np.float64)), s_off)

    per_offer = [offer_ids, prosumer, start, default_start, tf, ef, flexible, activated, priced, flags]
    if order is not None:
        rank = np.empty(m, dtype=np.int64)
        rank[order] = np.arange(m)
        per_offer = [a[order] for a in per_offer]
        owner = rank[owner]
    # slices grouped by prosumer, then offer, schedule slices before default slices
    if order is not None:
        key_order = np.argsort(owner, kind="stable")
        owner, sign, t0, dur, en, pu, pd = (a[key_order] for a in (owner, sign, t0, dur, en, pu, pd))
    offer_ids, prosumer, start, default_start, tf, ef, flexible, activated, priced, flags = per_offer
    offer_offsets = np.searchsorted(prosumer, np.arange(n_prosumers + 1), side="left").astype(np.int64)
    slice_offsets = np.searchsorted(prosumer[owner] if len(owner) else owner, np.arange(n_prosumers + 1),
                                    side="left").astype(np.int64)
    return Assignments(
        resolution=resolution, n_prosumers=n_prosumers, offer_ids=offer_ids, prosumer=prosumer, start=start,
        default_start=default_start, time_flexibility=tf.astype(np.int64), energy_flexibility=ef.astype(np.float64),
        flexible_energy=flexible, activated=activated.astype(bool), priced=priced.astype(bool),
        flags=flags.astype(np.uint8), owner=owner, sign=sign, t0=t0, duration=dur, energy=en, price_up=pu,
        price_down=pd, offer_offsets=offer_offsets, slice_offsets=slice_offsets,
    )


# ---------------------------------------------------------------------------------------------


def assignments_from_offers(
    offers: Iterable[FlexOffer],
    schedules: Iterable[Schedule],
    meter: MeterData,
    *,
    prosumer_of: Optional[Mapping[str, str]] = None,
) -> Assignments:
    """Assignments from offer and schedule objects.

    Each schedule is matched to its offer by ``offer_id``; of several schedules for one offer the
    highest ``update_id`` binds. Offers without a schedule were not assigned and are not settled.
    The prosumer of an offer is ``prosumer_of[offer.id]`` if given, else its ``issuer``; it must
    have a row in ``meter`` (a row of NaN if no readings arrived - that is flagged, not dropped).
    """
    offers = list(offers)
    by_id: dict[str, int] = {}
    for k, fo in enumerate(offers):
        if not isinstance(fo, FlexOffer):
            raise SettlementError(f"offers[{k}]", f"not a FlexOffer: {type(fo).__name__}")
        if fo.id in by_id:
            raise SettlementError(f"offers[{k}].id", f"duplicate offer id {fo.id!r} (also offers[{by_id[fo.id]}])")
        by_id[fo.id] = k
    binding: dict[str, tuple[int, Schedule]] = {}
    for k, s in enumerate(schedules):
        if not isinstance(s, Schedule):
            raise SettlementError(f"schedules[{k}]", f"not a Schedule: {type(s).__name__}")
        if s.offer_id not in by_id:
            raise SettlementError(f"schedules[{k}].offer_id", f"no offer {s.offer_id!r} among the offers given")
        prev = binding.get(s.offer_id)
        if prev is None or s.update_id > prev[1].update_id:
            binding[s.offer_id] = (k, s)
        elif s.update_id == prev[1].update_id and s != prev[1]:
            raise SettlementError(
                f"schedules[{k}].update_id",
                f"two different schedules for {s.offer_id!r} with update_id {s.update_id} (schedules[{prev[0]}])",
            )
    index = meter.index()
    res = meter.resolution
    # The object-level checks name the offending object (offers[k], schedules[k]); the columnar
    # builder then does the work, so both builders apply one set of rules.
    assigned: list[FlexOffer] = []
    chosen: list[Schedule] = []
    rows: list[int] = []
    for k, fo in enumerate(offers):
        if fo.id not in binding:
            continue
        sk, s = binding[fo.id]
        who = prosumer_of.get(fo.id) if prosumer_of is not None else fo.issuer
        if who is None:
            raise SettlementError(f"offers[{k}].issuer", "no issuer: give the offer an issuer or map it in prosumer_of")
        if who not in index:
            raise SettlementError(
                f"offers[{k}].issuer",
                f"no metering row for prosumer {who!r} (add a row of NaN if no readings arrived)",
            )
        if fo.resolution != res:
            raise SettlementError(f"offers[{k}].resolution", f"{fo.resolution} s differs from the meter's {res} s")
        if s.resolution != res:
            raise SettlementError(f"schedules[{sk}].resolution", f"{s.resolution} s differs from the meter's {res} s")
        if s.profile >= len(fo.profiles):
            raise SettlementError(f"schedules[{sk}].profile", f"no profile {s.profile} in offer {fo.id!r}")
        prof = fo.profiles[s.profile]
        if len(s.energy) != prof.n_slices:
            raise SettlementError(
                f"schedules[{sk}].energy",
                f"has {len(s.energy)} values but profile {s.profile} of {fo.id!r} has {prof.n_slices} slices: "
                "it cannot be placed in time",
            )
        assigned.append(fo)
        chosen.append(s)
        rows.append(index[who])
    offer_set = FlexOfferSet.from_offers(assigned)
    return assignments_from_sets(offer_set, ScheduleSet.from_schedules(chosen, offer_set), meter,
                                 prosumer=np.asarray(rows, dtype=np.int64))


def assignments_from_sets(
    offers: FlexOfferSet,
    schedules: ScheduleSet,
    meter: MeterData,
    *,
    prosumer: Optional[np.ndarray] = None,
    default_start: Optional[np.ndarray] = None,
    default_energy: Optional[np.ndarray] = None,
    price_up: Optional[np.ndarray] = None,
    price_down: Optional[np.ndarray] = None,
    check_feasibility: bool = True,
) -> Assignments:
    """Assignments of a population from columnar sets, with array operations.

    ``prosumer``: meter row of every offer (length ``len(offers)``); default: each offer's
    issuer looked up in ``meter.prosumers``. Defaults and prices are read from the offers'
    sidecar (``baseline``, ``prices``) unless given as columns: ``default_start`` per schedule
    (NA = no default) with ``default_energy`` aligned with ``schedules.energy`` (the default runs
    the schedule's profile), and ``price_up``/``price_down`` per schedule or per scheduled slice
    (EUR/kWh, NaN = none). Of several schedules for one offer the highest update id binds.
    """
    res = meter.resolution
    n_off = len(offers)
    oi = np.asarray(schedules.offer_index, dtype=np.int64)
    m = len(oi)
    bad = np.flatnonzero((oi < 0) | (oi >= n_off))
    if len(bad):
        raise SettlementError(f"schedules[{int(bad[0])}].offer_id", "does not refer to an offer of the set")
    bad = np.flatnonzero(schedules.resolution != res)
    if len(bad):
        raise SettlementError(f"schedules[{int(bad[0])}].resolution", f"differs from the meter's {res} s")
    bad = np.flatnonzero(offers.resolution != res)
    if len(bad):
        raise SettlementError(f"offers[{int(bad[0])}].resolution", f"differs from the meter's {res} s")
    keep = np.arange(m)
    if m and np.bincount(oi, minlength=n_off).max() > 1:  # several schedules for one offer
        upd = schedules.update_ids if schedules.update_ids is not None else np.zeros(m, np.int64)
        order = np.lexsort((upd, oi))
        last = np.r_[oi[order][1:] != oi[order][:-1], True]
        dup = np.r_[False, (oi[order][1:] == oi[order][:-1]) & (upd[order][1:] == upd[order][:-1])]
        if dup.any():
            k = int(order[np.flatnonzero(dup)[0]])
            raise SettlementError(f"schedules[{k}].update_id", "two schedules for one offer with the same update id")
        keep = np.sort(order[last])
    e_off_all = schedules.energy_offsets
    if len(keep) != m:
        sel = expand_rows(e_off_all, keep)
        lengths = np.diff(e_off_all)[keep]
        e_off = np.zeros(len(keep) + 1, np.int64)
        np.cumsum(lengths, out=e_off[1:])
        energy = schedules.energy[sel]
        if default_energy is not None:
            default_energy = np.asarray(default_energy)[sel]
        if price_up is not None:
            price_up = np.asarray(price_up)[sel if len(price_up) == len(schedules.energy) else keep]
        if price_down is not None:
            price_down = np.asarray(price_down)[sel if len(price_down) == len(schedules.energy) else keep]
        if default_start is not None:
            default_start = np.asarray(default_start)[keep]
    else:
        e_off = e_off_all
        energy = schedules.energy
    oi_k = oi[keep]
    start = schedules.start[keep].astype(np.int64)
    profile = schedules.profile[keep].astype(np.int64)
    mk = len(keep)
    n_prof = offers.profile_offsets[oi_k + 1] - offers.profile_offsets[oi_k]
    bad = np.flatnonzero((profile < 0) | (profile >= n_prof))
    if len(bad):
        raise SettlementError(f"schedules[{int(keep[bad[0]])}].profile", "no such profile in its offer")
    p = offers.profile_offsets[oi_k] + profile
    lengths = np.diff(e_off)
    bad = np.flatnonzero(lengths != offers.slice_count[p])
    if len(bad):
        k = int(bad[0])
        raise SettlementError(
            f"schedules[{int(keep[k])}].energy",
            f"has {int(lengths[k])} values but the profile has {int(offers.slice_count[p[k]])} slices: "
            "it cannot be placed in time",
        )
    # prosumer rows
    if prosumer is None:
        index = meter.index()
        rows = np.empty(n_off, dtype=np.int64)
        for i, who in enumerate(offers.issuers.tolist()):
            r = index.get(who)
            if r is None:
                raise SettlementError(f"offers[{i}].issuer", f"no metering row for prosumer {who!r}")
            rows[i] = r
    else:
        rows = np.asarray(prosumer, dtype=np.int64)
        if rows.shape != (n_off,):
            raise SettlementError("prosumer", f"must give one meter row per offer ({n_off})")
        bad = np.flatnonzero((rows < 0) | (rows >= meter.n))
        if len(bad):
            raise SettlementError(f"prosumer[{int(bad[0])}]", f"not a meter row (0..{meter.n - 1})")
    pros = rows[oi_k]
    flags = np.zeros(mk, dtype=np.uint8)
    # earliest / latest start of the scheduled profile (as in offerset.check)
    sa = offers.start_after[oi_k]
    sb = offers.start_before[oi_k]
    dur_ = offers.start_before_duration[oi_k]
    psa = offers.profile_start_after[p]
    psb = offers.profile_start_before[p]
    earliest = np.where(psa == NA, sa, np.where(sa == NA, psa, np.maximum(sa, psa)))
    latest = np.where(sb != NA, sb, np.where(sa != NA, sa + np.where(dur_ == NA, 0, dur_), NA))
    latest = np.where(psb == NA, latest, np.where(latest == NA, psb, np.minimum(latest, psb)))
    # time flexibility of the offer (max over profiles), scalar rule only where the window is implicit
    all_sa = offers.start_after[offers.offer_of_profile]
    all_sb = offers.start_before[offers.offer_of_profile]
    all_d = offers.start_before_duration[offers.offer_of_profile]
    pe = np.where(offers.profile_start_after == NA, all_sa,
                  np.where(all_sa == NA, offers.profile_start_after, np.maximum(all_sa, offers.profile_start_after)))
    pl = np.where(all_sb != NA, all_sb, np.where(all_sa != NA, all_sa + np.where(all_d == NA, 0, all_d), NA))
    pl = np.where(offers.profile_start_before == NA, pl,
                  np.where(pl == NA, offers.profile_start_before, np.minimum(pl, offers.profile_start_before)))
    known = (pe != NA) & (pl != NA)
    ptf = np.where(known, np.maximum(pl - pe, 0), 0)
    offer_tf = np.maximum.reduceat(ptf, offers.profile_offsets[:-1]) if n_off else np.zeros(0, np.int64)
    offer_known = np.logical_and.reduceat(known, offers.profile_offsets[:-1]) if n_off else np.zeros(0, bool)
    tf = offer_tf[oi_k].copy()
    for k in np.flatnonzero(~offer_known[oi_k]).tolist():
        fo = offers.offer(int(oi_k[k]))
        try:
            tf[k] = fo.time_flexibility
        except FlexOfferError:
            now = fo.creation_time // res if fo.creation_time is not None else int(start[k])
            tf[k] = fo.time_flexibility_at(now)
            flags[k] |= np.uint8(OfferFlag.IMPLICIT_WINDOW)
    pef = segment_sum(offers.max - offers.min, offers.slice_offsets)
    ef = (np.maximum.reduceat(pef, offers.profile_offsets[:-1]) if n_off else np.zeros(0))[oi_k]
    # feasibility (implicit windows cannot be checked without "now": their start is not judged)
    if check_feasibility and mk:
        sub = ScheduleSet(offer_index=oi_k, start=start, profile=profile, resolution=np.full(mk, res, np.int64),
                          energy_offsets=e_off, energy=np.asarray(energy, dtype=np.float64))
        cf = check_sets(offers, sub).flags.astype(np.int64)
        implicit = offers.start_after[oi_k] == NA
        flags[(cf != 0) & ~implicit] |= np.uint8(OfferFlag.INFEASIBLE)
        for k in np.flatnonzero(implicit).tolist():  # rare: their window is only known relative to "now"
            if offers.offer(int(oi_k[k])).check(sub.schedule(k, offers), int(start[k])):
                flags[k] |= np.uint8(OfferFlag.INFEASIBLE)
    # schedule slices
    sl_idx = expand_rows(offers.slice_offsets, p)
    s_dur = offers.duration[sl_idx]
    s_en = np.asarray(energy, dtype=np.float64)
    # defaults
    earliest_or_start = np.where(earliest == NA, start, earliest)
    sidecar_default = {}
    sidecar_prices = {}
    if offers.sidecar:
        for i, extra in offers.sidecar.items():
            if "baseline" in extra and default_start is None:
                sidecar_default[i] = extra["baseline"]
            if "prices" in extra and price_up is None:
                sidecar_prices[i] = extra["prices"]
    if default_start is not None:
        ds = np.asarray(default_start, dtype=np.int64)
        if ds.shape != (mk,):
            raise SettlementError("default_start", f"must give one value per schedule ({mk})")
        has_def = ds != NA
        de = np.asarray(default_energy, dtype=np.float64) if default_energy is not None else None
        if de is None or de.shape != s_en.shape:
            raise SettlementError("default_energy", "must be aligned with the schedules' energy values")
        rep = np.repeat(has_def, lengths)
        d_en = np.where(rep, de, s_en)
        d_start = np.where(has_def, ds, earliest_or_start)
        d_off, d_dur = e_off, s_dur
        act = (d_start != start) | segment_any(np.abs(d_en - s_en) > TOLERANCE, e_off)
    elif sidecar_default:
        pos = {int(o): k for k, o in enumerate(oi_k.tolist()) if int(o) in sidecar_default}
        has_def = np.zeros(mk, bool)
        d_start = earliest_or_start.copy()
        pieces_d, pieces_e, d_len = [], [], []
        act = np.zeros(mk, bool)
        for k in range(mk):
            a, b = e_off[k], e_off[k + 1]
            bl = sidecar_default.get(int(oi_k[k])) if int(oi_k[k]) in pos else None
            if bl is None:
                pieces_d.append(s_dur[a:b])
                pieces_e.append(s_en[a:b])
                d_len.append(b - a)
                act[k] = d_start[k] != start[k]
                continue
            has_def[k] = True
            bp = offers.profile_offsets[oi_k[k]] + bl.profile
            bs = bl.start
            if bs is None:
                fo = offers.offer(int(oi_k[k]))
                bs = fo.earliest_start(None, bl.profile)
            d_start[k] = int(start[k]) if bs is None else bs
            dd = offers.duration[offers.slice_offsets[bp]:offers.slice_offsets[bp + 1]]
            pieces_d.append(dd)
            pieces_e.append(np.asarray(bl.energy, dtype=np.float64))
            d_len.append(len(dd))
            act[k] = (bl.profile != profile[k] or d_start[k] != start[k]
                      or any(abs(x - y) > TOLERANCE for x, y in zip(s_en[a:b], bl.energy)))
        d_off = offsets_from_counts(d_len)
        d_dur = np.concatenate(pieces_d) if pieces_d else np.zeros(0, np.int32)
        d_en = np.concatenate(pieces_e) if pieces_e else np.zeros(0)
    else:
        has_def = np.zeros(mk, bool)
        d_start = earliest_or_start
        d_off, d_dur, d_en = e_off, s_dur, s_en
        act = d_start != start
    flags[~has_def] |= np.uint8(OfferFlag.NO_DEFAULT)
    # prices
    d_lengths = np.diff(d_off)
    if price_up is not None or price_down is not None:
        if price_up is None or price_down is None:
            raise SettlementError("price_up" if price_up is None else "price_down", "give both price_up and price_down")
        cols = []
        for name, v in (("price_up", price_up), ("price_down", price_down)):
            v = np.asarray(v, dtype=np.float64)
            if v.shape == (mk,):
                cols.append((np.repeat(v, lengths), np.repeat(v, d_lengths)))
            elif v.shape == s_en.shape and d_off is e_off:
                cols.append((v, v))
            else:
                raise SettlementError(name, "must give one price per schedule or per scheduled slice")
        (s_pu, d_pu), (s_pd, d_pd) = cols
        priced = ~np.isnan(cols[0][0][e_off[:-1]]) if len(s_en) else np.zeros(mk, bool)
        priced = np.where(lengths > 0, priced, False)
    else:
        s_pu = np.full(len(s_en), np.nan)
        s_pd = np.full(len(s_en), np.nan)
        d_pu = np.full(len(d_en), np.nan)
        d_pd = np.full(len(d_en), np.nan)
        priced = np.zeros(mk, bool)
        for k in range(mk) if sidecar_prices else ():
            pr = sidecar_prices.get(int(oi_k[k]))
            if pr is None or pr.currency != "EUR":
                continue
            priced[k] = True
            for lo, hi, up, down in ((e_off[k], e_off[k + 1], s_pu, s_pd), (d_off[k], d_off[k + 1], d_pu, d_pd)):
                for i in range(hi - lo):
                    sp = pr.for_slice(i)
                    up[lo + i] = sp.up
                    down[lo + i] = sp.down
    flags[~priced] |= np.uint8(OfferFlag.NO_PRICES)
    return _finish(
        res, meter.n, offers.ids[oi_k], pros, start, d_start.astype(np.int64), tf, ef, act, priced, flags,
        e_off, s_dur, s_en, s_pu, s_pd, d_off, d_dur.astype(np.int32), d_en, d_pu, d_pd,
    )
