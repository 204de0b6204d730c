"""From a checked scenario to a plan: what every swarm process needs, decided once.

:func:`make_plan` turns a :class:`~.model.Scenario` into a :class:`Plan`: every agent with its
JID, password, store path and configuration, the parts (processes) they run in, and the offers
each prosumer will send (generated from templates, shifted to the scenario's day and varied with
a seeded generator so runs are reproducible). The plan is saved as JSON for the processes.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from vmenergy.flexoffer import Baseline, FlexOffer, Profile, Slice, TotalEnergy

from vmenergy.runtime.servers.accounts import new_password

from .model import DAY, ProsumerGroup, Scenario
from .locate import KeyLines
from .problems import Problems, ScenarioError

__all__ = ["AgentSpec", "Plan", "make_plan", "vary_offer", "check_shards"]


#: The run's web token file (digests, read by the agents) in the run directory; the tokens
#: themselves go to ``web-tokens.txt`` beside it, for the operators (both private).
WEB_TOKENS = "web-tokens.json"


@dataclass
class AgentSpec:
    role: str
    name: str
    jid: str
    password: str
    part: str
    store: str
    config: dict = field(default_factory=dict)
    offers: list[dict] = field(default_factory=list)  # (prosumers) offer dicts with "release"
    operators: dict = field(default_factory=dict)  # who may read and steer it (Operators.to_dict())
    web: dict = field(default_factory=dict)  # its console and REST interface (WebConfig's fields), if any


@dataclass
class Plan:
    """Everything the swarm processes need, decided once.

    ``start``/``until``: scenario time (epoch seconds, UTC). ``clock``: ``{"mode": "virtual" |
    "accelerated" | "real", "speed": simulated seconds per real second (accelerated only)}``
    plus what the orchestrator adds when it starts the run. ``coordinator``: where the swarm
    processes reach the time coordinator (filled in by the orchestrator)."""

    name: str
    run_dir: str
    server: dict
    clock: dict
    start: int
    until: int
    agents: list[AgentSpec]
    parts: list[str]
    seed: int = 0
    coordinator: dict = field(default_factory=dict)
    #: In a sharded run (``vmenergy run --shard i/n``), which shard runs each part (default 1).
    shard_of: dict = field(default_factory=dict)
    #: The devices' inputs (``[inputs]``, file paths absolute), for prosumers with devices.
    inputs: dict = field(default_factory=dict)
    #: The operator account the run creates (``[operators] account``): ``{"jid", "password"}``.
    operator: dict = field(default_factory=dict)
    #: On a cluster (``[server] nodes``), the node each part connects to (every part is listed).
    node_of: dict = field(default_factory=dict)
    #: Whether the agents send SPADE's metadata form (``[scenario] spade_metadata``).
    spade_metadata: bool = False

    def shard(self, part: str) -> int:
        return int(self.shard_of.get(part, 1))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Plan":
        d = json.loads(Path(path).read_text())
        d["agents"] = [AgentSpec(**a) for a in d["agents"]]
        return cls(**d)

    def of_part(self, part: str) -> list[AgentSpec]:
        return [a for a in self.agents if a.part == part]

    def by_role(self, role: str) -> list[AgentSpec]:
        return [a for a in self.agents if a.role == role]


def vary_offer(fo: FlexOffer, *, shift: int, rng: random.Random, new_id: str, issuer: str,
               energy_spread: float = 0.2, start_jitter: int = 4) -> FlexOffer:
    """A template offer moved by ``shift`` seconds (a multiple of its resolution), its energy
    bounds scaled by a factor in [1 - spread, 1 + spread] and its window moved by up to
    ``start_jitter`` intervals later; deadlines move with it so the offer stays valid."""
    res = fo.resolution
    if shift % res:
        raise ScenarioError("shift", "must be a multiple of the offer's resolution")
    k = 1 + rng.uniform(-energy_spread, energy_spread)
    jitter = rng.randint(0, start_jitter)
    d = shift // res + jitter
    moved = lambda t: None if t is None else t + d  # noqa: E731
    moved_s = lambda t: None if t is None else t + d * res  # noqa: E731
    profiles = []
    for p in fo.profiles:
        slices = tuple(Slice(s.duration, s.min * k, s.max * k, None if s.values is None else tuple(v * k for v in s.values))
                       for s in p.slices)
        total = None if p.total is None else TotalEnergy(
            None if p.total.min is None else p.total.min * k, None if p.total.max is None else p.total.max * k)
        poly = None if p.polytope is None else replace(p.polytope, b=tuple(b * k for b in p.polytope.b))
        profiles.append(Profile(slices, total=total, polytope=poly, start_after=moved(p.start_after),
                                start_before=moved(p.start_before)))
    baseline = None
    if fo.baseline is not None:
        baseline = Baseline(tuple(e * k for e in fo.baseline.energy), fo.baseline.profile, moved(fo.baseline.start))
    return replace(
        fo, id=new_id, issuer=issuer, profiles=tuple(profiles), baseline=baseline,
        start_after=moved(fo.start_after), start_before=moved(fo.start_before),
        creation_time=moved_s(fo.creation_time), acceptance_before=moved_s(fo.acceptance_before),
        assignment_before=moved_s(fo.assignment_before),
    )


def _shift_for(t: FlexOffer, start: int, day0: int) -> int:
    """Seconds to move a template so its window opens at the same time of day, at the first
    occurrence at least an hour after the scenario starts (offers without a window: none)."""
    if t.start_after is None:
        return 0
    first = t.start_after * t.resolution
    candidate = day0 + first % DAY
    if candidate < start + 3600:
        candidate += DAY
    return candidate - first


def _admit_from_topology(agents: list[AgentSpec]) -> None:
    """Deny by default: an aggregator that does not say whom it enrols takes offers from the
    scenario's own prosumers and child aggregators only, and a market registers only the
    aggregators that bid on it (a stranger on the same server can change nothing)."""
    below: dict[str, list[str]] = {}
    for a in agents:
        upstream = a.config.get("aggregator") if a.role == "prosumer" else a.config.get("upstream_jid")
        if upstream:
            below.setdefault(str(upstream).lower(), []).append(a.jid)
        if a.role == "prosumer" and a.config.get("market"):  # a prosumer trading peer to peer
            below.setdefault(str(a.config["market"]).lower(), []).append(a.jid)
    for a in agents:
        key = {"aggregator": "enrolment", "market": "registration"}.get(a.role)
        if key is not None and key not in a.config:
            a.config[key] = below.get(a.jid.lower(), [])


def _plain(settings) -> dict:
    """A config table as plain JSON-able dicts (the scenario keeps read-only mappings)."""
    return json.loads(json.dumps({k: (dict(v) if hasattr(v, "items") else v) for k, v in settings.items()}))


def _locate(scenario: Scenario, agents: list[AgentSpec]) -> None:
    """Tell each aggregator where its prosumers are (``locations``: prosumer JID -> congestion
    point) and which DSO runs each of those points (``dsos``)."""
    if not scenario.dsos:
        return
    dso_of = {point: scenario.jid(d.name) for d in scenario.dsos for point in d.points()}
    by_jid = {a.jid: a for a in agents}
    for g, group in enumerate(scenario.prosumers):
        if group.congestion_point is None:
            continue
        agg = by_jid[scenario.jid(group.aggregator)]
        locations = agg.config.setdefault("locations", {})
        for i in range(group.count):
            locations[scenario.jid(group.member(i, g))] = group.congestion_point
        agg.config.setdefault("dsos", {})[group.congestion_point] = dso_of[group.congestion_point]


def check_shards(scenario: Scenario, shards: int) -> None:
    """A group pinned to a shard (``shard = k``) needs a run of at least k shards; raises
    :class:`ScenarioError` naming the group's key otherwise."""
    for g, group in enumerate(scenario.prosumers):
        if group.shard is not None and group.shard > shards:
            try:  # the line of the key, as vmenergy check gives it
                problems = Problems(KeyLines(Path(scenario.source).read_text()) if scenario.source else None)
            except (OSError, UnicodeDecodeError):
                problems = Problems()
            problems.error(("prosumers", g, "shard"), f"shard {group.shard}, but the run has {shards} shard"
                                                      f"{'s' if shards != 1 else ''} (vmenergy run --shard K/N)")
            raise ScenarioError.of(problems.items)


def make_plan(scenario: Scenario, run_dir: Path, *, shards: int = 1) -> Plan:
    """Everything the swarm processes need, decided once (passwords, offers, clock).

    With ``shards`` > 1 each shard runs ``processes`` processes of every prosumer group (of a
    group pinned to a shard, that shard runs them all: parts ``prosumers-sK-J``)
    (``Plan.shard_of`` says which shard runs which part).

    ``Plan.clock`` is ``{"mode", "speed", "start"}``: ``speed`` is None for the virtual clock
    (the coordinator moves its time); the accelerated clock's wall anchor is sent by the
    coordinator once every agent is up."""
    check_shards(scenario, shards)
    settings = scenario.scenario
    start = settings.start
    rng = random.Random(settings.seed)
    run_dir = Path(run_dir)
    stores = run_dir / "stores"
    agents: list[AgentSpec] = []

    def pw() -> str:  # the run's server may replace it (an accounts file's password)
        return new_password()

    operators = scenario.operators.access.to_dict() if scenario.operators.access is not None else {}

    def spec(role: str, name: str, part: str, config: dict, offers: Optional[list] = None) -> AgentSpec:
        return AgentSpec(role, name, scenario.jid(name), pw(), part, str(stores / f"{name}.sqlite"), config,
                         offers or [], dict(operators))

    server = scenario.server
    node_of: dict[str, str] = {}

    def on_node(part: str, node: Optional[str], *, alone: bool = False) -> str:
        """``part``, or ``part-NODE`` on another node than the cluster's first (a process
        connects to one node, and several groups or DSOs share a part name); recorded in
        ``node_of``. ``alone``: the part's only agent (the market) keeps its name."""
        node = server.node_of(node)
        if node is None:
            return part
        if node != server.node_of(None) and not alone:
            part = f"{part}-{node}"
        node_of[part] = node
        return part

    if scenario.market is not None:
        agents.append(spec("market", scenario.market.name, on_node("market", scenario.market.node, alone=True),
                           dict(scenario.market.settings)))
    for d in scenario.dsos:
        agents.append(spec("dso", d.name, on_node("dso", d.node), _plain(d.settings)))
    for a in scenario.aggregators:
        agents.append(spec("aggregator", a.name, a.part, dict(a.settings)))
        if server.cluster:
            node_of[a.part] = server.node_of(a.node)  # the check named its part for its node
    day0 = start - start % DAY
    parts = {a.part for a in agents}
    shard_of: dict[str, int] = {}
    for g, group in enumerate(scenario.prosumers):
        aggregator = scenario.jid(group.aggregator)
        for i in range(group.count):
            name = group.member(i, g)
            jid = scenario.jid(name)
            offers = []
            for k, t in enumerate(group.templates):
                fo = vary_offer(t, shift=_shift_for(t, start, day0), rng=rng, new_id=f"{name}-{k}", issuer=jid,
                                energy_spread=group.energy_spread, start_jitter=group.start_jitter)
                release = max(start, fo.creation_time or start)
                offers.append({"release": release, "offer": fo.to_dict()})
            if group.shard is None:  # each shard runs `processes` processes of the group
                j = i % (group.processes * shards)
                part = on_node(f"prosumers-{j}", group.node)
                shard_of[part] = 1 + j % shards
            else:  # all of them on the shard it names (parts of their own)
                part = on_node(f"prosumers-s{group.shard}-{i % group.processes}", group.node)
                shard_of[part] = group.shard
            parts.add(part)
            config: dict = {"aggregator": aggregator, "deviation": group.deviation}
            if group.trading and scenario.market is not None:  # peer to peer in the scenario's pool
                config.update(market=scenario.jid(scenario.market.name), trading=dict(group.trading))
            if group.has_devices:
                config.update(_devices(group, name, settings.seed))
                if group.hardware != "none":
                    config["hardware"] = group.hardware
            agents.append(spec("prosumer", name, part, config, offers))
    _admit_from_topology(agents)
    _locate(scenario, agents)
    if scenario.web is not None:  # consoles: one port each, in the order the agents are listed
        serving = [a for a in agents if a.role in scenario.web.roles]
        for i, a in enumerate(serving):
            a.web = {"host": scenario.web.host, "port": scenario.web.port + i if scenario.web.port else 0,
                     "tokens": str(run_dir / WEB_TOKENS)}
    speed = settings.speed if settings.clock == "accelerated" else None
    clock = {"mode": settings.clock, "speed": speed, "start": start}
    order = ["market", "dso", "aggregators"]
    account = scenario.operators.account
    operator = {"jid": scenario.jid(account), "password": pw()} if account is not None else {}
    return Plan(settings.name, str(run_dir), scenario.server.as_plan(), clock, start, settings.until, agents,
                sorted(parts, key=lambda p: (order.index(p) if p in order else 9, p)), settings.seed,
                shard_of=shard_of, operator=operator, node_of=node_of, inputs=scenario.inputs.as_plan() if scenario.inputs is not None else {},
                spade_metadata=settings.spade_metadata)


def _devices(group: ProsumerGroup, name: str, seed: int) -> dict:
    """A prosumer's devices drawn from its group's mix (seeded by the scenario seed and its name),
    with its owner's and FOA's settings, or with ``households`` above 1 the table its households
    are drawn from: the part of its config its device fleet is built from."""
    from vmenergy.devices.population import draw_devices

    foa = {"offer_time": group.offer_time, "offer_lead": group.offer_lead, "slice_minutes": group.slice_minutes,
           "deviation": group.deviation}
    if group.households > 1:
        # the recipe, not the draws: the agent's process draws its households (plan.json stays
        # small however many devices the run holds; the draws are the same, seeded per household)
        tables = {k: dict(v) for k, v in group.device_tables.items()}
        return {"households": {"name": name, "count": group.households, "mix": dict(group.devices),
                               "tables": tables, "owner": dict(group.owner)}, "foa": foa}
    devices, owner = draw_devices(name, group.devices, group.device_tables, group.owner, seed)
    return {"devices": devices, "owner": owner, "foa": foa}
