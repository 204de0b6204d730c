"""SunSpec model discovery: where a device keeps its models, and a SunSpec register map moved there.

A SunSpec device starts its register space with the marker ``SunS`` at 40000 (or 50000, or 0)
and follows it with a list of models, each an ID register, a length register and that many
registers of points, ended by the ID 0xFFFF. Devices differ in which models they have and in
what order (a hybrid inverter may put a nameplate or a multiple-MPPT model between its inverter
and storage models), so a map written for one device's addresses reads the wrong registers of
another. A map that says ``sunspec = true`` in its ``[map]`` table is laid out for one such list
(its ID and length registers are ``fixed``); :func:`discover` walks a device's list through the
caller's reads and :func:`relocate` moves each of the map's registers to the same offset in the
device's model of the same ID.

The walk reads two registers at a time through a callable, so the same code serves every link
(the Modbus adapter passes its own request; tests pass the emulator's registers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Optional

from .faults import DeviceFault
from .registers import MapError, Register, RegisterMap

__all__ = ["SUNS", "BASES", "Model", "Layout", "discover", "map_layout", "relocate"]

#: "SunS" as one 32-bit value (two registers, big-endian).
SUNS = 0x53756E53
SUNS_WORDS = [0x5375, 0x6E53]
#: Where the marker may be, in the order the specification lists them (wire addresses).
BASES = (40000, 50000, 0)
END = 0xFFFF
#: A longer list is a broken one (a length that points into the middle of a model loops or wanders).
MAX_MODELS = 200

Reader = Callable[[int, int], Awaitable[list[int]]]


@dataclass(frozen=True)
class Model:
    """One model in a device's list: its ID, the address of its ID register, and its length
    (registers after the ID and length registers)."""

    id: int
    address: int
    length: int

    @property
    def end(self) -> int:
        """The address after its last register (where the next model's ID is)."""
        return self.address + 2 + self.length


@dataclass(frozen=True)
class Layout:
    """A SunSpec model list: the marker's address and the models in order."""

    base: int
    models: tuple[Model, ...]

    def first(self, model_id: int) -> Optional[Model]:
        """The first model with this ID (a device may repeat one, e.g. one per MPPT input)."""
        return next((m for m in self.models if m.id == model_id), None)

    @property
    def end(self) -> int:
        """The address of the end marker (0xFFFF)."""
        return self.models[-1].end if self.models else self.base + 2

    def describe(self) -> str:
        models = ", ".join(f"{m.id} at {m.address} ({m.length} registers)" for m in self.models)
        return f"SunS at {self.base}; models {models or 'none'}; end at {self.end}"


async def discover(read: Reader, where: str) -> Layout:
    """The device's model list, read with ``read(address, count)`` (holding registers). A base
    the device refuses (a Modbus exception) is not its base; any other fault is raised as is.
    Raises :class:`DeviceFault` (kind ``bad-reply``) when no marker is found or the list is broken."""
    base = None
    for candidate in BASES:
        try:
            words = await read(candidate, 2)
        except DeviceFault as exc:
            if exc.kind != "exception":
                raise
            continue
        if list(words) == SUNS_WORDS:
            base = candidate
            break
    if base is None:
        raise DeviceFault(where, "not a SunSpec device: no 'SunS' marker at "
                                 f"{', '.join(map(str, BASES))}", "bad-reply")
    models: list[Model] = []
    address = base + 2
    while True:
        if address + 2 > 0x10000:
            raise DeviceFault(where, f"the SunSpec model list runs past register 65535 (after {len(models)} models)",
                              "bad-reply")
        try:
            model_id, length = (int(w) for w in await read(address, 2))
        except DeviceFault as exc:  # some devices end the list with the ID alone, without L = 0
            if exc.kind != "exception" or [int(w) for w in await read(address, 1)] != [END]:
                raise
            model_id, length = END, 0
        if model_id == END:
            return Layout(base, tuple(models))
        if len(models) == MAX_MODELS:
            raise DeviceFault(where, f"more than {MAX_MODELS} SunSpec models: the model list is broken", "bad-reply")
        model = Model(model_id, address, length)
        if model.end > 0x10000:
            raise DeviceFault(where, f"SunSpec model {model_id} at {address} is {length} registers long, past "
                                     "register 65535", "bad-reply")
        models.append(model)
        address = model.end


def map_layout(regmap: RegisterMap) -> Layout:
    """The model list a SunSpec map is written for, walked through its ``fixed`` registers the
    way :func:`discover` walks a device's; a map that does not spell it out is refused."""
    by_address = {r.address: r for r in regmap.registers if r.table == "holding"}
    marker = next((r for r in regmap.registers if r.fixed == SUNS and r.type == "uint32"), None)
    if marker is None:
        raise MapError("map.sunspec", "a SunSpec map needs the marker: a uint32 holding register with fixed = "
                                      f"{SUNS} ('SunS')")
    models: list[Model] = []
    address = marker.address + 2
    while True:
        id_reg, len_reg = by_address.get(address), by_address.get(address + 1)
        if id_reg is None or id_reg.fixed is None:
            raise MapError("map.sunspec", f"no fixed model ID register at {address} (after "
                                          f"{len(models)} models): the map must spell out its model list")
        if int(id_reg.fixed) == END:
            return Layout(marker.address, tuple(models))
        if len_reg is None or len_reg.fixed is None:
            raise MapError("map.sunspec", f"no fixed length register at {address + 1} for model {int(id_reg.fixed)}")
        if len(models) == MAX_MODELS:
            raise MapError("map.sunspec", f"more than {MAX_MODELS} models")
        models.append(Model(int(id_reg.fixed), address, int(len_reg.fixed)))
        address = models[-1].end


def relocate(regmap: RegisterMap, device: Layout) -> RegisterMap:
    """``regmap`` with each register moved to the same offset in the device's model of the same
    ID (the marker to the device's base, the end marker to its end; registers outside the model
    list stay), as a map of this device (``sunspec`` off: nothing left to move). Refused, naming the model, when the device lacks one the map uses or has it
    shorter than the map reads."""
    mine = map_layout(regmap)
    have = ", ".join(str(m.id) for m in device.models) or "none"
    moved: dict[str, Register] = {}
    for m in mine.models:
        inside = [r for r in regmap.registers if r.table == "holding" and m.address <= r.address < m.end]
        theirs = device.first(m.id)
        if theirs is None:
            raise MapError(f"map {regmap.name}", f"the device has no SunSpec model {m.id} (it has: {have})")
        reach = max(r.address + r.words - (m.address + 2) for r in inside)
        if reach > theirs.length:
            raise MapError(f"map {regmap.name}", f"SunSpec model {m.id} on the device is {theirs.length} registers "
                                                 f"long; the map reads {reach}")
        for r in inside:
            new = replace(r, address=r.address - m.address + theirs.address)
            if r.address == m.address + 1:  # the length register reads what the device says
                new = replace(new, fixed=theirs.length)
            moved[r.name] = new
    for r in regmap.registers:
        if r.table != "holding" or r.name in moved:
            continue
        if r.address == mine.base:
            moved[r.name] = replace(r, address=device.base)
        elif r.address == mine.end:
            moved[r.name] = replace(r, address=device.end)
    # the result is this device's layout, not a list to walk again (its own list has gaps where
    # the device's models the map does not read are)
    return replace(regmap, registers=tuple(moved.get(r.name, r) for r in regmap.registers), sunspec=False)
