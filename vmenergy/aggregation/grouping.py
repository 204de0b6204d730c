"""Stage 2 of aggregation: which offers share an aggregate.

Grid grouping puts every member in a *cell*: same key, resolution and direction, earliest start in
the same ``est_tolerance``-wide column and time flexibility in the same ``tf_tolerance``-wide row.
A cell that breaks the bounds of one aggregate (``max_offers``, ``max_energy``, ``max_length``) is
cut into *bins*: the fewest equal-sized runs of its members that respect the count and energy
bound, each bin that still breaks a bound re-packed next-fit. A bin is one aggregate.

The two methods differ only in the order a cell's members are cut in: arrival order (start
alignment, as the classic aggregator does) or by time flexibility, then earliest start
(flexibility-aware): a bin then holds offers of (nearly) the same time flexibility, and start
alignment, which gives every member its bin's smallest time flexibility, loses (almost) nothing.
Same cells, same number of bins: equal compression by construction.

Everything is one sort plus array arithmetic; a cell depends only on its own members, so
rebuilding one cell (the incremental aggregator) gives exactly what a full run gives for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np

from .members import DIRECTION_NAMES, Members
from .params import FLEX_AWARE, AggregationParams

__all__ = ["Groups", "group", "cell_of", "cell_sort_key", "stable_argsort"]

#: A cell: (key rank token, resolution, direction code, est column, tf row). The key token sorts
#: keys of mixed types deterministically.
Cell = tuple


@dataclass(eq=False)
class Groups:
    """``rows``: member rows, aggregate by aggregate (``offsets``, G+1); ``group``: per offer row
    its aggregate (-1 = excluded); ``cells``: per aggregate its cell and bin number."""

    rows: np.ndarray
    offsets: np.ndarray
    group: np.ndarray
    cells: list[tuple[Cell, int]]

    def __len__(self) -> int:
        return len(self.offsets) - 1


def key_token(key: Hashable) -> tuple:
    """Sort token of a grouping key, total over keys of mixed types (None first)."""
    if key is None:
        return (0, "", "")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (1, "", key)
    if isinstance(key, str):
        return (2, "", key)
    return (3, type(key).__name__, repr(key))


def cell_of(params: AggregationParams, key: Hashable, resolution: int, direction: int, est: int, tf: int) -> Cell:
    """The cell of one member (what :func:`group` computes for many)."""
    return (
        key,
        int(resolution),
        0 if params.mix_directions else int(direction),
        int(est) // params.est_tolerance,
        int(tf) // params.tf_tolerance,
    )


def cell_sort_key(cell: Cell) -> tuple:
    return (key_token(cell[0]),) + tuple(cell[1:])


def cell_name(params: AggregationParams, cell: Cell, bin_: int, has_keys: bool) -> str:
    """Stable aggregate id of bin ``bin_`` of ``cell`` (the same in every run)."""
    import hashlib

    key, res, direction, ec, tc = cell
    d = "all" if params.mix_directions else DIRECTION_NAMES[direction]
    k = ""
    if has_keys:
        k = "-k" + hashlib.blake2s(repr(key).encode(), digest_size=5).hexdigest()
    return f"{params.id_prefix}{k}-{res}-{d}-{ec * params.est_tolerance}-{tc * params.tf_tolerance}-{bin_}"


def group(
    members: Members,
    resolution: np.ndarray,
    params: AggregationParams,
    key_codes: Optional[np.ndarray] = None,
    key_values: Optional[list] = None,
) -> Groups:
    """Grid cells and bins for the ``ok`` members (see the module docstring).

    ``key_codes``: per offer row an int whose order is the order of ``key_values`` (sorted by
    :func:`key_token`); None when no keys are used.
    """
    n = len(members)
    rows = np.flatnonzero(members.ok)
    m = len(rows)
    group_of = np.full(n, -1, dtype=np.int64)
    if m == 0:
        return Groups(rows, np.zeros(1, dtype=np.int64), group_of, [])
    E, T = params.est_tolerance, params.tf_tolerance
    est = members.est[rows]
    tf = members.tf[rows]
    ec = est // E
    tc = tf // T
    res = resolution[rows]
    direction = members.direction[rows].astype(np.int64) if not params.mix_directions else np.zeros(m, dtype=np.int64)
    kc = key_codes[rows] if key_codes is not None else np.zeros(m, dtype=np.int64)
    if res.min() == res.max():
        rc = np.zeros(m, dtype=np.int64)
    else:
        rc = np.unique(res, return_inverse=True)[1].astype(np.int64)
    columns = [kc, rc, direction, ec - ec.min(), tc - tc.min()]
    ranges = [int(c.max()) + 1 for c in columns]
    sub_range = T * E if params.method == FLEX_AWARE else 1
    total = sub_range
    for r in ranges:
        total *= r
    if total < 2**62:
        code = columns[0]
        for c, r in zip(columns[1:], ranges[1:]):
            code = code * r + c
        if params.method == FLEX_AWARE:
            sort_key = code * sub_range + (tf - tc * T) * E + (est - ec * E)
        else:
            sort_key = code
        order = stable_argsort(sort_key, total)
        cc = code[order]
        new_cell = np.empty(m, dtype=bool)
        new_cell[0] = True
        np.not_equal(cc[1:], cc[:-1], out=new_cell[1:])
    else:  # astronomically spread keys: sort column by column instead
        extra = [tf, est] if params.method == FLEX_AWARE else []
        order = np.lexsort(tuple(reversed(columns + extra)))  # last key is the primary one
        new_cell = np.empty(m, dtype=bool)
        new_cell[0] = True
        diff = np.zeros(m - 1, dtype=bool)
        for c in columns:
            cs = c[order]
            diff |= cs[1:] != cs[:-1]
        new_cell[1:] = diff
    srows = rows[order]
    starts = np.flatnonzero(new_cell)
    sizes = np.diff(np.append(starts, m))

    # bins: the fewest equal runs that respect the count and energy bounds
    k = np.ones(len(starts), dtype=np.int64)
    if params.max_offers is not None:
        k = np.maximum(k, -(-sizes // params.max_offers))
    if params.max_energy is not None:
        e_cell = np.add.reduceat(members.energy[srows], starts)
        k = np.maximum(k, np.ceil(e_cell / params.max_energy).astype(np.int64))
    k = np.minimum(k, sizes)
    rank = np.arange(m, dtype=np.int64) - np.repeat(starts, sizes)
    bins = rank * np.repeat(k, sizes) // np.repeat(sizes, sizes)
    new_group = new_cell.copy()
    new_group[1:] |= bins[1:] != bins[:-1]
    g_starts = np.flatnonzero(new_group)
    g_starts = _repack(members, srows, g_starts, params)

    offsets = np.append(g_starts, m).astype(np.int64)
    G = len(g_starts)
    gid = np.repeat(np.arange(G, dtype=np.int64), np.diff(offsets))
    group_of[srows] = gid
    # cell and bin number of every group
    cell_index = np.cumsum(new_cell) - 1  # per sorted member
    gcell = cell_index[g_starts]
    first_group_of_cell = np.searchsorted(gcell, np.arange(len(starts)))
    bin_no = np.arange(G) - first_group_of_cell[gcell]
    r0 = srows[g_starts]
    cells = []
    for g, r in enumerate(r0.tolist()):
        key = None if key_values is None or key_codes is None else key_values[int(key_codes[r])]
        cells.append((cell_of(params, key, int(resolution[r]), int(members.direction[r]), int(members.est[r]),
                              int(members.tf[r])), int(bin_no[g])))
    return Groups(srows, offsets, group_of, cells)


def stable_argsort(keys: np.ndarray, total: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative keys below ``total``.

    numpy sorts 16-bit integers with a radix sort (linear time, about 6x faster than its stable
    sort of int64 for a million keys), so keys below 2**48 are sorted 16 bits at a time, least
    significant first; each pass is stable, so the result is the stable order of the whole key.
    """
    if total > 2**48:
        return np.argsort(keys, kind="stable")
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    while total > 1 << shift:
        digit = ((keys[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
    return order


def _repack(members: Members, srows: np.ndarray, g_starts: np.ndarray, params: AggregationParams) -> np.ndarray:
    """Split, next-fit, every bin that still breaks the energy or length bound."""
    m = len(srows)
    ends = np.append(g_starts[1:], m)
    est = members.est[srows]
    reach = est + members.length[srows]
    too_long = (np.maximum.reduceat(reach, g_starts) - np.minimum.reduceat(est, g_starts)) > params.max_length
    bad = too_long
    if params.max_energy is not None:
        e = members.energy[srows]
        bad = bad | (np.add.reduceat(e, g_starts) > params.max_energy)
    if not bad.any():
        return g_starts
    extra = []
    cap = params.max_energy
    for g in np.flatnonzero(bad).tolist():
        a, b = int(g_starts[g]), int(ends[g])
        # the open bin starts with member a; each next member joins it or opens the next bin
        total = float(members.energy[srows[a]]) if cap is not None else 0.0
        lo_est, hi_reach = int(est[a]), int(reach[a])
        for i in range(a + 1, b):
            ei = float(members.energy[srows[i]]) if cap is not None else 0.0
            s, r = int(est[i]), int(reach[i])
            n_lo, n_hi = min(lo_est, s), max(hi_reach, r)
            if (cap is not None and total + ei > cap) or n_hi - n_lo > params.max_length:
                extra.append(i)
                total, lo_est, hi_reach = ei, s, r
                continue
            total, lo_est, hi_reach = total + ei, n_lo, n_hi
    return np.union1d(g_starts, np.array(extra, dtype=np.int64))
