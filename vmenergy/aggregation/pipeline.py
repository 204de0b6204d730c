"""The aggregation pipeline (``aggregate``): offers in, aggregates out, in three columnar stages.

1. :mod:`.members`: per offer, the profile, window and box it is aggregated with (or why not);
2. :mod:`.grouping`: grid cells and bins;
3. :mod:`.alignment`: start alignment and the aggregate flex-offers.

A list of :class:`FlexOffer` objects is first copied into a :class:`FlexOfferSet` (that copy is
the "loading" the benchmark reports separately); a set is used as it is.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet

from .alignment import build
from .grouping import group, key_token
from .members import prepare
from .offer import AggregationResult
from .params import AggregationParams
from .run import AggregationRun

__all__ = ["aggregate", "as_offer_set", "key_codes"]

Keys = Union[Sequence[Hashable], Mapping[str, Hashable], np.ndarray, None]


def as_offer_set(offers: Union[FlexOfferSet, Iterable[FlexOffer]]) -> tuple[FlexOfferSet, Optional[list]]:
    """The columnar set to work on, and the original objects when objects were given."""
    if isinstance(offers, FlexOfferSet):
        return offers, None
    if isinstance(offers, (FlexOffer, str, bytes, Mapping)):
        raise FlexOfferError("offers", f"expected a list of FlexOffer or a FlexOfferSet, got {type(offers).__name__}")
    try:
        source = list(offers)
    except TypeError:
        what = type(offers).__name__
        raise FlexOfferError("offers", f"expected a list of FlexOffer or a FlexOfferSet, got {what}") from None
    return FlexOfferSet.from_offers(source), source


def _check_ids(ids: np.ndarray) -> None:
    seen = set(ids.tolist())
    if len(seen) != len(ids):
        first: dict = {}
        for i, oid in enumerate(ids.tolist()):
            if oid in first:
                raise FlexOfferError(f"[{i}].id", f"duplicate offer id {oid!r} (also at [{first[oid]}])")
            first[oid] = i


def key_codes(keys: Keys, ids: np.ndarray) -> tuple[Optional[np.ndarray], Optional[list]]:
    """Grouping keys as int codes ranked by :func:`key_token`, plus the key of each code."""
    if keys is None:
        return None, None
    n = len(ids)
    if isinstance(keys, Mapping):
        values = [keys.get(oid) for oid in ids.tolist()]
    else:
        if isinstance(keys, (str, bytes)):
            raise FlexOfferError("keys", "give one key per offer (a sequence) or a mapping offer id -> key")
        values = list(keys.tolist() if isinstance(keys, np.ndarray) else keys)
        if len(values) != n:
            raise FlexOfferError("keys", f"has {len(values)} entries for {n} offers")
    try:
        distinct = sorted(dict.fromkeys(values), key=key_token)
    except TypeError as exc:
        raise FlexOfferError("keys", f"keys must be hashable: {exc}") from None
    code = {k: i for i, k in enumerate(distinct)}
    return np.fromiter((code[v] for v in values), dtype=np.int64, count=n), distinct


def aggregate(
    offers: Union[FlexOfferSet, Iterable[FlexOffer]],
    params: Optional[AggregationParams] = None,
    *,
    keys: Keys = None,
) -> AggregationResult:
    """Aggregate ``offers`` into few large flex-offers (see docs/aggregation.md).

    ``offers``: a list of :class:`FlexOffer` (aggregates included: that is the hierarchy) or a
    :class:`FlexOfferSet` (the bulk path). ``keys``: optional grouping keys (location, congestion
    point, contract): one per offer, or a mapping offer id -> key; offers with different keys
    never share an aggregate.

    Returns an :class:`AggregationResult`: the list of :class:`AggregatedFlexOffer`, with
    ``excluded`` (offer id -> reason) for the offers that could not be aggregated soundly.
    With ``params.strict`` the first such offer raises :class:`FlexOfferError` instead.
    """
    params = AggregationParams() if params is None else params
    if not isinstance(params, AggregationParams):
        raise FlexOfferError("params", f"expected AggregationParams, got {type(params).__name__}")
    fos, source = as_offer_set(offers)
    return _aggregate_set(fos, source, params, keys)


def _aggregate_set(fos: FlexOfferSet, source, params: AggregationParams, keys: Keys,
                   box_cache: Optional[dict] = None) -> AggregationResult:
    _check_ids(fos.ids)
    codes, values = key_codes(keys, fos.ids)
    members = prepare(fos, params, box_cache)
    if params.strict and members.reasons:
        r = min(members.reasons)
        path, reason = members.reasons[r]
        raise FlexOfferError(f"[{r}].{path}", reason)
    groups = group(members, fos.resolution, params, codes, values)
    run: AggregationRun = build(fos, source, members, groups, params, has_keys=codes is not None)
    ids = fos.ids
    excluded = {ids[r]: f"{path}: {reason}" for r, (path, reason) in sorted(members.reasons.items())}
    return AggregationResult(run.aggregates, excluded, [run])
