"""Register maps: where a device keeps each value, in which type and unit (pure, no I/O).

A map is a TOML file (shipped ones in ``maps/``; a box may bring its own) with one
``[[register]]`` table per value::

    [map]
    name = "sdm630"
    word_order = "big"            # default order of the 16-bit words of 32-bit values
    sunspec = false               # true: laid out for one SunSpec model list, moved to the device's
                                  # own list before the first read (see sunspec.py)

    [[register]]
    name = "power_total"          # what the executor and `vmenergy device probe` call it
    address = 52                  # wire address (0-based, as on the bus; manuals often say 30053)
    table = "input"               # input | holding | coil | discrete
    type = "float32"              # uint16 | int16 | uint32 | int32 | float32 | bool
    scale = 1.0                   # value = raw * scale (a register in 0.1 A has scale = 0.1)
    scale_register = "W_SF"       # optional: times 10 ** (that int16 register), SunSpec's scale factors
    fixed = 21365                 # optional: a constant the device reports (SunSpec ids, lengths)
    unit = "W"
    access = "r"                  # r | rw
    min = 6                       # optional bounds of a writable value (in scaled units)
    max = 32

Decoding and encoding live here once, so the Modbus adapter, the emulated devices and the probe
agree on every word by construction (the emulator is the adapter's test oracle only through
the bus, never through shared shortcuts).
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from vmenergy.errors import VmeError
from vmenergy.validation import Checks

__all__ = ["MapError", "Register", "RegisterMap", "TABLES", "TYPES", "load_map", "load_shipped", "read_toml",
           "shipped_maps", "MAPS_DIR"]

MAPS_DIR = Path(__file__).resolve().parent / "maps"


class MapError(VmeError):
    """A register map (or a value for one of its registers) is unusable: ``path`` names the key."""


check = Checks(MapError)

#: Modbus tables: 16-bit registers (input read-only, holding read/write) and single bits.
TABLES = ("input", "holding", "coil", "discrete")
BIT_TABLES = ("coil", "discrete")
#: Value types and their (struct code, number of 16-bit words).
TYPES: dict[str, tuple[str, int]] = {
    "uint16": ("H", 1), "int16": ("h", 1), "uint32": ("I", 2), "int32": ("i", 2), "float32": ("f", 2),
    "bool": ("?", 1),
}
WORD_ORDERS = ("big", "little")
ACCESS = ("r", "rw")
Value = Union[float, bool]
FLOAT32_MAX = 3.4028234663852886e38
#: Keys a map's ``[defaults]`` may give the device entries that use it (see :mod:`.config`).
DEFAULT_KEYS = ("control", "setpoint", "discharge", "enable", "meter", "export", "power", "rated_kw", "voltage",
                "phases", "relays", "normal")


@dataclass(frozen=True)
class Register:
    """One value of a device (see the module docstring for the keys)."""

    name: str
    address: int
    table: str = "holding"
    type: str = "uint16"
    scale: float = 1.0
    unit: str = ""
    access: str = "r"
    word_order: str = "big"
    min: Optional[float] = None
    max: Optional[float] = None
    doc: str = ""
    scale_register: Optional[str] = None
    fixed: Optional[float] = None

    def __post_init__(self) -> None:
        check.identifier(self.name, "name")
        check.integer(self.address, "address", minimum=0, maximum=0xFFFF)
        check.choice(self.table, "table", TABLES)
        check.choice(self.type, "type", tuple(TYPES))
        check.choice(self.access, "access", ACCESS)
        check.choice(self.word_order, "word_order", WORD_ORDERS)
        if check.number(self.scale, "scale") == 0:
            raise MapError("scale", "must not be 0")
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            raise MapError("type", f"a {self.table} holds {'bool' if self.table in BIT_TABLES else 'a number'}"
                                   f" (got {self.type})")
        if self.access == "rw" and self.table in ("input", "discrete"):
            raise MapError("access", f"{self.table} registers are read-only on Modbus")
        if self.address + self.words > 0x10000:
            raise MapError("address", "the value runs past the last register (65535)")
        for key in ("min", "max"):
            if getattr(self, key) is not None:
                check.number(getattr(self, key), key)
        if self.scale_register is not None:
            check.identifier(self.scale_register, "scale_register")
        if self.fixed is not None:
            check.number(self.fixed, "fixed")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise MapError("min", f"greater than max ({self.min:g} > {self.max:g})")

    @property
    def words(self) -> int:
        """16-bit registers (or bits) the value takes."""
        return TYPES[self.type][1]

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    # -- the bus representation -------------------------------------------------------------
    def decode(self, raw: list[int] | list[bool], exponent: int = 0) -> Value:
        """The value (scaled, in :attr:`unit`) from the words (or bit) read off the bus;
        ``exponent``: the value of its ``scale_register`` (a power of ten)."""
        if len(raw) != self.words:
            raise MapError(self.name, f"expected {self.words} word(s), got {len(raw)}")
        if self.type == "bool":
            return bool(raw[0])
        words = list(raw) if self.word_order == "big" else list(reversed(raw))
        if any(not isinstance(w, int) or not 0 <= w <= 0xFFFF for w in words):
            raise MapError(self.name, f"not 16-bit words: {raw!r}")
        data = b"".join(int(w).to_bytes(2, "big") for w in words)
        value = struct.unpack(">" + TYPES[self.type][0], data)[0]
        factor = self.scale * 10.0 ** exponent
        return value * factor if factor != 1 else value

    def encode(self, value: Value, exponent: int = 0) -> list[int] | list[bool]:
        """The words (or bit) that carry ``value`` (scaled units); refuses values out of the
        register's bounds or its type's range, naming the register."""
        if self.type == "bool":
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise MapError(self.name, f"takes on/off (true/false), got {value!r}")
            return [bool(value)]
        number = check.number(value, self.name)
        if self.min is not None and number < self.min - 1e-9:
            raise MapError(self.name, f"must be >= {self.min:g} {self.unit}".rstrip() + f" (got {number:g})")
        if self.max is not None and number > self.max + 1e-9:
            raise MapError(self.name, f"must be <= {self.max:g} {self.unit}".rstrip() + f" (got {number:g})")
        raw = number / (self.scale * 10.0 ** exponent)
        code = TYPES[self.type][0]
        if code != "f":
            raw = int(round(raw))
            bits = 16 * self.words
            lo, hi = (0, 2 ** bits - 1) if code.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if not lo <= raw <= hi:
                raise MapError(self.name, f"{number:g} does not fit a {self.type} with scale {self.scale:g}")
        elif not math.isfinite(raw) or abs(raw) > FLOAT32_MAX:
            raise MapError(self.name, f"{number:g} does not fit a float32")
        data = struct.pack(">" + code, raw)
        words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        return words if self.word_order == "big" else list(reversed(words))


@dataclass(frozen=True)
class RegisterMap:
    """A device's registers by name (``name``: the map's own name, e.g. ``sdm630``)."""

    name: str
    registers: tuple[Register, ...]
    description: str = ""
    #: keys a device entry using this map takes by default (``control``, ``setpoint``, ``meter``...:
    #: see :mod:`.config`), so a box's config names only what differs
    defaults: dict = field(default_factory=dict, compare=False)
    #: laid out for one SunSpec model list: the adapter walks the device's list and moves the
    #: registers to it before the first read (see :mod:`.sunspec`)
    sunspec: bool = False
    registers_by_name: dict[str, Register] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check.identifier(self.name, "map.name")
        if not self.registers:
            raise MapError("register", "a map needs at least one [[register]]")
        by_name: dict[str, Register] = {}
        taken: dict[tuple[str, int], str] = {}
        for i, reg in enumerate(self.registers):
            if reg.name in by_name:
                raise MapError(f"register[{i}].name", f"{reg.name!r} appears twice")
            by_name[reg.name] = reg
            for a in range(reg.address, reg.address + reg.words):
                other = taken.get((reg.table, a))
                if other is not None:
                    raise MapError(f"register[{i}].address", f"{reg.table} register {a} is also part of {other!r}")
                taken[(reg.table, a)] = reg.name
        for i, reg in enumerate(self.registers):
            sf = reg.scale_register
            if sf is not None and (sf not in by_name or by_name[sf].type != "int16"):
                raise MapError(f"register[{i}].scale_register", f"{sf!r} must be an int16 register of the map")
        object.__setattr__(self, "registers_by_name", by_name)
        check.boolean(self.sunspec, "map.sunspec")  # its model list is checked where a box takes the map

    def __getitem__(self, name: str) -> Register:
        try:
            return self.registers_by_name[name]
        except KeyError:
            raise MapError(name, f"not a register of map {self.name!r} (it has: "
                                 f"{', '.join(self.registers_by_name)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self.registers_by_name

    @classmethod
    def from_dict(cls, data: Any, default_name: str = "map") -> "RegisterMap":
        table = check.table(data, "", ("map", "register", "defaults"), noun="a register map")
        head = check.table(table.get("map", {}), "map", ("name", "description", "word_order", "sunspec"))
        order = head.get("word_order", "big")
        check.choice(order, "map.word_order", WORD_ORDERS)
        regs = []
        known = ("name", "address", "table", "type", "scale", "unit", "access", "word_order", "min", "max", "doc",
                 "scale_register", "fixed")
        for i, entry in enumerate(check.items(table.get("register", []), "register", "tables")):
            entry = check.table(entry, f"register[{i}]", known)
            entry.setdefault("word_order", order)
            regs.append(check.build(f"register[{i}]", lambda e=entry: Register(**e)))
        return check.build("", lambda: cls(head.get("name", default_name), tuple(regs), head.get("description", ""),
                                              check.table(table.get("defaults", {}), "defaults", DEFAULT_KEYS),
                                              head.get("sunspec", False)))


def load_map(name_or_path: str | Path, base: Optional[Path] = None) -> RegisterMap:
    """A shipped map by name (``sdm630``) or a map file (relative to ``base``); errors name the
    file and the key."""
    return load_shipped(name_or_path, base, MAPS_DIR, "map", RegisterMap.from_dict)


T = TypeVar("T")


def load_shipped(name_or_path: str | Path, base: Optional[Path], folder: Path, what: str,
                 parse: Callable[[Any, str], T]) -> T:
    """A description shipped in ``folder`` (a bare name) or a ``.toml`` file (relative to
    ``base``), parsed by ``parse(data, default name)``; errors name the file and the key."""
    text = str(name_or_path)
    path = Path(text)
    if not text.endswith(".toml") and "/" not in text:
        path = folder / f"{text}.toml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
            raise MapError(what, f"no shipped {what} {text!r} (shipped: {shipped}; or give a .toml file)")
    elif not path.is_absolute() and base is not None:
        path = base / path
    data = read_toml(path, what)
    try:
        return parse(data, path.stem)
    except MapError as exc:
        raise MapError(f"{path}: {exc.path}" if exc.path else str(path), exc.reason) from None


def read_toml(path: Path, what: str) -> dict:
    """A TOML file's tables; an unreadable or malformed file is a MapError naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise MapError(str(path), f"cannot read the {what}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise MapError(str(path), f"not valid TOML: {exc}") from None


def shipped_maps() -> list[str]:
    """The names of the maps that ship with VME."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.toml"))
