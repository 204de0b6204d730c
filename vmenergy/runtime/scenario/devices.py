"""The device tables of a scenario (and of a box's config): ``[inputs]``, a group's device mix,
its per-kind parameter tables and its owner settings.

The checks of the values themselves are the device package's (:mod:`vmenergy.devices.population`,
the models' ``Params`` classes), so a parameter added to a model is known here at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .locate import KeyPath
from .problems import Problems, suggest
from .tables import limits, read_table

__all__ = ["InputsTable", "read_inputs", "check_devices"]


@dataclass(frozen=True)
class InputsTable:
    """``[inputs]``: where the devices are and what they read. ``weather`` and ``prices`` are CSV
    series (docs/devices.md; paths relative to the scenario); without ``weather`` the sky is
    clear (pvlib) at ``temp_air``; without ``prices`` a typical day-ahead curve applies. Files are
looked for as offer templates are: next to the scenario, in the project, in ``scenarios/``.
    ``timezone`` is the owners' clock (an EV comes home at 18:00 local time)."""

    weather: Optional[str] = None
    prices: Optional[str] = None
    latitude: float = field(default=45.0, metadata=limits(ge=-90, le=90))
    longitude: float = field(default=8.0, metadata=limits(ge=-180, le=180))
    altitude: float = field(default=0.0, metadata=limits(ge=-500, le=9000))
    timezone: str = "UTC"
    temp_air: float = field(default=10.0, metadata=limits(ge=-60, le=60))

    def as_plan(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def read_inputs(table: Any, at: KeyPath, problems: Problems, find: Callable[[str], tuple[Optional[Path], str]],
                span: Optional[tuple[int, int]] = None) -> Optional[InputsTable]:
    """The ``[inputs]`` table with its files found by ``find`` (as offer templates are: next to
    the scenario, in the project, in ``scenarios/``) and read, or None. With ``span`` (epoch
    seconds), the series must cover it."""
    from vmenergy.devices.inputs import Inputs
    from vmenergy.devices.models import DeviceError

    t = read_table(InputsTable, table, at, problems)
    if t is None:
        return None
    found: dict[str, Optional[str]] = {}
    for key in ("weather", "prices"):
        name = getattr(t, key)
        if name is None:
            found[key] = None
            continue
        path, looked = find(name)
        if path is None:
            problems.error(at + (key,), f"file not found (looked in {looked})")
            return None
        found[key] = str(path)
    try:
        inputs = Inputs(weather=found["weather"], prices=found["prices"], latitude=t.latitude,
                        longitude=t.longitude, altitude=t.altitude, timezone=t.timezone, temp_air=t.temp_air)
    except DeviceError as exc:
        problems.error(at + (exc.path,), exc.reason)
        return None
    if span is not None:
        for why in inputs.covers(*span):
            problems.error(at, why)
    return InputsTable(found["weather"], found["prices"], t.latitude, t.longitude, t.altitude, t.timezone,
                       t.temp_air)


def check_devices(mix: Any, tables: Mapping[str, Any], owner: Any, at: KeyPath, problems: Problems) -> bool:
    """Check a group's device mix, per-kind tables and owner table; False if any is wrong."""
    from vmenergy.devices.models import KINDS, OwnerSettings
    from vmenergy.devices.population import KIND_NAMES, check_mix

    errors = len(problems.errors)
    for path, reason in check_mix(mix):
        hint = suggest(str(path[0]), KIND_NAMES) if path and "unknown" in reason else None
        problems.error(at + ("devices",) + path, reason, hint)
    for kind, table in tables.items():
        _params(KINDS[kind].Params, table, at + (kind,), problems)
        if isinstance(mix, Mapping) and kind not in mix:
            problems.warn(at + (kind,), f"parameters for {kind}, but the group's devices do not include it")
    _params(OwnerSettings, owner, at + ("owner",), problems)
    return len(problems.errors) == errors


def _params(cls: type, table: Any, at: KeyPath, problems: Problems) -> None:
    from dataclasses import fields

    from vmenergy.devices.population import check_params

    known = [f.name for f in fields(cls)]
    for path, reason in check_params(cls, table, ranges=True):
        hint = suggest(str(path[-1]), known) if path and reason.startswith("unknown") else None
        problems.error(at + path, reason, hint)
