"""The typed scenario: a TOML scenario file parsed once into frozen dataclasses, fully checked.

Each table has its own schema: the ``[scenario]``, ``[server]`` and ``[[prosumers]]`` tables are
the dataclasses below (read by :mod:`.tables`); the ``[market]`` and ``[[aggregator]]`` tables
are the agents' own config classes (``MarketConfig``, ``AggregatorConfig`` with its aggregation
parameters, contract and objective), checked by building them and their engines exactly as an
agent does, so a setting that would stop an agent stops the check instead. Then the rules
between tables: names unique, groups name existing aggregators, parents exist and form a tree,
offer templates exist and parse.

:func:`read_scenario` gives the model (None if there are errors) and adds every problem found.
Nothing here starts a server, creates a folder or opens a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping, Optional

from vmenergy.flexoffer import FlexOffer, FlexOfferError
from vmenergy.runtime.documents import read_document

from .configs import check_aggregator, check_dso, check_market, check_operators
from .devices import InputsTable, check_devices, read_inputs
from .locate import KeyPath
from .problems import Problem, Problems, format_path, suggest
from .tables import Instant, check_keys, limits, read_table, show

__all__ = [
    "ScenarioTable", "ServerTable", "Market", "Aggregator", "Dso", "ProsumerGroup", "OperatorsTable", "Scenario",
    "read_scenario", "SECTIONS", "InputsTable",
]

ROOT = Path(__file__).resolve().parents[3]
DAY = 86400

#: The tables a scenario file may have.
SECTIONS = ("scenario", "server", "inputs", "market", "aggregator", "dso", "prosumers", "operators", "web")

# An agent's name is the node of its JID and the name of its store file, a scenario's names its
# run folder: keep them to characters that are safe in all three (agent names are compared
# case-insensitively, as servers compare JIDs).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\Z")


#: The names of the nodes of a cluster the run starts itself (``[server] nodes = N``).
NODE_NAMES = tuple("abcdefghijklmnopqrstuvwxyz")

#: Most prosumers in one ``[[prosumers]]`` group (a scale run has 10^5-10^6 in all).
MAX_GROUP = 1_000_000
#: Households one FOA fronts at most: all of them are simulated in its agent's process.
MAX_HOUSEHOLDS = 100_000


@dataclass(frozen=True)
class ScenarioTable:
    """``[scenario]``. ``clock``: ``virtual`` (scenario time advances when every agent is idle
    and no message is in flight: same results on any machine) or ``accelerated`` (scenario time
    is the wall clock times ``speed``: for demos that should look live)."""

    start: Instant
    until: Instant
    name: str = "scenario"
    clock: Literal["virtual", "accelerated"] = "virtual"
    speed: float = field(default=600.0, metadata=limits(gt=0))
    seed: int = 0
    #: every agent sends SPADE's metadata form with each protocol message, for third-party SPADE
    #: agents that route by templates (docs/protocol.md section 7); VME's agents do not need it
    spade_metadata: bool = False


@dataclass(frozen=True)
class ClusterNode:
    """One node of a cluster: ``[server.nodes.NAME]`` of a standing cluster (``host``, ``port``,
    ``ca_file`` if its certificate is not signed by a public CA), or one node of the cluster the
    run starts itself (``nodes = N``: named a, b, c, ...; its address is known once it runs)."""

    host: Optional[str] = None
    port: int = field(default=5222, metadata=limits(ge=1, le=65535))
    ca_file: Optional[str] = None
    name: str = field(default="a", metadata={"derived": True})

    def address(self) -> dict:
        """Where a part on this node connects (the server table's ``parts`` form)."""
        return {"host": self.host, "port": self.port, "ca_file": self.ca_file}


@dataclass(frozen=True)
class ServerTable:
    """``[server]``. ``kind``: a private server VME starts for the run (``prosody``,
    ``ejabberd``, ``embedded``) or a standing one (``external``: ``host``, ``port``,
    ``ca_file`` if its certificate is not signed by a public CA, and ``accounts``: ``register``
    to create them in-band, or the path of an accounts file). Paths are resolved against the
    scenario's folder.

    A cluster (docs/scaling.md): ``nodes = N`` with ``kind = "ejabberd"`` is a private cluster of
    N nodes the run starts itself (nodes named a, b, ...); ``[server.nodes.NAME]`` tables (each
    ``host``, ``port``, ``ca_file``) with ``kind = "external"`` name the nodes of a standing
    one. The ``[market]``, each ``[[aggregator]]``, ``[[dso]]`` and ``[[prosumers]]`` group may
    then say which node its agents connect to (``node = "b"``; default: the first node)."""

    kind: Literal["prosody", "ejabberd", "embedded", "external"] = "prosody"
    domain: str = "localhost"
    host: Optional[str] = None
    port: Optional[int] = field(default=None, metadata=limits(ge=1, le=65535))
    ca_file: Optional[str] = None
    accounts: Optional[str] = None
    #: The nodes of a cluster (``nodes = N`` or ``[server.nodes.NAME]`` tables), first = default;
    #: empty for a single server. Read by :meth:`_Reader._server`, not by the table reader.
    cluster: tuple[ClusterNode, ...] = field(default=(), metadata={"derived": True})

    def as_plan(self) -> dict:
        """The ``Plan.server`` form: only what is set (a standing cluster's first node is the
        server the run probes and records; the nodes are the plan's ``server["nodes"]``)."""
        plan = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "cluster" and getattr(self, f.name) is not None}
        if self.cluster and self.kind == "external":
            first = self.cluster[0]
            plan.update(host=first.host, port=first.port, **({"ca_file": first.ca_file} if first.ca_file else {}))
        return plan

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.cluster)

    def node_of(self, node: Optional[str]) -> Optional[str]:
        """The node a part connects to: the one it names, else the cluster's first (None: no cluster)."""
        return node if node is not None else (self.cluster[0].name if self.cluster else None)


@dataclass(frozen=True)
class Market:
    """``[market]``: the market agent's name and its config, as the market agent reads it.
    ``settings`` is the table as written (what the plan hands to the market's process)."""

    name: str
    config: Any  # vmenergy.protocol.market.MarketConfig
    settings: Mapping[str, Any] = field(default_factory=dict)
    node: Optional[str] = None  # the cluster node it connects to (None: the first)


@dataclass(frozen=True)
class Aggregator:
    """One ``[[aggregator]]``: its name, where it runs, its parent (``upstream = "parent"``) and
    its config as the aggregator agent reads it (``upstream_jid`` filled in from ``upstream``
    and ``parent``). ``settings`` is that config as a table (what the plan carries)."""

    name: str
    config: Any  # vmenergy.protocol.aggregator.AggregatorConfig
    settings: Mapping[str, Any] = field(default_factory=dict)
    parent: Optional[str] = None
    part: str = "aggregators"
    node: Optional[str] = None  # the cluster node it connects to (None: the first)


@dataclass(frozen=True)
class Dso:
    """One ``[[dso]]``: its name and its config as the DSO agent reads it (``aggregators`` filled
    in from the prosumer groups behind its points). ``settings`` is that config as a table."""

    name: str
    config: Any  # vmenergy.protocol.dso.DsoConfig
    settings: Mapping[str, Any] = field(default_factory=dict)
    node: Optional[str] = None  # the cluster node it connects to (None: the first)

    def points(self) -> tuple[str, ...]:
        return tuple(self.config.points)


@dataclass(frozen=True)
class AggregatorPlace:
    """The keys of ``[[aggregator]]`` that are the scenario's, not the aggregator config's:
    ``part`` (the process it runs in; default ``aggregators``, or ``aggregators-NODE`` for
    aggregators on another cluster node than the first) and ``node``."""

    name: str
    parent: Optional[str] = None
    part: Optional[str] = None
    node: Optional[str] = None


@dataclass(frozen=True)
class ProsumerGroup:
    """One ``[[prosumers]]`` group: ``count`` prosumers named by ``name`` (``{i}``: index in the
    group, ``{g}``: index of the group), served by ``aggregator``, spread over ``processes``
    processes. Their offers come from templates and/or device models:

    - ``offers``: offer templates each prosumer sends (varied: energy bounds scaled by up to
      ``energy_spread``, window moved up to ``start_jitter`` intervals later); ``templates`` are
      the parsed offers (filled in by the check);
    - ``devices``: the chance that a prosumer has each device kind (docs/devices.md), with
      per-kind parameter tables (``[prosumers.ev]``, values a number or a ``[low, high]`` range,
      kept in ``device_tables`` by the check) and the owner's settings (``owner``); the FOA
      offers every day at ``offer_time`` (local hours), ``offer_lead`` seconds ahead, in slices
      of ``slice_minutes``; ``households``: how many households each prosumer's FOA fronts
      (default 1), each drawn from the mix with its own seed and owner (one agent for a building,
      a street, a community: a million devices in a few hundred agents), its offers per device.

    ``deviation``: the relative noise of the metering. ``trading``: the prosumers also trade
    their assigned schedules peer to peer in the scenario's two-sided ``[market]``, priced by
    these trading settings (``energy_value``, ``energy_cost``, ``margin``: docs/market.md).
    ``hardware``: ``modbus-tcp`` or ``modbus-rtu`` runs the devices' schedules on emulated Modbus
    devices (the models' physics behind a Modbus server per prosumer, driven by the box's
    hardware executor) instead of simulating them directly; ``none`` (default).
    ``congestion_point``: the point of a ``[[dso]]`` the group's prosumers are behind (their
    aggregator then answers that DSO's flex requests for them). ``node``: the node of the
    ``[server]`` cluster its prosumers connect to (default: the first). ``shard``: in a sharded
    run (``vmenergy run --shard k/n``), the one shard that runs all of the group's ``processes``
    (default: every shard runs ``processes`` of them), so a machine's prosumers can use the node
    nearest to it; a run with fewer shards than that is refused."""

    # bounded: the check draws every prosumer's devices, and ``count = 2**64`` took all memory
    count: int = field(metadata=limits(ge=1, le=MAX_GROUP))
    aggregator: str
    offers: tuple[str, ...] = ()
    name: str = "g{g}-house{i}"
    processes: int = field(default=1, metadata=limits(ge=1))
    energy_spread: float = field(default=0.2, metadata=limits(ge=0, lt=1))
    start_jitter: int = field(default=4, metadata=limits(ge=0))
    deviation: float = field(default=0.02, metadata=limits(ge=0, lt=1))
    devices: dict = field(default_factory=dict)
    owner: dict = field(default_factory=dict)
    offer_time: float = field(default=12.0, metadata=limits(ge=0, lt=24))
    offer_lead: int = field(default=3600, metadata=limits(ge=0))
    slice_minutes: int = field(default=60, metadata=limits(ge=1))
    households: int = field(default=1, metadata=limits(ge=1, le=MAX_HOUSEHOLDS))
    congestion_point: Optional[str] = None
    trading: dict = field(default_factory=dict)
    hardware: Literal["none", "modbus-tcp", "modbus-rtu"] = "none"
    node: Optional[str] = None
    shard: Optional[int] = field(default=None, metadata=limits(ge=1))
    templates: tuple[FlexOffer, ...] = field(default=(), metadata={"derived": True})
    device_tables: Mapping[str, Any] = field(default_factory=dict, metadata={"derived": True})

    def member(self, i: int, g: int) -> str:
        return self.name.format(i=i, g=g)

    @property
    def has_devices(self) -> bool:
        # only numbers count (the check reports anything else under its key, e.g. a table
        # written under [prosumers.devices] by mistake, which raised TypeError here)
        return any(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in self.devices.values())


@dataclass(frozen=True)
class OperatorsTable:
    """``[operators]``: who may read (``viewers``) and steer (``controllers``) every agent of the
    run, as bare JIDs; ``account``: the name of an operator account the run creates on its server
    (a controller; its JID and password are printed when the run starts). ``access`` is the
    agents' access list (the account among the controllers), filled in by the check."""

    controllers: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()
    account: Optional[str] = None
    access: Any = field(default=None, metadata={"derived": True})  # vmenergy.protocol.operators.Operators


@dataclass(frozen=True)
class WebTable:
    """``[web]``: the agents of these ``roles`` serve their console and REST interface
    (docs/web.md) on ``host``, from ``port`` on (one port each, in the order the agents are
    listed; 0: any free port, written in the agent's log). The run issues a token for every
    operator (``[operators]``) and writes them to ``web-tokens.txt`` in the run directory."""

    roles: tuple[str, ...] = ("aggregator", "market")
    host: str = "127.0.0.1"
    port: int = field(default=0, metadata=limits(ge=0, le=65535))


@dataclass(frozen=True)
class Scenario:
    """A checked scenario. ``source``: the file it came from; ``warnings``: problems that do not
    stop a run (the check prints them)."""

    scenario: ScenarioTable
    server: ServerTable
    market: Optional[Market]
    aggregators: tuple[Aggregator, ...]
    prosumers: tuple[ProsumerGroup, ...]
    source: str = ""
    warnings: tuple[Problem, ...] = ()
    inputs: Optional[InputsTable] = None
    operators: OperatorsTable = OperatorsTable()
    dsos: tuple[Dso, ...] = ()
    web: Optional[WebTable] = None

    @property
    def name(self) -> str:
        return self.scenario.name

    def jid(self, name: str) -> str:
        return f"{name}@{self.server.domain}"


def read_scenario(data: dict, problems: Problems, *, base_dir: Path, source: str = "") -> Optional[Scenario]:
    """The scenario a parsed file describes, or None (every problem added to ``problems``);
    relative paths in it are resolved against ``base_dir``."""
    scenario = _Reader(data, problems, Path(base_dir), source).read()
    return scenario if not problems.errors else None


# -- reading --------------------------------------------------------------------------------
class _Reader:
    """Reads one parsed file into a :class:`Scenario`, adding every problem to ``problems``."""

    def __init__(self, data: dict, problems: Problems, base_dir: Path, source: str) -> None:
        self.data, self.p, self.base_dir, self.source = data, problems, base_dir, source
        self.aggregator_names: dict[str, int] = {}
        self.server: Optional[ServerTable] = None

    def read(self) -> Optional[Scenario]:
        data, p = self.data, self.p
        for key in data:
            if key not in SECTIONS:
                p.unknown_key((key,), SECTIONS, "table")
        settings = self._scenario()
        server = self.server = self._server()
        domain = server.domain if server is not None else "localhost"
        market = self._market(domain) if "market" in data else None
        aggregators = self._aggregators(domain, has_market="market" in data)
        groups = self._prosumers(set(self.aggregator_names), market)
        dsos = self._dsos(domain, groups)
        operators = self._operators(server)
        self._unique_names(market, aggregators, groups, operators, dsos)
        inputs = self._inputs(settings, groups)
        web = self._web() if "web" in data else None
        if settings is None or server is None or None in aggregators or None in groups or (
                "market" in data and market is None) or operators is None or None in dsos or self.p.errors:
            return None
        return Scenario(settings, server, market, tuple(aggregators), tuple(groups), self.source,
                        tuple(p.warnings), inputs, operators, tuple(dsos), web)  # type: ignore[arg-type]

    # [[dso]] ------------------------------------------------------------------------------
    def _dsos(self, domain: str, groups: list) -> list[Optional[Dso]]:
        """The DSOs, each told which aggregators have prosumers behind which of its points (from
        the groups' ``congestion_point``); every group's point must be some DSO's."""
        from vmenergy.protocol.dso import DsoConfig

        if "dso" not in self.data:
            for g, group in enumerate(groups):
                if group is not None and group.congestion_point is not None:
                    self.p.error(("prosumers", g, "congestion_point"), "the scenario has no [[dso]] table")
            return []
        out: list[Optional[Dso]] = []
        owner: dict[str, str] = {}
        for i, table in enumerate(self._array_of_tables("dso")):
            at: KeyPath = ("dso", i)
            name = table.get("name", "dso")
            named = self._agent_name(name, at + ("name",))
            node = self._node_key(table, at)
            written = {k: v for k, v in table.items() if k not in ("name", "node")}
            if written.pop("aggregators", None) is not None:
                self.p.error(at + ("aggregators",), "set by the scenario from the prosumer groups' congestion_point; "
                                                    "leave it out")
            settings = check_keys(DsoConfig, written, at, self.p, also=("name", "node"), exclude=("aggregators",))
            points = settings.get("points") if isinstance(settings.get("points"), dict) else {}
            for point in points:
                if point in owner:
                    self.p.error(at + ("points", point), f"congestion point {point} is also dso {show(owner[point])}'s")
                owner.setdefault(point, name)
            behind: dict[str, list[str]] = {}
            for group in groups:
                if group is not None and group.congestion_point in points:
                    served = behind.setdefault(f"{group.aggregator}@{domain}", [])
                    if group.congestion_point not in served:
                        served.append(group.congestion_point)
            settings["aggregators"] = {k: sorted(v) for k, v in sorted(behind.items())}
            config = check_dso(settings, at, self.p, f"{name}@{domain}")
            out.append(Dso(name, config, MappingProxyType(settings), node or None)
                       if config is not None and named and node is not False else None)
        for g, group in enumerate(groups):
            if group is not None and group.congestion_point is not None and group.congestion_point not in owner:
                self.p.error(("prosumers", g, "congestion_point"),
                             f"no [[dso]] has a congestion point named {show(group.congestion_point)}",
                             suggest(group.congestion_point, owner))
        return out

    # [web] --------------------------------------------------------------------------------
    def _web(self) -> Optional[WebTable]:
        at: KeyPath = ("web",)
        table = read_table(WebTable, self.data["web"], at, self.p)
        if table is None:
            return None
        for i, role in enumerate(table.roles):
            if role not in ("aggregator", "market"):
                self.p.error(at + ("roles", i), f"\"aggregator\" or \"market\" (their agents serve a console), "
                                                f"got {show(role)}")
        from vmenergy.agents.web.config import WebConfig

        try:
            WebConfig(host=table.host)
        except FlexOfferError as exc:
            self.p.error(at + (exc.path,), exc.reason)
        return table

    # [inputs] -----------------------------------------------------------------------------
    def _inputs(self, settings: Optional[ScenarioTable], groups: list) -> Optional[InputsTable]:
        """The devices' inputs; their series must cover the scenario's days (offers look a day
        ahead, and the models compute whole days)."""
        uses = any(g is not None and g.has_devices for g in groups)
        if "inputs" not in self.data:
            return InputsTable() if uses else None
        if not uses and all(g is not None for g in groups):
            self.p.warn(("inputs",), "no group has devices; the inputs are not used")
        span = None
        if settings is not None:
            span = (settings.start - settings.start % DAY, settings.until - settings.until % DAY + DAY)
        return read_inputs(self.data["inputs"], ("inputs",), self.p, self.find, span)

    def _array_of_tables(self, key: str) -> list:
        value = self.data.get(key)
        if value is None:
            self.p.error((key,), f"required: at least one [[{key}]] table")
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.p.error((key,), f"must be an array of tables, written [[{key}]], got {show(value)}")
            return []
        if not value:
            self.p.error((key,), f"at least one [[{key}]] table")
        return value

    # [scenario] ---------------------------------------------------------------------------
    def _scenario(self) -> Optional[ScenarioTable]:
        if "scenario" not in self.data:
            self.p.error(("scenario",), "required: a [scenario] table with start and until")
            return None
        table = self.data["scenario"]
        s = read_table(ScenarioTable, table, ("scenario",), self.p)
        if s is None:
            return None
        if not _NAME.match(s.name):
            self.p.error(("scenario", "name"), "1-64 letters, digits and ._- (it names the run folder), "
                                               f"starting with a letter or digit, got {show(s.name)}")
        if s.until <= s.start:
            self.p.error(("scenario", "until"), "must be after scenario.start")
        if "speed" in table and s.clock == "virtual":
            self.p.warn(("scenario", "speed"), "has no effect with clock = \"virtual\" (scenario time "
                                               "advances as fast as the agents go); it applies to \"accelerated\"")
        return s

    # [server] -----------------------------------------------------------------------------
    def _server(self) -> Optional[ServerTable]:
        at: KeyPath = ("server",)
        table = self.data.get("server", {})
        nodes = table.get("nodes") if isinstance(table, dict) else None
        s = read_table(ServerTable, {k: v for k, v in table.items() if k != "nodes"} if isinstance(table, dict)
                       else table, at, self.p)
        if s is None:
            return None
        if not _DOMAIN.match(s.domain):
            self.p.error(at + ("domain",), f"not a domain name: {show(s.domain)}")
        if nodes is not None:
            return self._cluster(s, nodes)
        standing_only = ("host", "port", "ca_file", "accounts")
        if s.kind != "external":
            for key in standing_only:
                if getattr(s, key) is not None:
                    self.p.warn(at + (key,), f"has no effect with kind = {show(s.kind)} (VME starts a "
                                             "private server); it applies to kind = \"external\"")
            return s
        if s.host is None:
            self.p.error(at + ("host",), "required with kind = \"external\"")
        ca_file = s.ca_file and self._existing(s.ca_file, at + ("ca_file",), "CA file")
        accounts = s.accounts or "register"
        if accounts != "register":
            accounts = self._existing(accounts, at + ("accounts",), "accounts file")
        return replace(s, port=s.port or 5222, ca_file=ca_file or None, accounts=accounts)

    def _cluster(self, s: ServerTable, nodes: Any) -> Optional[ServerTable]:
        """``nodes = N``: a private ejabberd cluster the run starts (nodes a, b, ...);
        ``[server.nodes.NAME]`` tables: the nodes of a standing cluster, in the order written."""
        at: KeyPath = ("server", "nodes")
        if isinstance(nodes, int) and not isinstance(nodes, bool):
            if s.kind != "ejabberd":
                self.p.error(at, f"a cluster the run starts is of ejabberd nodes: set kind = \"ejabberd\" (got "
                                 f"{show(s.kind)}), or name a standing cluster's nodes in [server.nodes.NAME] "
                                 "tables with kind = \"external\"")
                return None
            if not 1 <= nodes <= len(NODE_NAMES):
                self.p.error(at, f"must be 1 to {len(NODE_NAMES)} nodes, got {nodes}")
                return None
            for key in ("host", "port", "ca_file", "accounts"):
                if getattr(s, key) is not None:
                    self.p.warn(("server", key), "has no effect with kind = \"ejabberd\" (VME starts a private "
                                                 "cluster); it applies to kind = \"external\"")
            return replace(s, host=None, port=None, ca_file=None, accounts=None,
                           cluster=tuple(ClusterNode(name=NODE_NAMES[i]) for i in range(nodes)))
        if not isinstance(nodes, dict):
            self.p.error(at, f"the number of nodes of a cluster the run starts (nodes = 2), or one table per "
                             f"node of a standing cluster ([server.nodes.a]), got {show(nodes)}")
            return None
        if s.kind != "external":
            self.p.error(at, f"named nodes are a standing cluster's: set kind = \"external\" (got {show(s.kind)}), "
                             "or start a private ejabberd cluster with nodes = N")
            return None
        if not nodes:
            self.p.error(at, "at least one [server.nodes.NAME] table")
            return None
        for key in ("host", "port", "ca_file"):
            if getattr(s, key) is not None:
                self.p.error(("server", key), "give each node its own in [server.nodes.NAME] (the cluster's "
                                              "first node is the default)")
        cluster = []
        for name, table in nodes.items():
            if not _NAME.match(name):
                self.p.error(at + (name,), "a node name is 1-64 letters, digits and ._- starting with a letter "
                                           f"or digit, got {show(name)}")
                continue
            node = read_table(ClusterNode, table, at + (name,), self.p)
            if node is None:
                continue
            if node.host is None:
                self.p.error(at + (name, "host"), "required: the node's host name or address")
                continue
            ca_file = node.ca_file and self._existing(node.ca_file, at + (name, "ca_file"), "CA file")
            cluster.append(replace(node, name=name, ca_file=ca_file or None))
        accounts = s.accounts or "register"
        if accounts != "register":
            accounts = self._existing(accounts, ("server", "accounts"), "accounts file")
        if len(cluster) < len(nodes):
            return None
        return replace(s, accounts=accounts, cluster=tuple(cluster))

    def _node_key(self, table: dict, at: KeyPath) -> Optional[str] | bool:
        """The ``node`` key of a table the agents' config classes read (``[market]``, ``[[dso]]``):
        its node, None when not given, False when wrong (reported)."""
        node = table.get("node")
        if node is None:
            return None
        if not isinstance(node, str):
            self.p.error(at + ("node",), f"must be a string, got {show(node)}")
            return False
        return node if self._node(node, at + ("node",)) else False

    def _node(self, node: Optional[str], at: KeyPath) -> bool:
        """A part's ``node``: one of the cluster's (a scenario without a cluster has no nodes)."""
        server = self.server
        if node is None or server is None:
            return True
        if not server.cluster:
            self.p.error(at, f"names node {show(node)}, but the [server] is not a cluster (give it nodes = N "
                             "with kind = \"ejabberd\", or [server.nodes.NAME] tables with kind = \"external\")")
            return False
        if node not in server.node_names:
            self.p.error(at, f"no node named {show(node)} in the [server] cluster (its nodes: "
                             f"{', '.join(server.node_names)})", suggest(node, server.node_names))
            return False
        return True

    def _existing(self, name: str, at: KeyPath, what: str) -> Optional[str]:
        path = Path(name) if Path(name).is_absolute() else self.base_dir / name
        if not path.is_file():
            self.p.error(at, f"{what} not found: {path}")
            return None
        return str(path)

    # [market] -----------------------------------------------------------------------------
    def _market(self, domain: str) -> Optional[Market]:
        from vmenergy.protocol.market import MarketConfig

        at: KeyPath = ("market",)
        table = self.data["market"]
        if not isinstance(table, dict):
            self.p.error(at, f"must be a table, written [market], got {show(table)}")
            return None
        name = table.get("name", "market")
        named = self._agent_name(name, at + ("name",))
        node = self._node_key(table, at)
        written = {k: v for k, v in table.items() if k not in ("name", "node")}
        settings = check_keys(MarketConfig, written, at, self.p, also=("name", "node"))
        config = check_market(settings, at, self.p, f"{name}@{domain}")
        if config is None or not named or node is False:
            return None
        return Market(name, config, MappingProxyType(settings), node)

    # [[aggregator]] -----------------------------------------------------------------------
    def _aggregators(self, domain: str, has_market: bool) -> list[Optional[Aggregator]]:
        tables = self._array_of_tables("aggregator")
        own = {f.name for f in fields(AggregatorPlace)}
        places: list[Optional[AggregatorPlace]] = []
        for i, table in enumerate(tables):
            at: KeyPath = ("aggregator", i)
            place = read_table(AggregatorPlace, {k: v for k, v in table.items() if k in own}, at, self.p)
            if place is not None and not self._agent_name(place.name, at + ("name",)):
                place = None
            if place is not None and not self._node(place.node, at + ("node",)):
                place = None
            places.append(place)
        self._parts(places)
        self.aggregator_names = {pl.name: i for i, pl in enumerate(places) if pl is not None}
        market = self.data.get("market")
        market_name = market.get("name", "market") if isinstance(market, dict) else "market"
        out: list[Optional[Aggregator]] = []
        for i, (table, place) in enumerate(zip(tables, places)):
            at = ("aggregator", i)
            out.append(self._aggregator(at, table, place, own, domain, market_name if has_market else None))
        self._tree(places, tables)
        return out

    def _aggregator(self, at: KeyPath, table: dict, place: Optional[AggregatorPlace], own: set[str], domain: str,
                    market: Optional[str]) -> Optional[Aggregator]:
        from vmenergy.protocol.aggregator import AggregatorConfig

        errors = len(self.p.errors)
        written = {k: v for k, v in table.items() if k not in own}
        if written.pop("upstream_jid", None) is not None:
            self.p.error(at + ("upstream_jid",), "set by the scenario from upstream (and parent); leave it out")
        settings = check_keys(AggregatorConfig, written, at, self.p, also=own, exclude=("upstream_jid",))
        upstream = settings.setdefault("upstream", "plan" if market is None else "market")
        if upstream == "market":
            if market is None:
                self.p.error(at + ("upstream",), "market, but the scenario has no [market] table")
            settings["upstream_jid"] = f"{market or 'market'}@{domain}"
        elif upstream == "parent":
            if place is not None:
                self._parent(at, place)
            # a wrong parent is reported above; a stand-in lets the rest of the table be checked
            parent = table.get("parent")
            settings["upstream_jid"] = f"{parent if isinstance(parent, str) else 'parent'}@{domain}"
        if place is not None and place.parent is not None and upstream != "parent":
            self.p.warn(at + ("parent",), f"has no effect with upstream = {show(upstream)}; "
                                          "it applies to upstream = \"parent\"")
        name = place.name if place is not None else "aggregator"
        config = check_aggregator(settings, at, self.p, f"{name}@{domain}")
        if place is None or config is None or len(self.p.errors) > errors:
            return None
        return Aggregator(place.name, config, MappingProxyType(settings), place.parent, place.part or "aggregators",
                          place.node)

    def _parts(self, places: list[Optional[AggregatorPlace]]) -> None:
        """Each aggregator's process: the one it names, else ``aggregators`` on the cluster's
        first node and ``aggregators-NODE`` on another; a process connects to one node, so the
        aggregators that share a part must share a node."""
        server = self.server
        first = server.node_of(None) if server is not None else None
        node_of_part: dict[str, tuple[Optional[str], int]] = {}
        for i, place in enumerate(places):
            if place is None:
                continue
            node = server.node_of(place.node) if server is not None else None
            if place.part is None:
                place = places[i] = replace(place, part="aggregators" if node == first else f"aggregators-{node}")
            seen = node_of_part.setdefault(place.part, (node, i))
            if seen[0] != node:
                self.p.error(("aggregator", i, "node"), f"{show(node)}, but part {show(place.part)} also runs "
                                                        f"aggregator[{seen[1]}] on node {show(seen[0])} (a process "
                                                        "connects to one node: give it another part)")

    def _parent(self, at: KeyPath, place: AggregatorPlace) -> None:
        at = at + ("parent",)
        names = self.aggregator_names
        if place.parent is None:
            self.p.error(at, "required with upstream = \"parent\": the name of the parent aggregator")
        elif place.parent == place.name:
            self.p.error(at, "an aggregator cannot be its own parent")
        elif place.parent not in names:
            self.p.error(at, f"no aggregator named {show(place.parent)}", suggest(place.parent, names))

    def _tree(self, places: list[Optional[AggregatorPlace]], tables: list[dict]) -> None:
        """Parents must form a tree: following parents from any aggregator ends at a root."""
        parent_of = {pl.name: pl.parent for pl, t in zip(places, tables)
                     if pl is not None and t.get("upstream") == "parent" and pl.parent not in (None, pl.name)}
        index = {pl.name: i for i, pl in enumerate(places) if pl is not None}
        reported: set[str] = set()
        for start in parent_of:
            seen = [start]
            node = parent_of.get(start)
            while node is not None and node not in seen:
                seen.append(node)
                node = parent_of.get(node)
            if node is not None and node not in reported:
                loop = seen[seen.index(node):]
                reported.update(loop)
                self.p.error(("aggregator", index[node], "parent"),
                             "parents form a loop: " + " -> ".join(loop + [node]) + " (they must form a tree)")

    # [[prosumers]] ------------------------------------------------------------------------
    def _prosumers(self, aggregators: set[str], market: Optional[Market]) -> list[Optional[ProsumerGroup]]:
        from vmenergy.devices.models import KINDS
        from vmenergy.protocol.trading import TradingSettings

        out: list[Optional[ProsumerGroup]] = []
        for g, table in enumerate(self._array_of_tables("prosumers")):
            at: KeyPath = ("prosumers", g)
            # a table named for a device kind holds that kind's parameters
            kinds = {k: v for k, v in table.items() if k in KINDS}
            group = read_table(ProsumerGroup, {k: v for k, v in table.items() if k not in KINDS}, at, self.p)
            if group is None:
                out.append(None)
                continue
            ok = self._pattern(group, g, at + ("name",))
            ok = self._node(group.node, at + ("node",)) and ok
            if group.aggregator not in aggregators:
                self.p.error(at + ("aggregator",), f"no aggregator named {show(group.aggregator)}",
                             suggest(group.aggregator, aggregators))
                ok = False
            ok = check_devices(group.devices, kinds, group.owner, at, self.p) and ok
            if group.trading:
                try:
                    TradingSettings.from_dict(group.trading)
                except FlexOfferError as exc:
                    self.p.error(at + tuple(exc.path.split(".")), exc.reason)
                    ok = False
                if "market" not in self.data:
                    self.p.error(at + ("trading",),
                                 "prosumers trade peer to peer in the scenario's [market]: it has none")
                    ok = False
                elif market is not None and market.config.mechanism != "two-sided":
                    self.p.error(at + ("trading",), f"prosumers trade peer to peer in a two-sided pool; the [market] "
                                                    f"is {market.config.mechanism}")
                    ok = False
            if not group.offers and not group.has_devices:
                self.p.error(at + ("offers",), "a group needs offer templates (offers) or devices (devices = "
                                               "{ ev = 0.5, ... }), or both")
                ok = False
            if group.households > 1 and not group.has_devices:
                self.p.error(at + ("households",), "households are drawn from the device mix: give the group devices "
                                                   "(devices = { heat_pump = 1.0, ... })")
                ok = False
            if group.households > 1 and group.hardware != "none":
                self.p.error(at + ("hardware",), "emulated hardware runs one household per prosumer: "
                                                 "households must be 1")
                ok = False
            if group.hardware != "none" and not group.has_devices:
                self.p.error(at + ("hardware",), "emulated hardware runs device models: give the group devices "
                                                 "(devices = { heat_pump = 1.0, ... })")
                ok = False
            templates = [self._template(name, at + ("offers", k)) for k, name in enumerate(group.offers)]
            if not ok or None in templates:
                out.append(None)
                continue
            if group.processes > group.count:
                self.p.warn(at + ("processes",), f"{group.processes} processes for {group.count} prosumers: "
                                                 f"only {group.count} are used")
            out.append(replace(group, templates=tuple(templates), device_tables=MappingProxyType(kinds)))
        return out

    def _pattern(self, group: ProsumerGroup, g: int, at: KeyPath) -> bool:
        try:
            first, last = group.member(0, g), group.member(group.count - 1, g)
        except (KeyError, IndexError, ValueError) as exc:
            self.p.error(at, f"{show(group.name)} is not a name pattern ({exc}); placeholders are {{i}} and {{g}}")
            return False
        if group.count > 1 and first == last:
            self.p.error(at, f"{show(group.name)} gives every prosumer the same name: put {{i}} in it")
            return False
        return self._agent_name(first, at) and self._agent_name(last, at)

    def _template(self, name: str, at: KeyPath) -> Optional[FlexOffer]:
        """An offer template: a JSON or XML flex-offer file, found relative to the scenario, the
        project root or ``scenarios/``."""
        found, looked = self.find(name)
        if found is None:
            self.p.error(at, f"offer template not found (looked in {looked})")
            return None
        try:
            offers = [x for x in read_document(found) if isinstance(x, FlexOffer)]
        except FlexOfferError as exc:
            self.p.error(at, f"{found}: not a valid flex-offer: {exc}")
            return None
        if not offers:
            self.p.error(at, f"{found} holds no flex-offer")
            return None
        if DAY % offers[0].resolution:
            self.p.error(at, f"{found}: resolution {offers[0].resolution} s does not divide a day "
                             "(templates are moved by whole days)")
            return None
        return offers[0]

    def find(self, name: str) -> tuple[Optional[Path], str]:
        """A file a scenario names (a template, an input series): relative to the scenario, the
        project root or ``scenarios/``; or None and where it was looked for."""
        candidates = [Path(name)] if Path(name).is_absolute() else [self.base_dir / name, ROOT / name,
                                                                     ROOT / "scenarios" / name]
        found = next((c for c in candidates if _is_file(c)), None)
        return found, ", ".join(str(c.parent) for c in candidates)

    # [operators] --------------------------------------------------------------------------
    def _operators(self, server: Optional[ServerTable]) -> Optional[OperatorsTable]:
        at: KeyPath = ("operators",)
        table = self.data.get("operators", {})
        access = check_operators({k: v for k, v in table.items() if k != "account"} if isinstance(table, dict)
                                 else table, at, self.p, also=("account",))
        if access is None:
            return None
        account = table.get("account")
        if account is None:
            return OperatorsTable(access.controllers, access.viewers, None, access)
        if not self._agent_name(account, at + ("account",)):
            return None
        if server is not None and server.kind == "embedded":
            self.p.error(at + ("account",), "the embedded server has no account tool: list your own JID in "
                                            "controllers instead (and note that ad-hoc commands do not work on it)")
        elif server is not None and server.kind == "external" and (server.accounts or "register") == "register":
            self.p.error(at + ("account",), "VME does not create accounts on an external server: put the "
                                            "account in the accounts file (server.accounts), or list your own "
                                            "JID in controllers")
        domain = server.domain if server is not None else "localhost"
        try:
            access = access.with_controller(f"{account}@{domain}")
        except FlexOfferError as exc:
            self.p.error(at + ("account",), exc.reason)
            return None
        return OperatorsTable(access.controllers, access.viewers, account, access)

    # rules across tables ------------------------------------------------------------------
    def _agent_name(self, name: Any, at: KeyPath) -> bool:
        if not isinstance(name, str) or not _NAME.match(name):
            self.p.error(at, "an agent name is 1-64 letters, digits and ._- starting with a letter or digit "
                             f"(it is the JID's node and the store's file name), got {show(name)}")
            return False
        return True

    def _unique_names(self, market: Optional[Market], aggregators: list, groups: list,
                      operators: Optional[OperatorsTable] = None, dsos: tuple = ()) -> None:
        """Every agent (and the operator account) needs its own JID (compared case-insensitively,
        as servers do)."""
        owner: dict[str, KeyPath] = {}

        def claim(name: str, at: KeyPath) -> bool:
            key = name.lower()
            if key in owner:
                self.p.error(at, f"agent name {show(name)} is also used at {format_path(owner[key])}")
                return False
            owner[key] = at
            return True

        if market is not None:
            claim(market.name, ("market", "name"))
        for i, a in enumerate(aggregators):
            if a is not None:
                claim(a.name, ("aggregator", i, "name"))
        for g, group in enumerate(groups):
            if group is not None:
                for i in range(group.count):
                    if not claim(group.member(i, g), ("prosumers", g, "name")):
                        break
        if operators is not None and operators.account is not None:
            claim(operators.account, ("operators", "account"))
        for i, d in enumerate(dsos):
            if d is not None:
                claim(d.name, ("dso", i, "name"))


def _is_file(path: Path) -> bool:
    """``path.is_file()`` for a name from a scenario: a name the file system refuses (too long,
    a NUL) is a file that is not there, reported as such, not an OSError."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
