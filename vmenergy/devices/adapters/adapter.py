"""The adapter interface: how the executor and the probe talk to one physical device.

An adapter reads and writes named **points** (a register of a Modbus map, a command of a
serial line protocol) in the point's own unit; everything about buses, framing and retries
stays inside it. Every failure is a :class:`~.faults.DeviceFault`, never a transport library's
exception, so callers handle one type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from .faults import DeviceFault

__all__ = ["Adapter", "Point", "Reading", "Value"]

Value = Union[float, bool]


@dataclass(frozen=True)
class Point:
    """A value a device offers: its name, unit, whether it can be written, and a note."""

    name: str
    unit: str = ""
    writable: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Reading:
    """One point read once (what ``vmenergy device probe`` prints): the value or the fault."""

    point: Point
    value: Optional[Value] = None
    fault: Optional[DeviceFault] = None


class Adapter(ABC):
    """One device (``name``: its id in the box's config) behind one link."""

    name: str

    @abstractmethod
    def points(self) -> Sequence[Point]:
        """The device's points, in the order a person reads them (the map's order)."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the link (raises DeviceFault ``unreachable``); idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Close the link; idempotent, never raises."""

    @abstractmethod
    async def read(self, point: str) -> Value:
        """The point's value in its unit."""

    @abstractmethod
    async def write(self, point: str, value: Value) -> None:
        """Set a writable point (raises DeviceFault, or MapError for a value out of range)."""

    async def read_all(self) -> list[Reading]:
        """Every point once; a fault on one point does not stop the others (an unreachable
        device stops at the first, since every other read would wait for the same timeout)."""
        out: list[Reading] = []
        for p in self.points():
            try:
                out.append(Reading(p, await self.read(p.name)))
            except DeviceFault as exc:
                out.append(Reading(p, fault=exc))
                if exc.kind in ("unreachable", "gone"):
                    out.extend(Reading(q, fault=exc) for q in self.points()[len(out):])
                    break
        return out
