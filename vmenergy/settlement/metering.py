"""Metering input and its plausibility checks.

Meter data comes from boxes in people's homes: readings go missing, registers get reset or wired
backwards, a mis-scaled meter reports a 2 kW heat pump drawing 200 kW. None of this may crash a
settlement run for a million prosumers, and none of it may disappear silently. So bad values are
*flagged* per prosumer and interval (:class:`MeterFlag` bits); flagged intervals are not used to
verify delivery (they earn no reward and draw no penalty, see ``docs/settlement.md``) and every
flag is reported back with the prosumer and the interval.

Energy is kWh per interval (+ consumption, - production), a ``(prosumers x intervals)`` array.
float32 is enough for interval energy (7 significant digits, meters resolve 1 Wh) and halves
memory at a million prosumers; cumulative register readings need float64 and are differenced by
:meth:`MeterData.from_registers` before they get here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Any, Optional, Sequence

import numpy as np

from vmenergy.flexoffer.timeutil import format_utc

from .errors import SettlementError, check

__all__ = ["MeterFlag", "FLAG_REASONS", "MeterData", "MeterFlags", "plausibility", "check_meter", "RATING_TOLERANCE"]

#: kWh of slack on a rating check, so a reading exactly at the rating is never flagged.
RATING_TOLERANCE = 1e-6


class MeterFlag(IntFlag):
    """Why an interval of a prosumer could not be used for verification (bits can combine)."""

    GAP = 1  # no reading (NaN)
    INVALID = 2  # not a finite number (+-inf)
    NEGATIVE_COUNTER = 4  # a cumulative register read below zero
    COUNTER_BACKWARDS = 8  # a cumulative register went down
    ABOVE_RATING = 16  # more consumption than the connection/device rating allows
    EXPORT_ABOVE_RATING = 32  # more production than the export rating allows
    NO_BASELINE = 64  # the contract's baseline could not be computed for this interval


FLAG_REASONS = {
    MeterFlag.GAP: "gap: no reading",
    MeterFlag.INVALID: "reading is not a finite number",
    MeterFlag.NEGATIVE_COUNTER: "negative counter reading",
    MeterFlag.COUNTER_BACKWARDS: "counter went backwards",
    MeterFlag.ABOVE_RATING: "consumption beyond the device rating",
    MeterFlag.EXPORT_ABOVE_RATING: "production beyond the export rating",
    MeterFlag.NO_BASELINE: "no baseline (not enough eligible history)",
}


def reasons(code: int) -> list[str]:
    """Readable reasons of a flag code."""
    return [text for bit, text in FLAG_REASONS.items() if int(code) & int(bit)]


def _name(flag: MeterFlag) -> str:
    """A flag's name as reports print it (every member iterated over has one)."""
    return (flag.name or str(int(flag))).lower()


@dataclass(eq=False)
class MeterData:
    """Metered energy of a population over one settlement period.

    ``prosumers`` (n ids, e.g. JIDs), ``start`` (first interval number), ``resolution`` (s),
    ``energy`` (n x T kWh per interval, NaN = no reading). Optional: ``rating_kw`` and
    ``export_rating_kw`` (n; inf = unknown, 0 export = cannot produce), ``history`` (n x D x T:
    the same T intervals on D previous *eligible* days - same day type, no activations - oldest
    first, for day-based baselines; anything sliceable by rows works, e.g. ``np.memmap``), and
    ``flags`` (n x T uint8 :class:`MeterFlag` bits already known, e.g. from register checks).
    """

    prosumers: np.ndarray
    start: int
    resolution: int
    energy: np.ndarray
    rating_kw: Optional[np.ndarray] = None
    export_rating_kw: Optional[np.ndarray] = None
    history: Any = None
    flags: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.prosumers, dtype=object)
        if ids.ndim != 1:
            raise SettlementError("meter.prosumers", "must be a 1-d list of prosumer ids")
        self.prosumers = ids
        for name in ("start", "resolution"):
            setattr(self, name, check.integer(getattr(self, name), f"meter.{name}"))
        if self.resolution <= 0 or (3600 % self.resolution and self.resolution % 3600):
            raise SettlementError(
                "meter.resolution", f"must be > 0 s and divide or be a multiple of an hour (got {self.resolution})"
            )
        e = np.asarray(self.energy)
        if e.ndim != 2 or e.shape[0] != len(ids):
            raise SettlementError("meter.energy",
                                  f"must be (prosumers x intervals) = ({len(ids)} x T), got shape {e.shape}")
        if e.dtype.kind != "f":
            raise SettlementError("meter.energy", f"must be a float array (NaN marks a gap), got {e.dtype}")
        if e.shape[1] < 1:
            raise SettlementError("meter.energy", "at least one interval")
        self.energy = e
        n = len(ids)
        for name in ("rating_kw", "export_rating_kw"):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v, dtype=np.float64)
            if v.shape != (n,):
                raise SettlementError(f"meter.{name}", f"must have one value per prosumer ({n}), got shape {v.shape}")
            if np.isnan(v).any() or (v < 0).any():
                k = int(np.flatnonzero(np.isnan(v) | (v < 0))[0])
                raise SettlementError(f"meter.{name}[{k}]", f"must be >= 0 kW (inf = unknown), got {v[k]!r}")
            setattr(self, name, v)
        if self.history is not None:
            shape = getattr(self.history, "shape", None)
            if shape is None or len(shape) != 3 or shape[0] != n or shape[2] != e.shape[1]:
                raise SettlementError(
                    "meter.history", f"must be (prosumers x days x intervals) = ({n} x D x {e.shape[1]}), got {shape}"
                )
        if self.flags is not None:
            f = np.asarray(self.flags)
            if f.shape != e.shape or f.dtype != np.uint8:
                raise SettlementError("meter.flags", f"must be a uint8 array shaped like energy {e.shape}")
            self.flags = f
        if len(set(ids.tolist())) != n:
            seen: dict[object, int] = {}
            for i, p in enumerate(ids.tolist()):
                if p in seen:
                    raise SettlementError(f"meter.prosumers[{i}]", f"duplicate prosumer {p!r} (also row {seen[p]})")
                seen[p] = i

    @property
    def n(self) -> int:
        return len(self.prosumers)

    @property
    def n_intervals(self) -> int:
        return int(self.energy.shape[1])

    @property
    def history_days(self) -> int:
        return 0 if self.history is None else int(self.history.shape[1])

    def index(self) -> dict[str, int]:
        """Prosumer id -> row."""
        return {p: i for i, p in enumerate(self.prosumers.tolist())}

    @classmethod
    def from_registers(
        cls,
        prosumers: Sequence[str],
        start: int,
        resolution: int,
        import_register: np.ndarray,
        export_register: Optional[np.ndarray] = None,
        **kw: Any,
    ) -> "MeterData":
        """Meter data from cumulative register readings (kWh, float64, n x (T+1): the reading at
        the start of every interval and at the end of the last).

        Interval energy is import difference minus export difference. A negative reading flags
        both intervals it bounds (NEGATIVE_COUNTER), a decrease flags its interval
        (COUNTER_BACKWARDS), a missing reading flags both (GAP). Flagged values are kept as
        computed (the raw difference), never dropped: the flags say not to trust them.
        """
        imp = np.asarray(import_register, dtype=np.float64)
        if imp.ndim != 2 or imp.shape[1] < 2:
            raise SettlementError("import_register", f"must be (prosumers x (intervals + 1)), got shape {imp.shape}")
        regs = [("import_register", imp)]
        if export_register is not None:
            exp = np.asarray(export_register, dtype=np.float64)
            if exp.shape != imp.shape:
                raise SettlementError("export_register", f"must have the shape of import_register {imp.shape}")
            regs.append(("export_register", exp))
        flags = np.zeros((imp.shape[0], imp.shape[1] - 1), dtype=np.uint8)
        energy = np.zeros(flags.shape, dtype=np.float64)
        for k, (_, r) in enumerate(regs):
            d = np.diff(r, axis=1)
            energy += d if k == 0 else -d
            nan = np.isnan(r)
            neg = r < 0
            flags[nan[:, :-1] | nan[:, 1:]] |= np.uint8(MeterFlag.GAP)
            flags[neg[:, :-1] | neg[:, 1:]] |= np.uint8(MeterFlag.NEGATIVE_COUNTER)
            flags[d < 0] |= np.uint8(MeterFlag.COUNTER_BACKWARDS)
        return cls(prosumers=np.asarray(prosumers, dtype=object), start=start, resolution=resolution,
                   energy=energy.astype(np.float32), flags=flags, **kw)


def plausibility(meter: MeterData, rows: slice = slice(None), energy: Optional[np.ndarray] = None) -> np.ndarray:
    """:class:`MeterFlag` bits (uint8, rows x T) for ``meter.energy[rows]``: gaps, non-finite
    values, ratings exceeded, plus any flags the meter data already carries."""
    e = meter.energy[rows] if energy is None else energy
    flags = np.zeros(e.shape, dtype=np.uint8)
    finite = np.isfinite(e)
    all_finite = bool(finite.all())
    if not all_finite:
        nan = np.isnan(e)
        np.bitwise_or(flags, np.uint8(MeterFlag.GAP), out=flags, where=nan)
        np.bitwise_or(flags, np.uint8(MeterFlag.INVALID), out=flags, where=~finite & ~nan)
    hours = meter.resolution / 3600.0
    with np.errstate(invalid="ignore"):
        for ratings, bit, sign in ((meter.rating_kw, MeterFlag.ABOVE_RATING, 1.0),
                                   (meter.export_rating_kw, MeterFlag.EXPORT_ABOVE_RATING, -1.0)):
            if ratings is None:
                continue
            cap = (ratings[rows] * hours + RATING_TOLERANCE)[:, None]
            beyond = (e > cap) if sign > 0 else (e < -cap)
            if not all_finite:
                beyond &= finite
            np.bitwise_or(flags, np.uint8(bit), out=flags, where=beyond)
    if meter.flags is not None:
        flags |= meter.flags[rows]
    return flags


@dataclass(eq=False)
class MeterFlags:
    """Flagged (prosumer, interval) cells, sparse: row, absolute interval number, flag bits."""

    row: np.ndarray
    interval: np.ndarray
    code: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def empty(cls) -> "MeterFlags":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))

    @classmethod
    def from_dense(cls, flags: np.ndarray, row0: int, start: int) -> "MeterFlags":
        rows = np.flatnonzero(flags.any(axis=1))  # few rows carry flags: search only those
        sub = flags[rows]
        r, t = np.nonzero(sub)
        return cls(rows[r].astype(np.int64) + row0, t.astype(np.int64) + start, sub[r, t].astype(np.uint8))

    @classmethod
    def concat(cls, parts: Sequence["MeterFlags"]) -> "MeterFlags":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "interval", "code")))

    def count(self, flag: MeterFlag) -> int:
        """Cells carrying ``flag``."""
        return int(np.count_nonzero(self.code & int(flag)))

    def counts(self) -> dict[str, int]:
        return {_name(f): self.count(f) for f in MeterFlag}

    def records(self, prosumers: np.ndarray, resolution: int, limit: Optional[int] = None) -> list[dict]:
        """One dict per flagged cell: prosumer id, interval number, UTC time and reasons."""
        k = len(self) if limit is None else min(limit, len(self))
        return [
            {
                "prosumer": prosumers[int(self.row[j])],
                "interval": int(self.interval[j]),
                "time": format_utc(int(self.interval[j]) * resolution),
                "flags": [_name(f) for f in MeterFlag if int(self.code[j]) & int(f)],
                "reasons": reasons(int(self.code[j])),
            }
            for j in range(k)
        ]


def check_meter(meter: MeterData, chunk: int = 65536) -> MeterFlags:
    """Every flagged cell of ``meter`` (without baseline flags), computed chunk by chunk."""
    parts = []
    for a in range(0, meter.n, chunk):
        b = min(meter.n, a + chunk)
        parts.append(MeterFlags.from_dense(plausibility(meter, slice(a, b)), a, meter.start))
    return MeterFlags.concat(parts)
