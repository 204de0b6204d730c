"""What can go wrong between a box and its devices, named so an installer knows what to check.

A fault is not a bug: cables come loose, a meter reboots, a wrong unit id answers nothing. The
adapters turn every transport error into a :class:`DeviceFault` with a ``kind`` from
:data:`FAULT_KINDS`; the executor retries, falls back to the device's safe state and tells the
aggregator; the agent never dies of one.
"""

from __future__ import annotations

from vmenergy.errors import VmeError

__all__ = ["DeviceFault", "FAULT_KINDS", "EXCEPTION_CODES"]

#: ``unreachable``: no connection (host down, wrong port, serial port missing); ``timeout``: no
#: answer in time (often a wrong unit id on a serial bus); ``exception``: the device answered with
#: a Modbus exception code; ``bad-reply``: an answer that does not parse; ``gone``: the link was
#: up and dropped (unplugged).
FAULT_KINDS = ("unreachable", "timeout", "exception", "bad-reply", "gone")

#: Modbus exception codes and what they usually mean at a box.
EXCEPTION_CODES = {
    1: "illegal function (the register table does not support this access)",
    2: "illegal data address (the map's address is wrong for this device)",
    3: "illegal data value (the value is out of the device's range)",
    4: "device failure (the device could not do it; on a gateway: often a wrong unit id)",
    5: "acknowledge (busy with a long command)",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable (wrong unit id behind a gateway)",
    11: "gateway target failed to respond (the device behind the gateway is off or the unit id is wrong)",
}


class DeviceFault(VmeError):
    """A device did not do what was asked: ``path`` names the device (and register), ``kind`` is
    one of :data:`FAULT_KINDS`, ``reason`` says what happened in words an installer can act on."""

    def __init__(self, path: str, reason: str, kind: str = "unreachable") -> None:
        super().__init__(path, reason)
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)} (got {kind!r})")
        self.kind = kind

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.kind), self.__dict__)
