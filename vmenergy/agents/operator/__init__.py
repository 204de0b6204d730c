"""Operators steer agents from any XMPP client: chat commands, XEP-0050 ad-hoc commands, watch.

- :mod:`.commands`: the command table (one definition for chat and ad-hoc) and argument checks;
- :mod:`.views`: the read-only commands, as short text;
- :mod:`.desk`: access control, running a command for a sender, watchers;
- :mod:`.adhoc`: the commands as ad-hoc commands with data forms, discoverable by disco;
- :mod:`.text`: how replies look (aligned columns, UTC times).

Who may do what is the agent's ``[operators]`` table (:class:`vmenergy.protocol.operators.Operators`);
what a steering command changes is an engine step (:mod:`vmenergy.protocol.steering`).
"""

from .adhoc import AdHocCommands
from .desk import NOT_AUTHORIZED, OperatorDesk, Reply

__all__ = ["AdHocCommands", "OperatorDesk", "Reply", "NOT_AUTHORIZED"]
