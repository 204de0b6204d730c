"""What an agent process does not load: SPADE's embedded XMPP server (pyjabber).

``import spade`` imports ``spade.container``, which imports pyjabber's server at module level
for ``spade.run(..., embedded_xmpp_server=True)``; pyjabber brings SQLAlchemy and Alembic
with it. A swarm process never starts that server (VME runs the embedded kind in a child
process of its own: vmenergy/runtime/servers/embedded.py), yet paid ~35-45 MiB resident for the
import (measured: ``import spade`` 71 -> 37 MiB). With 20 swarm processes for 10,000 prosumers
that is most of a gibibyte (bench/RESULTS.md, "Scale ladder").

:func:`skip_embedded_server` puts stand-ins for the two pyjabber modules SPADE names in
``sys.modules`` before SPADE is imported. Using them raises :class:`EmbeddedServerNotLoaded`,
which says why, so a process that does ask for the embedded server fails loudly instead of
starting without one.
"""

from __future__ import annotations

import sys
import types

__all__ = ["EmbeddedServerNotLoaded", "skip_embedded_server"]

#: pyjabber modules ``spade.container`` imports, and the name it takes from each.
_STANDS_IN_FOR = {"pyjabber.server": "Server", "pyjabber.server_parameters": "Parameters"}


class EmbeddedServerNotLoaded(RuntimeError):
    """The process was started without SPADE's embedded server (see :func:`skip_embedded_server`)."""


class _NotLoaded:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise EmbeddedServerNotLoaded(
            "SPADE's embedded XMPP server (pyjabber) is not loaded in VME agent processes "
            "(vmenergy.runtime.lean); start it with `vmenergy server start --kind embedded`")


def skip_embedded_server() -> bool:
    """Install the stand-ins unless pyjabber or SPADE is already imported (then the real one
    stays: replacing a module in use would break its users). Returns whether it installed them."""
    if any(name == "spade" or name.startswith("pyjabber") for name in sys.modules):
        return False
    package = types.ModuleType("pyjabber")
    package.__path__ = []  # a package, so that its submodules resolve to the stand-ins below
    sys.modules["pyjabber"] = package
    for module_name, attr in _STANDS_IN_FOR.items():
        module = types.ModuleType(module_name, "stand-in: see vmenergy.runtime.lean")
        setattr(module, attr, _NotLoaded)
        sys.modules[module_name] = module
        setattr(package, module_name.rsplit(".", 1)[1], module)
    return True
