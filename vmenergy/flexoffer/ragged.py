"""Ragged arrays: many variable-length segments (slices of profiles, intervals of slices, pieces
of orders) stored flat with CSR ``offsets`` (segment i is ``values[offsets[i]:offsets[i + 1]]``).

The columnar code of every core package (offer sets, aggregation, planning, market, settlement)
works this way instead of looping over Python objects; these are its few shared moves.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["offsets_from_counts", "positions", "expand_rows", "segment_sum", "segment_any", "starts_within",
           "sums_at"]


def offsets_from_counts(counts: np.ndarray | Iterable[int]) -> np.ndarray:
    """CSR offsets (n + 1, int64) of segments with the given lengths."""
    counts = np.asarray(counts if isinstance(counts, np.ndarray) else list(counts), dtype=np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For segments of the given lengths: the segment of every element and its index inside it."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, local


def expand_rows(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """All element indices of segments ``rows`` given CSR ``offsets``, in row order."""
    counts = offsets[rows + 1] - offsets[rows]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(offsets[rows] - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)


def sums_at(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` at each of the positions 0..n-1 named by ``index``, always float64.

    ``np.bincount(index, weights=values)`` alone returns *int64* zeros when ``index`` is empty,
    weights or not. Written into, such an array silently truncates kWh and EUR to whole numbers (a
    settlement block without offers once cut a 1.75 kWh baseline to 1, and a missing one to -2**63)."""
    out = np.bincount(index, weights=values, minlength=n)
    return out if out.dtype == np.float64 else out.astype(np.float64)


def segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of each segment (empty segments give 0)."""
    counts = np.diff(offsets)
    out = np.zeros(len(counts), dtype=values.dtype)
    nonempty = counts > 0
    if nonempty.any():
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return out


def segment_any(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """True for each segment with a True element (empty segments give False)."""
    counts = np.diff(offsets)
    out = np.zeros(len(counts), dtype=bool)
    nonempty = counts > 0
    if nonempty.any():
        out[nonempty] = np.logical_or.reduceat(mask, offsets[:-1][nonempty])
    return out


def starts_within(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` before each element, restarted at every segment: the interval
    offset of each slice inside its profile when ``values`` are slice durations."""
    v = np.asarray(values, dtype=np.int64)
    cum = np.cumsum(v) - v  # counted from the very first element
    counts = np.diff(offsets)
    nonempty = counts > 0
    return cum - np.repeat(cum[offsets[:-1][nonempty]], counts[nonempty])
