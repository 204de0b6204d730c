"""Agent node configs (``vmenergy agent ROLE --config FILE``, examples in agents/<role>/).

The same kind of check as for scenarios: each table against its schema (the dataclasses below),
the ``[market]`` and ``[aggregator]`` tables by the agents' own code (:mod:`.configs`). Paths
(password file, store, offers, CA file) are not looked up: they name places on the machine the
node will run on, not on the one that checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from .configs import check_aggregator, check_dso, check_market, check_operators, check_web
from .locate import KeyLines, KeyPath
from .problems import Problem, Problems
from .tables import Instant, check_keys, limits, read_table, show

__all__ = ["AgentTable", "NodeServerTable", "NodeClockTable", "ProsumerTable", "Node", "read_node", "check_node",
           "ROLES"]

#: The roles a node runs, each configured by the table of that name.
ROLES = ("prosumer", "aggregator", "market", "dso")
#: The tables every node may have besides its role's.
COMMON = ("agent", "server", "clock", "operators", "web")


@dataclass(frozen=True)
class AgentTable:
    """``[agent]``: the node's account, store and timing."""

    jid: str
    password: Optional[str] = None
    password_file: Optional[str] = None
    register: bool = True
    store: Optional[str] = None
    tick: float = field(default=1.0, metadata=limits(gt=0))
    max_payload_bytes: Optional[int] = field(default=None, metadata=limits(ge=1))
    #: solver time one offer's polytope check may take before the offer is refused
    check_seconds: Optional[float] = field(default=None, metadata=limits(gt=0, le=3600))
    #: send SPADE's metadata form with each protocol message, for third-party SPADE agents that
    #: route by templates (docs/protocol.md section 7); VME's own agents do not need it
    spade_metadata: bool = False


@dataclass(frozen=True)
class NodeServerTable:
    """``[server]``: where the node connects (host defaults to the JID's domain)."""

    host: Optional[str] = None
    port: int = field(default=5222, metadata=limits(ge=1, le=65535))
    ca_file: Optional[str] = None


@dataclass(frozen=True)
class NodeClockTable:
    """``[clock]``: ``real`` for a live node; ``accelerated`` (from ``start``, ``speed`` times
    the wall clock) to try a node on its own."""

    kind: Literal["real", "accelerated"] = "real"
    start: Optional[Instant] = None
    speed: float = field(default=60.0, metadata=limits(gt=0))


@dataclass(frozen=True)
class ProsumerTable:
    """``[prosumer]``: its aggregator's JID, the offer files it sends, simulated metering noise,
    and its devices (``[[prosumer.devices]]``: ``kind``, ``id`` and the model's parameters; see
    docs/devices.md) with the owner's settings, the FOA's timing and the inputs the models read
    (``inputs``: the ``[inputs]`` keys of a scenario; files a cron job may rewrite)."""

    aggregator: str
    offers: tuple[str, ...] = ()
    deviation: float = field(default=0.0, metadata=limits(ge=0, lt=1))
    devices: tuple[dict, ...] = ()
    owner: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    offer_time: float = field(default=12.0, metadata=limits(ge=0, lt=24))
    offer_lead: int = field(default=3600, metadata=limits(ge=0))
    slice_minutes: int = field(default=60, metadata=limits(ge=1))
    #: the box's hardware links (``[[prosumer.hardware]]``, agents/foa-box/README.md): Modbus TCP/RTU
    #: devices with a register map, serial boards with a line protocol
    hardware: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Node:
    """A checked node config: its role and tables (``config``: the role's table as the agent's
    config object, or the :class:`ProsumerTable`; ``operators``: who may read and steer it,
    a :class:`~vmenergy.protocol.operators.Operators`)."""

    role: str
    agent: AgentTable
    server: NodeServerTable
    clock: NodeClockTable
    config: Any
    operators: Any = None
    web: Any = None  # a vmenergy.agents.web.WebConfig, or None: no console, no REST interface


def read_node(data: dict, problems: Problems) -> Optional[Node]:
    """The node a parsed config describes, or None (every problem added to ``problems``)."""
    for key in data:
        if key not in COMMON + ROLES:
            problems.unknown_key((key,), COMMON + ROLES, "table")
    agent = read_table(AgentTable, data.get("agent"), ("agent",), problems)
    server = read_table(NodeServerTable, data.get("server", {}), ("server",), problems)
    clock = read_table(NodeClockTable, data.get("clock", {}), ("clock",), problems)
    operators = check_operators(data.get("operators", {}), ("operators",), problems)
    web = check_web(data["web"], ("web",), problems) if "web" in data else None
    if agent is not None:
        if "@" not in agent.jid.strip("@"):
            problems.error(("agent", "jid"), f"a JID, node@domain, got {show(agent.jid)}")
        if agent.password is None and agent.password_file is None:
            problems.error(("agent",), "password or password_file is required")
    if clock is not None and clock.kind == "accelerated" and clock.start is None:
        problems.error(("clock", "start"), "required with kind = \"accelerated\"")
    roles = [r for r in ROLES if r in data]
    if len(roles) != 1:
        problems.error((roles[1],) if roles else ("agent",), "a node runs one role: one table of [prosumer], "
                       f"[aggregator], [market] or [dso], not {len(roles)}")
        return None
    role = roles[0]
    # deny by default: who may take part is written down, "open" only when meant
    who = {"aggregator": ("enrolment", "the prosumer JIDs that may send offers"),
           "market": ("registration", "the participant JIDs that may register"),
           "dso": ("aggregators", "the aggregator JIDs behind its congestion points (JID = [points])")}.get(role)
    if who is not None and isinstance(data[role], dict) and who[0] not in data[role]:
        problems.error((role, who[0]), f"required: {who[1]} (a list), or \"open\" to let anyone who has an "
                                       "account on the server take part")
    config = _role(role, data[role], agent.jid if agent is not None else "node@localhost", problems)
    if None in (agent, server, clock, config, operators) or problems.errors:
        return None
    return Node(role, agent, server, clock, config, operators, web)


def check_node(data: dict, text: str) -> list[Problem]:
    """Every problem of a parsed node config (``text``: the file's text, for the lines)."""
    problems = Problems(KeyLines(text))
    read_node(data, problems)
    return problems.items


def _role(role: str, table: Any, jid: str, problems: Problems) -> Optional[Any]:
    at: KeyPath = (role,)
    if role == "prosumer":
        prosumer = read_table(ProsumerTable, table, at, problems)
        if prosumer is not None and not _devices(prosumer, at, problems):
            return None
        return prosumer
    if role == "market":
        from vmenergy.protocol.market import MarketConfig

        return check_market(check_keys(MarketConfig, table, at, problems), at, problems, jid)
    if role == "dso":
        from vmenergy.protocol.dso import DsoConfig

        return check_dso(check_keys(DsoConfig, table, at, problems), at, problems, jid)
    from vmenergy.protocol.aggregator import AggregatorConfig

    return check_aggregator(check_keys(AggregatorConfig, table, at, problems), at, problems, jid)


def _devices(p: ProsumerTable, at: KeyPath, problems: Problems) -> bool:
    """Check a box's devices, owner settings and inputs table (files are not looked up: they are
    on the box)."""
    from vmenergy.devices.models import OwnerSettings
    from vmenergy.devices.population import check_params, device_specs_problems

    from .devices import InputsTable

    errors = len(problems.errors)
    for path, reason in device_specs_problems(list(p.devices)):
        problems.error(at + ("devices",) + path, reason)
    for path, reason in check_params(OwnerSettings, p.owner, ranges=False):
        problems.error(at + ("owner",) + path, reason)
    read_table(InputsTable, p.inputs, at + ("inputs",), problems)
    _hardware(p, at, problems)
    return len(problems.errors) == errors


def _hardware(p: ProsumerTable, at: KeyPath, problems: Problems) -> None:
    """Check the hardware entries; maps and protocols are looked up when they are shipped ones
    (a map file names a place on the box)."""
    from vmenergy.devices.adapters.config import HardwareConfig, read_hardware
    from vmenergy.devices.adapters.registers import MapError

    def where(path: str) -> KeyPath:
        out: list = []
        for part in path.replace("]", "").split("."):
            name, _, index = part.partition("[")
            out.append(name)
            if index:
                out.append(int(index))
        return at + tuple(out)

    try:
        configs = [HardwareConfig.from_dict(e, f"hardware[{i}]") for i, e in enumerate(p.hardware)]
        if all("/" not in (c.map or c.protocol or "") and not (c.map or c.protocol or "").endswith(".toml")
               for c in configs):
            read_hardware(list(p.hardware))
        models = [d.get("id") for d in p.devices if isinstance(d, dict)]
        for i, c in enumerate(configs):
            if c.drives is not None and c.drives not in models:
                raise MapError(f"hardware[{i}].drives", f"no device {c.drives!r} in [[prosumer.devices]] "
                                                        f"(ids: {', '.join(map(str, models)) or 'none'})")
    except MapError as exc:
        problems.error(where(exc.path), exc.reason)
