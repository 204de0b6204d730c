"""Money: EUR amounts to integer cents, and splitting a pot of cents without losing one.

Why integer cents: a bill is a list of line items a person adds up. If every line is rounded to
the cent once and totals are sums of those integers, the printed lines always add up to the
printed total, and "what the aggregator pays out plus its margin equals what it earned" holds
exactly, not within a float epsilon.

Rounding rule (documented in ``docs/settlement.md``): each line item is computed in float64 EUR
from unrounded quantities, then rounded *once* to whole cents, half away from zero. A guard of
:data:`CENT_GUARD` cents absorbs binary representation error (0.145 EUR is 14.4999999... cents in
float64 and must round to 15, as a person would). Nothing is rounded twice.

Splitting a pot (the revenue share of a group of prosumers) uses the largest-remainder method:
everyone gets the floor of their exact share, and the cents left over go one each to the largest
fractional parts (ties: lower prosumer index first), so the parts sum to the pot exactly.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SettlementError

__all__ = ["CENT_GUARD", "FRACTION_DIGITS", "to_cents", "cents", "allocate", "format_eur"]

#: Cents added before flooring |x| + 0.5, so float noise just below a half cent still rounds away.
CENT_GUARD = 1e-6
#: Fractional cents are compared at this many decimals when ranking remainders, so that two
#: implementations summing in a different order rank equal shares equally (ties then go by index).
FRACTION_DIGITS = 6


def to_cents(eur: np.ndarray | float, path: str = "amount") -> np.ndarray:
    """EUR (array) to int64 cents, half away from zero, with :data:`CENT_GUARD`."""
    x = np.asarray(eur, dtype=np.float64) * 100.0
    if not np.all(np.isfinite(x)):
        k = int(np.flatnonzero(~np.isfinite(x.ravel()))[0])
        raise SettlementError(f"{path}[{k}]" if x.ndim else path, "amount is not a finite number")
    return (np.sign(x) * np.floor(np.abs(x) + 0.5 + CENT_GUARD)).astype(np.int64)


def cents(eur: float, path: str = "amount") -> int:
    """Scalar form of :func:`to_cents` (same rule), for plain-Python code."""
    x = float(eur) * 100.0
    if not math.isfinite(x):
        raise SettlementError(path, "amount is not a finite number")
    mag = int(math.floor(abs(x) + 0.5 + CENT_GUARD))
    return -mag if x < 0 else mag


def allocate(exact_cents: np.ndarray, group: np.ndarray, pot_cents: np.ndarray) -> np.ndarray:
    """Split ``pot_cents[g]`` among the members of each group g in proportion to their exact share.

    ``exact_cents[i]`` is member i's unrounded share in cents (the pot is normally the rounded sum
    of its group's exact shares), ``group[i]`` its group. Returns int64 cents per member that sum
    to ``pot_cents[g]`` in every group (largest-remainder method, ties by lower index).
    """
    exact = np.round(np.asarray(exact_cents, dtype=np.float64), FRACTION_DIGITS)
    group = np.asarray(group, dtype=np.int64)
    pot = np.asarray(pot_cents, dtype=np.int64)
    n = len(exact)
    out = np.floor(exact).astype(np.int64)
    if n == 0:
        return out
    frac = exact - out
    left = pot - np.bincount(group, weights=out, minlength=len(pot)).astype(np.int64)
    size = np.bincount(group, minlength=len(pot)).astype(np.int64)
    # whole rounds first (only if the pot is far from the sum of shares), then one cent each
    whole = np.where(size > 0, np.floor_divide(left, np.maximum(size, 1)), 0)
    out += whole[group]
    left -= whole * size
    # now 0 <= left < size: give one cent to the `left` largest fractions of each group
    order = np.lexsort((np.arange(n), -frac, group))
    g_sorted = group[order]
    first = np.searchsorted(g_sorted, g_sorted, side="left")
    rank = np.arange(n) - first
    out[order[rank < left[g_sorted]]] += 1
    return out


def format_eur(cents_value: int) -> str:
    """Integer cents as a decimal EUR string (``-12.05``), exact."""
    c = int(cents_value)
    sign = "-" if c < 0 else ""
    q, r = divmod(abs(c), 100)
    return f"{sign}{q}.{r:02d}"
