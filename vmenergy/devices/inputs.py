"""The series device models read: weather (temperature, irradiance) and prices, from CSV files.

A series file is CSV with a header: ``time`` (ISO 8601 UTC, e.g. ``2026-11-22T18:00:00Z``) and one
column per quantity, rows in time order at any regular or irregular step:

- weather: ``temp_air`` (C), ``ghi``, ``dni``, ``dhi`` (W/m^2); values are taken at the middle of
  each interval by linear interpolation;
- prices: ``price`` (EUR/kWh); a price holds until the next row.

Without a weather file the sky is pvlib's clear sky (Ineichen) at the location and the air has a
constant temperature; without a price file the price follows a typical winter day-ahead curve by
local hour. A box running on the wall clock points at files that a cron job rewrites: a file is
read again when its modification time changes (:meth:`Inputs.refresh`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from vmenergy.flexoffer import FlexOfferError
from vmenergy.flexoffer.timeutil import format_utc, parse_utc

from .models.base import DeviceError

__all__ = ["SeriesFile", "Inputs", "DEFAULT_PRICES", "WEATHER_COLUMNS"]

WEATHER_COLUMNS = ("temp_air", "ghi", "dni", "dhi")
#: EUR/kWh by local hour when no price series is given: a winter day-ahead shape (night trough,
#: morning and evening peaks), the curve of the demo market's supplier.
DEFAULT_PRICES = (0.08, 0.08, 0.08, 0.08, 0.08, 0.09, 0.18, 0.24, 0.22, 0.16, 0.14, 0.12,
                  0.12, 0.13, 0.15, 0.18, 0.26, 0.32, 0.34, 0.30, 0.22, 0.16, 0.12, 0.10)


class SeriesFile:
    """A CSV series (see the module docstring), read again when the file changes."""

    def __init__(self, path: Path | str, columns: Sequence[str], what: str) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.what = what
        self.mtime: Optional[float] = None
        self.times = np.zeros(0)
        self.values: dict[str, np.ndarray] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Read the file if it changed since the last read; True if it was read."""
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            raise DeviceError(self.what, f"cannot read {self.path}: {exc.strerror or exc}") from None
        if mtime == self.mtime:
            return False
        times, values = read_series(self.path, self.columns, self.what)
        self.times, self.values, self.mtime = times, values, mtime
        return True

    def span(self) -> tuple[int, int]:
        return int(self.times[0]), int(self.times[-1])

    def covers(self, start: int, end: int) -> Optional[str]:
        """None if the series covers [start, end] (epoch seconds), else why not."""
        lo, hi = self.span()
        if start < lo or end > hi:
            return (f"{self.path.name} covers {format_utc(lo)} to {format_utc(hi)}; "
                    f"{format_utc(start)} to {format_utc(end)} is needed")
        return None


def read_series(path: Path, columns: Sequence[str], what: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epoch seconds, column -> values) of a series file; errors name the file, line and column."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(line for line in f if line.strip() and not line.lstrip().startswith("#")))
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceError(what, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise DeviceError(what, f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    if header[:1] != ["time"]:
        raise DeviceError(what, f"{path}: the first column must be 'time' (got {header[:1]})")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DeviceError(what, f"{path}: no column {', '.join(missing)} (has {', '.join(header[1:])})")
    index = [header.index(c) for c in columns]
    times = np.zeros(len(rows) - 1)
    values = {c: np.zeros(len(rows) - 1) for c in columns}
    for r, row in enumerate(rows[1:]):
        where = f"{path.name} line {r + 2}"
        try:
            times[r] = parse_utc(row[0].strip(), "time")
        except (FlexOfferError, IndexError) as exc:
            raise DeviceError(what, f"{where}: time: {getattr(exc, 'reason', exc)}") from None
        for c, i in zip(columns, index):
            try:
                v = float(row[i])
            except (ValueError, IndexError):
                raise DeviceError(what, f"{where}: {c} is not a number") from None
            if not np.isfinite(v):
                raise DeviceError(what, f"{where}: {c} is not finite")
            values[c][r] = v
    if len(times) < 2:
        raise DeviceError(what, f"{path} needs at least two rows")
    if np.any(np.diff(times) <= 0):
        raise DeviceError(what, f"{path}: times must increase from row to row")
    return times, values


class Inputs:
    """Weather and prices per interval of ``resolution`` seconds (the models' :class:`Inputs`)."""

    def __init__(self, resolution: int = 900, *, weather: Optional[Path | str] = None,
                 prices: Optional[Path | str] = None, latitude: float = 45.0, longitude: float = 8.0,
                 altitude: float = 0.0, timezone: str = "UTC", temp_air: float = 10.0) -> None:
        self.resolution = resolution
        self.latitude, self.longitude, self.altitude = latitude, longitude, altitude
        try:
            self.tz = ZoneInfo(timezone)
        except Exception:  # noqa: BLE001 - zoneinfo raises several kinds for a bad name
            raise DeviceError("timezone", f"unknown time zone {timezone!r} (e.g. Europe/Rome, UTC)") from None
        self.constant_temp = temp_air
        self.weather = None if weather is None else SeriesFile(weather, WEATHER_COLUMNS, "weather")
        self.prices = None if prices is None else SeriesFile(prices, ("price",), "prices")
        self.version = 0

    def refresh(self) -> None:
        """Re-read files that changed (a box's cron job refreshes them)."""
        changed = [s.refresh() for s in (self.weather, self.prices) if s is not None]
        if any(changed):
            self.version += 1

    def covers(self, start: int, end: int) -> list[str]:
        """Why the files do not cover [start, end] (epoch seconds); empty if they do."""
        return [why for s in (self.weather, self.prices) if s is not None
                for why in [s.covers(start, end)] if why is not None]

    def _mid(self, start: int, n: int) -> np.ndarray:
        return (start + np.arange(n) + 0.5) * self.resolution

    def _interp(self, w: SeriesFile, column: str, start: int, n: int) -> np.ndarray:
        x = self._mid(start, n)
        lo, hi = w.span()
        if n and (x[0] < lo or x[-1] > hi):
            raise DeviceError("weather", f"{w.path.name} covers {format_utc(lo)} to {format_utc(hi)}; "
                                         f"{format_utc(int(x[0]))} to {format_utc(int(x[-1]))} was asked for")
        return np.interp(x, w.times, w.values[column])

    def temp_air(self, start: int, n: int) -> np.ndarray:
        if self.weather is None:
            return np.full(n, float(self.constant_temp))
        return self._interp(self.weather, "temp_air", start, n)

    def irradiance(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = self.weather
        if w is None:
            return self._clear_sky(start, n)
        ghi, dni, dhi = (np.clip(self._interp(w, c, start, n), 0.0, None) for c in ("ghi", "dni", "dhi"))
        return ghi, dni, dhi

    def _clear_sky(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import pandas as pd
        from pvlib.location import Location

        times = pd.DatetimeIndex(pd.to_datetime(self._mid(start, n), unit="s", utc=True))
        cs = Location(self.latitude, self.longitude, altitude=self.altitude).get_clearsky(times)
        ghi, dni, dhi = (np.nan_to_num(cs[c].to_numpy(dtype=float)).clip(min=0.0) for c in ("ghi", "dni", "dhi"))
        return ghi, dni, dhi

    def price(self, start: int, n: int) -> np.ndarray:
        t = (start + np.arange(n)) * self.resolution
        if self.prices is None:
            from datetime import datetime, timezone as tzmod

            hours = [datetime.fromtimestamp(int(s), tz=tzmod.utc).astimezone(self.tz).hour for s in t]
            return np.asarray([DEFAULT_PRICES[h] for h in hours])
        p = self.prices
        i = np.searchsorted(p.times, t, side="right") - 1
        if n and (i[0] < 0 or t[-1] > p.times[-1] + 86400):
            lo, hi = p.span()
            raise DeviceError("prices", f"{p.path.name} covers {format_utc(lo)} to {format_utc(hi)}; "
                                        f"{format_utc(int(t[0]))} to {format_utc(int(t[-1]))} was asked for")
        return p.values["price"][np.clip(i, 0, len(p.times) - 1)]
