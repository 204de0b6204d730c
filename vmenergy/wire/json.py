"""JSON codec of flex-offers and schedules (the contract in ``docs/protocol.md``).

Parsing is strict: unknown fields, duplicate keys, ``NaN``/``Infinity`` literals, booleans where
numbers belong, naive or off-grid times and oversize documents are all refused with a
:class:`FlexOfferError` that names the field path. Nothing else escapes the parser. Output uses
the same field names; optional fields that are absent (or at their default state/version) are
omitted, and floats are written with ``repr`` so a round trip is exact.
"""

from __future__ import annotations

import json as _json
from typing import Any, Callable, Optional

from vmenergy.flexoffer.errors import DOCUMENT, FlexOfferError
from vmenergy.flexoffer.model import (
    Baseline,
    FlexOffer,
    Polytope,
    Prices,
    Profile,
    Slice,
    SlicePrice,
    State,
    TotalEnergy,
    check_integer,
)
from vmenergy.flexoffer.schedule import Schedule
from vmenergy.flexoffer.timeutil import (
    DEFAULT_RESOLUTION,
    format_duration,
    format_utc,
    parse_duration,
    parse_utc,
    seconds_to_interval,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "loads",
    "parse_offer",
    "parse_schedule",
    "parse_any",
    "offer_from_dict",
    "offer_to_dict",
    "offer_to_json",
    "schedule_from_dict",
    "schedule_to_dict",
    "schedule_to_json",
]

#: Largest JSON or XML document a parser looks at (bytes). A 10,000-slice offer is about 0.6 MB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

OFFER_FIELDS = (
    "id", "issuer", "label", "state", "version", "resolution", "creation_time", "acceptance_before",
    "assignment_before", "start_after", "start_before", "start_before_duration", "profiles", "baseline", "prices",
)
PROFILE_FIELDS = ("slices", "total", "polytope", "start_after", "start_before")
SLICE_FIELDS = ("duration", "min", "max", "values")
SCHEDULE_FIELDS = ("offer_id", "schedule_id", "update_id", "profile", "start", "energy", "resolution")


# ------------------------------------------------------------------------------------------
# reading


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses what the contract refuses and raises only FlexOfferError."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise FlexOfferError(DOCUMENT, f"oversize document ({len(text)} bytes > {MAX_DOCUMENT_BYTES})")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlexOfferError(DOCUMENT, f"not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise FlexOfferError(DOCUMENT, f"expected JSON text, got {type(text).__name__}")
    if len(text) > MAX_DOCUMENT_BYTES:
        raise FlexOfferError(DOCUMENT, f"oversize document ({len(text)} characters > {MAX_DOCUMENT_BYTES})")
    try:
        return _json.loads(text, parse_constant=_bad_constant, object_pairs_hook=_no_duplicates)
    except FlexOfferError:
        raise
    except RecursionError:
        raise FlexOfferError(DOCUMENT, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise FlexOfferError(DOCUMENT, f"malformed JSON: {exc}") from None


def _bad_constant(name: str) -> Any:
    raise FlexOfferError(DOCUMENT, f"malformed JSON: {name} is not a number in JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise FlexOfferError(k, "duplicate key")
        out[k] = v
    return out


def _guard(fn: Callable[[], Any]) -> Any:
    """Run a parse step; any non-FlexOfferError is a bug or an input we did not foresee, and the
    contract promises callers a single exception type, so it is wrapped (cause kept)."""
    try:
        return fn()
    except FlexOfferError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise FlexOfferError(DOCUMENT, f"document too complex: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise FlexOfferError(DOCUMENT, f"could not parse: {type(exc).__name__}: {exc}") from exc


def parse_offer(text: str | bytes) -> FlexOffer:
    """JSON text of one flex-offer to a :class:`FlexOffer`."""
    return _guard(lambda: offer_from_dict(loads(text)))


def parse_schedule(text: str | bytes, resolution: Optional[int] = None) -> Schedule:
    """JSON text of one schedule. ``resolution`` (seconds) is used when the document has none."""
    return _guard(lambda: schedule_from_dict(loads(text), resolution=resolution))


def parse_any(text: str | bytes) -> list[FlexOffer | Schedule]:
    """A document holding an offer, a schedule, or a list of them (schedules have ``offer_id``)."""

    def run() -> list[FlexOffer | Schedule]:
        data = loads(text)
        items = data if isinstance(data, list) else [data]
        out: list[FlexOffer | Schedule] = []
        for i, item in enumerate(items):
            try:
                if isinstance(item, dict) and "offer_id" in item:
                    out.append(schedule_from_dict(item))
                else:
                    out.append(offer_from_dict(item))
            except FlexOfferError as exc:
                raise exc.within(f"[{i}]") if isinstance(data, list) else exc
        return out

    return _guard(run)


def _obj(data: Any, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise FlexOfferError(path or DOCUMENT, f"must be a JSON object, got {_kind(data)}")
    for key in data:
        if key not in allowed:
            raise FlexOfferError(_join(path, key), f"unknown field (known: {', '.join(allowed)})")
    return data


def _list(data: Any, path: str) -> list:
    if not isinstance(data, list):
        raise FlexOfferError(path, f"must be a JSON array, got {_kind(data)}")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _build(path: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except FlexOfferError as exc:
        raise exc.within(path) from None


def _time(d: dict, key: str, path: str, resolution: int) -> Optional[int]:
    """Interval number of an on-grid time field, or None when absent."""
    if key not in d or d[key] is None:
        return None
    p = _join(path, key)
    return seconds_to_interval(parse_utc(d[key], p), resolution, p)


def _instant(d: dict, key: str) -> Optional[int]:
    if key not in d or d[key] is None:
        return None
    return parse_utc(d[key], key)


def offer_from_dict(data: Any) -> FlexOffer:
    """A decoded JSON object to a :class:`FlexOffer` (strict; see module docstring)."""
    d = _obj(data, "", OFFER_FIELDS)
    if "id" not in d or d["id"] is None:
        raise FlexOfferError("id", "required")
    res = d.get("resolution", DEFAULT_RESOLUTION)
    res = check_integer(res, "resolution")
    if res <= 0:
        raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
    dur = None
    if d.get("start_before_duration") is not None:
        seconds = parse_duration(d["start_before_duration"], "start_before_duration")
        if seconds % res:
            raise FlexOfferError("start_before_duration", f"not a whole number of {res} s intervals")
        dur = seconds // res
    if "profiles" not in d:
        raise FlexOfferError("profiles", "required (at least one profile)")
    raw_profiles = _list(d["profiles"], "profiles")
    from vmenergy.flexoffer.model import MAX_PROFILES

    if len(raw_profiles) > MAX_PROFILES:
        raise FlexOfferError("profiles", f"more than {MAX_PROFILES} profiles ({len(raw_profiles)})")
    profiles = tuple(_profile(p, f"profiles[{i}]", res) for i, p in enumerate(raw_profiles))
    baseline = None
    if d.get("baseline") is not None:
        b = _obj(d["baseline"], "baseline", ("profile", "start", "energy"))
        energy = _list(b.get("energy"), "baseline.energy") if "energy" in b else None
        if energy is None:
            raise FlexOfferError("baseline.energy", "required")
        baseline = _build(
            "baseline",
            lambda: Baseline(energy=tuple(energy), profile=b.get("profile", 0), start=_time(b, "start", "", res)),
        )
    prices = None
    if d.get("prices") is not None:
        pr = _obj(d["prices"], "prices", ("currency", "slices"))
        raw = _list(pr.get("slices"), "prices.slices")
        items = tuple(_price(x, f"prices.slices[{i}]") for i, x in enumerate(raw))
        prices = _build("prices", lambda: Prices(items, currency=pr.get("currency", "EUR")))
    return FlexOffer(
        id=d["id"],
        profiles=profiles,
        issuer=d.get("issuer"),
        label=d.get("label"),
        state=d.get("state", State.INITIAL),
        version=d.get("version", 0),
        resolution=res,
        creation_time=_instant(d, "creation_time"),
        acceptance_before=_instant(d, "acceptance_before"),
        assignment_before=_instant(d, "assignment_before"),
        start_after=_time(d, "start_after", "", res),
        start_before=_time(d, "start_before", "", res),
        start_before_duration=dur,
        baseline=baseline,
        prices=prices,
    )


def _price(data: Any, path: str) -> SlicePrice:
    d = _obj(data, path, ("up", "down"))
    for key in ("up", "down"):
        if key not in d:
            raise FlexOfferError(_join(path, key), "required")
    return _build(path, lambda: SlicePrice(d["up"], d["down"]))


def _profile(data: Any, path: str, res: int) -> Profile:
    from vmenergy.flexoffer.model import MAX_SLICES

    d = _obj(data, path, PROFILE_FIELDS)
    if "slices" not in d:
        raise FlexOfferError(_join(path, "slices"), "required (at least one slice)")
    raw = _list(d["slices"], _join(path, "slices"))
    if len(raw) > MAX_SLICES:
        raise FlexOfferError(_join(path, "slices"), f"more than {MAX_SLICES} slices ({len(raw)})")
    slices = tuple(_slice(s, f"{path}.slices[{j}]") for j, s in enumerate(raw))
    total = None
    if d.get("total") is not None:
        t = _obj(d["total"], _join(path, "total"), ("min", "max"))
        total = _build(_join(path, "total"), lambda: TotalEnergy(t.get("min"), t.get("max")))
    polytope = None
    if d.get("polytope") is not None:
        pd = _obj(d["polytope"], _join(path, "polytope"), ("A", "b"))
        for key in ("A", "b"):
            if key not in pd:
                raise FlexOfferError(f"{path}.polytope.{key}", "required")
        rows = _list(pd["A"], f"{path}.polytope.A")
        for j, row in enumerate(rows):
            _list(row, f"{path}.polytope.A[{j}]")
        b = _list(pd["b"], f"{path}.polytope.b")
        polytope = _build(_join(path, "polytope"), lambda: Polytope(tuple(tuple(r) for r in rows), tuple(b)))
    return _build(
        path,
        lambda: Profile(
            slices,
            total=total,
            polytope=polytope,
            start_after=_time(d, "start_after", "", res),
            start_before=_time(d, "start_before", "", res),
        ),
    )


def _slice(data: Any, path: str) -> Slice:
    d = _obj(data, path, SLICE_FIELDS)
    for key in ("duration", "min", "max"):
        if key not in d:
            raise FlexOfferError(_join(path, key), "required")
    values = d.get("values")
    if values is not None:
        values = tuple(_list(values, _join(path, "values")))
    return _build(path, lambda: Slice(d["duration"], d["min"], d["max"], values))


def schedule_from_dict(data: Any, resolution: Optional[int] = None) -> Schedule:
    """A decoded JSON object to a :class:`Schedule`."""
    d = _obj(data, "", SCHEDULE_FIELDS)
    for key in ("offer_id", "start", "energy"):
        if key not in d or d[key] is None:
            raise FlexOfferError(key, "required")
    res = d.get("resolution", resolution if resolution is not None else DEFAULT_RESOLUTION)
    res = check_integer(res, "resolution")
    if res <= 0:
        raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
    energy = _list(d["energy"], "energy")
    return Schedule(
        offer_id=d["offer_id"],
        schedule_id=d.get("schedule_id"),
        update_id=d.get("update_id", 0),
        profile=d.get("profile", 0),
        start=_time(d, "start", "", res),
        energy=tuple(energy),
        resolution=res,
    )


# ------------------------------------------------------------------------------------------
# writing


def offer_to_dict(fo: FlexOffer) -> dict:
    """A :class:`FlexOffer` as a JSON-ready dict (field order as in the protocol document)."""
    res = fo.resolution
    d: dict[str, Any] = {"id": fo.id}
    if fo.issuer is not None:
        d["issuer"] = fo.issuer
    if fo.label is not None:
        d["label"] = fo.label
    if fo.state is not State.INITIAL:
        d["state"] = fo.state.value
    if fo.version:
        d["version"] = fo.version
    d["resolution"] = res
    for key in ("creation_time", "acceptance_before", "assignment_before"):
        value = getattr(fo, key)
        if value is not None:
            d[key] = format_utc(value)
    for key in ("start_after", "start_before"):
        value = getattr(fo, key)
        if value is not None:
            d[key] = format_utc(value * res)
    if fo.start_before_duration is not None:
        d["start_before_duration"] = format_duration(fo.start_before_duration * res)
    d["profiles"] = [_profile_dict(p, res) for p in fo.profiles]
    if fo.baseline is not None:
        b = fo.baseline
        bd: dict[str, Any] = {"profile": b.profile}
        if b.start is not None:
            bd["start"] = format_utc(b.start * res)
        bd["energy"] = list(b.energy)
        d["baseline"] = bd
    if fo.prices is not None:
        d["prices"] = {
            "currency": fo.prices.currency,
            "slices": [{"up": p.up, "down": p.down} for p in fo.prices.slices],
        }
    return d


def _profile_dict(p: Profile, res: int) -> dict:
    out: dict[str, Any] = {"slices": [_slice_dict(s) for s in p.slices]}
    if p.total is not None:
        t: dict[str, Any] = {}
        if p.total.min is not None:
            t["min"] = p.total.min
        if p.total.max is not None:
            t["max"] = p.total.max
        out["total"] = t
    if p.polytope is not None:
        out["polytope"] = {"A": [list(r) for r in p.polytope.A], "b": list(p.polytope.b)}
    if p.start_after is not None:
        out["start_after"] = format_utc(p.start_after * res)
    if p.start_before is not None:
        out["start_before"] = format_utc(p.start_before * res)
    return out


def _slice_dict(s: Slice) -> dict:
    out: dict[str, Any] = {"duration": s.duration, "min": s.min, "max": s.max}
    if s.values is not None:
        out["values"] = list(s.values)
    return out


def offer_to_json(fo: FlexOffer, *, indent: Optional[int] = None) -> str:
    return _json.dumps(offer_to_dict(fo), indent=indent, allow_nan=False)


def schedule_to_dict(s: Schedule) -> dict:
    d: dict[str, Any] = {"offer_id": s.offer_id}
    if s.schedule_id is not None:
        d["schedule_id"] = s.schedule_id
    d["update_id"] = s.update_id
    d["profile"] = s.profile
    d["start"] = format_utc(s.start * s.resolution)
    d["energy"] = list(s.energy)
    if s.resolution != DEFAULT_RESOLUTION:
        d["resolution"] = s.resolution
    return d


def schedule_to_json(s: Schedule, *, indent: Optional[int] = None) -> str:
    return _json.dumps(schedule_to_dict(s), indent=indent, allow_nan=False)
