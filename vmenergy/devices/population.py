"""Which devices a prosumer has, with which parameters: from a scenario's population tables or a
box's config, checked and drawn the same way.

A scenario group gives a device mix (``devices = {ev = 0.4, heat_pump = 0.3}``: the chance that a
prosumer has each kind) and per-kind tables whose values are a number or a ``[low, high]`` range
drawn uniformly per device (``[prosumers.ev] capacity = [40, 80]``); ``owner`` likewise for the
owner's settings. A box lists its devices one by one (kind, id, numbers). The checks here return
``(path, reason)`` pairs; the scenario check adds them with their lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, Optional

import numpy as np

from .fleet import DeviceFleet, FoaSettings
from .inputs import Inputs
from .models import KINDS, Context, DeviceError, OwnerSettings
from .models.base import seeded

__all__ = ["KIND_NAMES", "check_params", "check_mix", "sample_params", "draw_devices", "draw_households",
           "device_specs_problems", "has_fleet", "build_fleet", "shared_inputs", "params_doc"]

#: The kinds in the order the docs and the check list them.
KIND_NAMES = tuple(KINDS)

Problem = tuple[tuple, str]


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def check_params(cls: type, table: Any, *, ranges: bool) -> list[Problem]:
    """Problems of a parameter table for ``cls`` (a model's ``Params`` or :class:`OwnerSettings`):
    unknown keys, values that are not numbers (or ``[low, high]`` ranges when ``ranges``), values
    the class refuses. Paths are relative to the table."""
    if not isinstance(table, Mapping):
        return [((), "must be a table")]
    fields = _fields(cls)
    out: list[Problem] = []
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            out.append(((key,), f"unknown parameter (known: {', '.join(sorted(fields))})"))
            continue
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                out.append(((key,), "must be true or false"))
                continue
            lows[key] = highs[key] = value
            continue
        pair = _range(value) if ranges else None
        if pair is None and _number(value):
            pair = (value, value)
        if pair is None:
            what = "a number or a [low, high] range" if ranges else "a number"
            out.append(((key,), f"must be {what}"))
            continue
        if pair[0] > pair[1]:
            out.append(((key,), f"range [{pair[0]:g}, {pair[1]:g}]: low above high"))
            continue
        lows[key], highs[key] = pair
    for values in (lows, highs):  # both ends of every range must be accepted
        seen = {p for p, _ in out}
        try:
            cls(**values)
        except DeviceError as exc:
            if (exc.path,) not in seen:
                out.append(((exc.path,), exc.reason))
    return out


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # TOML integers are unbounded; one past a float's range is no parameter
        return False


def _range(value: Any) -> Optional[tuple[float, float]]:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_number(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def check_mix(mix: Any) -> list[Problem]:
    """Problems of a device mix: kinds known, each chance a number in [0, 1]."""
    if not isinstance(mix, Mapping):
        return [((), "must be a table of kind = chance")]
    out: list[Problem] = []
    for kind, chance in mix.items():
        if kind not in KINDS:
            out.append(((kind,), f"unknown device kind (known: {', '.join(KIND_NAMES)})"))
        elif not _number(chance) or not 0 <= chance <= 1:
            out.append(((kind,), "a chance between 0 and 1"))
    return out


def sample_params(cls: type, table: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One draw of a parameter table: numbers as they are, ``[low, high]`` uniformly (whole
    numbers for integer parameters)."""
    fields = _fields(cls)
    out: dict[str, Any] = {}
    for key, value in sorted(table.items()):
        pair = _range(value)
        if pair is None:
            out[key] = value
        elif isinstance(fields[key].default, int) and not isinstance(fields[key].default, bool):
            out[key] = int(rng.integers(int(pair[0]), int(pair[1]) + 1))
        else:
            out[key] = round(float(rng.uniform(*pair)), 6)
    return out


def draw_devices(name: str, mix: Mapping[str, float], tables: Mapping[str, Mapping], owner: Mapping[str, Any],
                 seed: object) -> tuple[list[dict], dict]:
    """A prosumer's devices (``{"kind", "id", "params"}``, ids ``NAME-KIND``) and owner settings,
    drawn from the group's mix and tables with a generator seeded by the scenario seed and the
    prosumer's name (so a prosumer's devices do not depend on the others')."""
    rng = seeded(seed, name, "devices")
    devices = []
    for kind in KIND_NAMES:  # a fixed order: the draws do not depend on how the mix was written
        chance = float(mix.get(kind, 0.0))
        if rng.random() < chance:
            params = sample_params(KINDS[kind].Params, tables.get(kind, {}), rng)
            devices.append({"kind": kind, "id": f"{name}-{kind}", "params": params})
    return devices, sample_params(OwnerSettings, owner, rng)


def draw_households(table: Mapping[str, Any], seed: object) -> list[tuple[list[dict], dict]]:
    """The households an FOA fronts (a prosumer config's ``households`` table: ``name``, ``count``,
    ``mix``, ``tables``, ``owner``): household ``j`` is drawn as a prosumer named ``NAME-hJ``
    would be (:func:`draw_devices`, its own seed), so its device and offer ids stay unique at the
    aggregator and one household's draws do not depend on how many others the FOA fronts."""
    name, count = table["name"], int(table["count"])
    return [draw_devices(f"{name}-h{j}", table["mix"], table.get("tables", {}), table.get("owner", {}), seed)
            for j in range(count)]


def has_fleet(config: Mapping[str, Any]) -> bool:
    """Whether a prosumer's config describes a device fleet (its own devices, or many households)."""
    return "devices" in config or "households" in config


def device_specs_problems(specs: Any) -> list[Problem]:
    """Problems of a box's device list: ``[{kind, id, <parameters>}, ...]``."""
    if not isinstance(specs, (list, tuple)):
        return [((), "must be an array of tables ([[prosumer.devices]])")]
    out: list[Problem] = []
    ids: set[str] = set()
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            out.append(((i,), "must be a table"))
            continue
        kind, ident = spec.get("kind"), spec.get("id")
        if kind not in KINDS:
            out.append(((i, "kind"), f"required, one of {', '.join(KIND_NAMES)}"))
            continue
        if not isinstance(ident, str) or not ident:
            out.append(((i, "id"), "required: a name for the device"))
        elif ident in ids:
            out.append(((i, "id"), f"{ident!r} is used twice"))
        else:
            ids.add(ident)
        params = {k: v for k, v in spec.items() if k not in ("kind", "id")}
        out += [((i, *p), r) for p, r in check_params(KINDS[kind].Params, params, ranges=False)]
    return out


_INPUTS: dict[str, Inputs] = {}


def shared_inputs(table: Mapping[str, Any], resolution: int = 900) -> Inputs:
    """The inputs an ``[inputs]`` table (a plan's, paths absolute) describes, one object per
    process and table: the prosumers of a process share its series and pvlib's caches."""
    key = json.dumps(dict(table), sort_keys=True) + f"|{resolution}"
    if key not in _INPUTS:
        _INPUTS[key] = Inputs(resolution, **dict(table))
    return _INPUTS[key]


def build_fleet(config: Mapping[str, Any], inputs: Any, *, jid: str, seed: object, start: int,
                until: Optional[int]) -> DeviceFleet:
    """The fleet a prosumer's config describes: ``devices`` (``[{kind, id, params}]``) with the
    ``owner``'s settings, and/or ``households`` (drawn here, :func:`draw_households`, each
    with its own owner), and the ``foa`` settings. Errors name the device."""
    owner = _owner(config.get("owner", {}), "owner")
    try:
        foa = FoaSettings(**config.get("foa", {}))
    except DeviceError as exc:
        raise exc.within("foa") from None
    ctx = Context(inputs.resolution, inputs, owner=owner, issuer=jid, seed=str(seed),
                  slice_intervals=max(1, foa.slice_minutes * 60 // inputs.resolution), tz=inputs.tz,
                  latitude=inputs.latitude, longitude=inputs.longitude, altitude=inputs.altitude)
    k0 = -(-start // inputs.resolution)
    devices = _devices(config.get("devices", ()), ctx, k0, "devices")
    if "households" in config:
        for j, (specs, settings) in enumerate(draw_households(config["households"], seed)):
            # each household's devices price their offers with its own owner's settings
            home = dataclasses.replace(ctx, owner=_owner(settings, f"households[{j}].owner"))
            devices += _devices(specs, home, k0, f"households[{j}].devices")
    return DeviceFleet(devices, ctx, foa, start=start, until=until)


def _owner(settings: Mapping[str, Any], path: str) -> OwnerSettings:
    try:
        return OwnerSettings(**settings)
    except DeviceError as exc:
        raise exc.within(path) from None


def _devices(specs: Any, ctx: Context, k0: int, path: str) -> list:
    out = []
    for i, spec in enumerate(specs):
        cls = KINDS.get(spec.get("kind"))
        if cls is None:
            raise DeviceError(f"{path}[{i}].kind", f"unknown device kind {spec.get('kind')!r}")
        try:
            out.append(cls(spec["id"], cls.Params(**spec.get("params", {})), ctx, k0))
        except DeviceError as exc:
            raise exc.within(f"{path}[{i}]") from None
    return out


def params_doc() -> str:
    """The parameter tables of docs/devices.md: one per kind (name, default, unit, meaning), then
    the owner's settings and the FOA's (what a scenario group or a box sets)."""
    tables = [(f"`{kind}`", KINDS[kind].Params) for kind in KIND_NAMES]
    tables += [("owner settings (`owner`)", OwnerSettings), ("FOA settings (keys of the group or the box)", FoaSettings)]
    lines = []
    for title, cls in tables:
        lines += [f"#### {title}", "", "| parameter | default | unit | meaning |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            m = f.metadata
            lines.append(f"| `{f.name}` | {f.default} | {m.get('unit', '')} | {m.get('doc', '')} |")
        lines.append("")
    return "\n".join(lines)
