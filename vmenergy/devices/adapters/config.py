"""A box's hardware: one ``[[prosumer.hardware]]`` entry per device link, read into a frozen,
self-validating :class:`HardwareConfig` (errors name the key), and the adapter it describes.

An entry names its link (``transport``: ``tcp`` / ``rtu`` Modbus with a ``map``, or ``serial``
with a line ``protocol``), and how the executor drives and meters it; a map's ``[defaults]``
fill in what the entry leaves out, so for a shipped map ``id``, ``map`` and the address are
usually all there is to write::

    [[prosumer.hardware]]
    id = "wallbox"
    drives = "car"               # the device model whose offers it carries out (default: id)
    map = "ev_charger"
    transport = "tcp"
    host = "192.168.1.50"
    port = 502
    unit = 1

``control`` is how a set-point reaches the device: ``current`` (a current limit, with an
``enable`` switch below the lowest current), ``power`` (kW), ``switch`` (a relay, on/off),
``sg_ready`` (two relays: blocked / normal / forced), ``storage`` (SunSpec model 124: charge or
discharge rate in percent of ``rated_kw``, selected by the mode register ``enable``), ``none``
(a meter only). ``meter`` and
``export`` name the energy counters (kWh import/export), on this device or on another entry as
``"ENTRY.REGISTER"`` (a relay whose load an SDM630 meters). ``normal``: the register values of
the device's own behaviour, written back when a schedule ends; ``safe``: what is written when
the device misbehaves (default: ``normal``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from .adapter import Adapter
from .registers import MapError, RegisterMap, check, load_map
from .sunspec import map_layout

__all__ = ["HardwareConfig", "CONTROLS", "TRANSPORTS", "read_hardware", "make_adapter", "resolve_map"]

CONTROLS = ("none", "power", "current", "switch", "sg_ready", "storage")
TRANSPORTS = ("tcp", "rtu", "serial")


@dataclass(frozen=True)
class HardwareConfig:
    """One ``[[prosumer.hardware]]`` entry (see the module docstring)."""

    id: str
    transport: str = "tcp"
    map: Optional[str] = None
    protocol: Optional[str] = None
    drives: Optional[str] = None
    host: Optional[str] = None
    port: int = 502
    serial_port: Optional[str] = None
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    unit: int = 1
    timeout: float = 1.0
    control: Optional[str] = None
    setpoint: Optional[str] = None
    discharge: Optional[str] = None
    enable: Optional[str] = None
    relays: tuple[str, ...] = ()
    meter: Optional[str] = None
    export: Optional[str] = None
    power: Optional[str] = None
    rated_kw: Optional[float] = None
    voltage: float = 230.0
    phases: int = 1
    normal: dict = field(default_factory=dict)
    safe: Optional[dict] = None
    #: set-point corrections per interval (the executor reads the meter and adjusts this often)
    corrections: int = 3
    #: tries per request before a fault counts, and the first wait between them (real seconds,
    #: doubling): a box's link, not scenario time
    retries: int = 3
    backoff: float = 0.2

    def __post_init__(self) -> None:
        check.identifier(self.id, "id")
        check.choice(self.transport, "transport", TRANSPORTS)
        if self.transport == "serial":
            if not self.protocol:
                raise MapError("protocol", "required with transport = \"serial\" (a line protocol: "
                                           "shipped name or .toml file)")
        elif not self.map:
            raise MapError("map", "required for Modbus (a register map: shipped name or .toml file)")
        if self.transport == "tcp" and not self.host:
            raise MapError("host", "required with transport = \"tcp\"")
        if self.transport in ("rtu", "serial") and not self.serial_port:
            raise MapError("serial_port", f"required with transport = \"{self.transport}\" (e.g. /dev/ttyUSB0)")
        check.integer(self.port, "port", minimum=1, maximum=65535)
        check.integer(self.baudrate, "baudrate", minimum=50, maximum=4_000_000)
        check.choice(self.parity, "parity", ("N", "E", "O"))
        check.integer(self.stopbits, "stopbits", minimum=1, maximum=2)
        check.integer(self.unit, "unit", minimum=0, maximum=247)
        check.number(self.timeout, "timeout", minimum=0.01, maximum=60)
        if self.control is not None:
            check.choice(self.control, "control", CONTROLS)
        if self.rated_kw is not None:
            check.number(self.rated_kw, "rated_kw", minimum=0, maximum=10_000)
        check.number(self.voltage, "voltage", minimum=1, maximum=1000)
        check.integer(self.phases, "phases", minimum=1, maximum=3)
        check.integer(self.corrections, "corrections", minimum=1, maximum=60)
        check.integer(self.retries, "retries", minimum=1, maximum=20)
        check.number(self.backoff, "backoff", minimum=0, maximum=60)
        for key in ("normal", "safe"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, dict):
                raise MapError(key, "must be a table of register = value")

    @classmethod
    def from_dict(cls, data: Any, path: str = "hardware") -> "HardwareConfig":
        table = check.table(data, path, [f.name for f in fields(cls)], noun="a table")
        if isinstance(table.get("relays"), list):
            table["relays"] = tuple(table["relays"])
        return check.build(path, lambda: cls(**table))

    def with_defaults(self, regmap: RegisterMap) -> "HardwareConfig":
        """This entry with the map's ``[defaults]`` for what it leaves out."""
        d = regmap.defaults
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in d.items():
            if key in given and given[key] in (None, (), {}):
                given[key] = tuple(value) if key == "relays" else value
            elif key in ("voltage", "phases") and given[key] == {f.name: f.default for f in fields(self)}[key]:
                given[key] = value
        if given["control"] is None:
            given["control"] = "none"
        return check.build(self.id, lambda: HardwareConfig(**given))

    @property
    def model_id(self) -> str:
        """The device model whose offers this hardware carries out."""
        return self.drives or self.id


def resolve_map(cfg: HardwareConfig, base: Optional[Path] = None) -> RegisterMap:
    """The entry's register map (for ``serial``: its line protocol's points as a map)."""
    if cfg.transport == "serial":
        from .serial_line import load_protocol

        return load_protocol(cfg.protocol or "", base).as_map()
    return load_map(cfg.map or "", base)


def read_hardware(entries: Any, base: Optional[Path] = None, at: str = "hardware") -> list[HardwareConfig]:
    """The checked entries with their maps' defaults (errors name ``hardware[i].key``); the
    registers each entry names must exist in its map."""
    out: list[HardwareConfig] = []
    for i, entry in enumerate(check.items(entries, at, "tables")):
        cfg = HardwareConfig.from_dict(entry, f"{at}[{i}]")
        try:
            regmap = resolve_map(cfg, base)
            if regmap.sunspec:  # its model list must be spelt out, or there is nothing to move by
                map_layout(regmap)
            cfg = cfg.with_defaults(regmap)
        except MapError as exc:
            raise exc.within(f"{at}[{i}]") from None
        out.append(cfg)
    ids = [c.id for c in out]
    for i, c in enumerate(out):
        if ids.index(c.id) != i:
            raise MapError(f"{at}[{i}].id", f"{c.id!r} appears twice")
    by_id = {c.id: c for c in out}
    for i, c in enumerate(out):
        regmap = resolve_map(c, base)
        names = [("setpoint", c.setpoint), ("discharge", c.discharge), ("enable", c.enable), ("power", c.power)]
        names += [("relays", r) for r in c.relays] + [(f"normal.{k}", k) for k in c.normal]
        names += [(f"safe.{k}", k) for k in (c.safe or {})]
        for key, name in names:
            if name is not None and name not in regmap:
                raise MapError(f"{at}[{i}].{key}", f"{name!r} is not a point of {regmap.name} (it has: "
                                                   f"{', '.join(regmap.registers_by_name)})")
        for key in ("meter", "export"):
            name = getattr(c, key)
            if name is None:
                continue
            other, _, reg = name.rpartition(".")
            if other:
                if other not in by_id:
                    raise MapError(f"{at}[{i}].{key}", f"no hardware entry {other!r} (entries: {', '.join(by_id)})")
                if reg not in resolve_map(by_id[other], base):
                    raise MapError(f"{at}[{i}].{key}", f"{reg!r} is not a point of {other}")
            elif name not in regmap:
                raise MapError(f"{at}[{i}].{key}", f"{name!r} is not a point of {regmap.name}")
        if c.control in ("current", "switch", "power") and not c.setpoint:
            raise MapError(f"{at}[{i}].setpoint", f"required with control = \"{c.control}\"")
        if c.control == "sg_ready" and len(c.relays) != 2:
            raise MapError(f"{at}[{i}].relays", "SG-Ready takes two relays")
        if c.control == "storage" and not (c.setpoint and c.discharge and c.enable):
            raise MapError(f"{at}[{i}].setpoint", "storage control needs setpoint (charge rate %), discharge "
                                                  "(discharge rate %) and enable (the mode register)")
        if c.control in ("switch", "sg_ready", "storage") and c.rated_kw is None:
            raise MapError(f"{at}[{i}].rated_kw", f"required with control = \"{c.control}\" (the power when on)")
    return out


def make_adapter(cfg: HardwareConfig, base: Optional[Path] = None) -> Adapter:
    """The adapter an entry describes (not yet connected)."""
    if cfg.transport == "serial":
        from .serial_line import SerialLineAdapter, load_protocol

        return SerialLineAdapter(cfg.id, load_protocol(cfg.protocol or "", base), serial_port=cfg.serial_port or "",
                                 baudrate=cfg.baudrate, timeout=cfg.timeout)
    from .modbus import ModbusAdapter

    return ModbusAdapter(cfg.id, load_map(cfg.map or "", base), transport=cfg.transport, host=cfg.host, port=cfg.port,
                         serial_port=cfg.serial_port, baudrate=cfg.baudrate, parity=cfg.parity,
                         stopbits=cfg.stopbits, unit=cfg.unit, timeout=cfg.timeout)
