"""Scenario files: which agents a swarm has, how they are configured and split into processes.

A scenario is TOML (see docs/scenarios.md). :func:`load_scenario` validates it with errors that
name the field; :func:`make_plan` turns it into a :class:`Plan`: every agent with its JID,
password, store path and configuration, the parts (processes) they run in, and the offers each
prosumer will send (generated from templates, shifted to the scenario's day and varied with a
seeded generator so runs are reproducible).
"""

from __future__ import annotations

import json
import random
import secrets
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vmenergy.errors import VmeError
from vmenergy.flexoffer import Baseline, FlexOffer, Profile, Slice, TotalEnergy
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.runtime.documents import read_document

__all__ = ["ScenarioError", "AgentSpec", "Plan", "load_scenario", "make_plan", "vary_offer"]

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400


class ScenarioError(VmeError):
    """Invalid scenario: ``path`` names the field, ``reason`` says why."""


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


def _get(d: dict, key: str, path: str, kind: type | tuple, default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise ScenarioError(f"{path}.{key}" if path else key, "required")
        return default
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise ScenarioError(f"{path}.{key}" if path else key, f"must be {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


def load_scenario(path: Path | str) -> dict:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), f"not valid TOML: {exc}") from None
    data["_dir"] = str(path.parent.resolve())
    known = {"scenario", "server", "market", "aggregator", "prosumers", "_dir"}
    for key in data:
        if key not in known:
            raise ScenarioError(key, f"unknown section (known: {', '.join(sorted(known - {'_dir'}))})")
    _get(data, "scenario", "", dict)
    _get(data, "aggregator", "", list)
    _get(data, "prosumers", "", list)
    return data


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


def _template(path: str, base_dir: str) -> FlexOffer:
    for candidate in (Path(base_dir) / path, ROOT / path, ROOT / "scenarios" / path):
        if candidate.is_file():
            items = [x for x in read_document(candidate) if isinstance(x, FlexOffer)]
            if not items:
                raise ScenarioError(path, "holds no flex-offer")
            return items[0]
    raise ScenarioError(path, "offer template not found")


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


def make_plan(data: dict, run_dir: Path, *, wall_start: float, startup_margin: float = 3.0) -> Plan:
    """Everything the swarm processes need, decided once (passwords, offers, clock anchor)."""
    sc = data["scenario"]
    name = _get(sc, "name", "scenario", str, "scenario")
    start = parse_utc(_get(sc, "start", "scenario", str), "scenario.start")
    speed = float(_get(sc, "speed", "scenario", (int, float), 600))
    until = parse_utc(_get(sc, "until", "scenario", str), "scenario.until")
    if until <= start:
        raise ScenarioError("scenario.until", "must be after scenario.start")
    seed = _get(sc, "seed", "scenario", int, 0)
    rng = random.Random(seed)
    server = dict(data.get("server", {"kind": "prosody"}))
    server.setdefault("kind", "prosody")
    domain = server.get("domain", "localhost")
    run_dir = Path(run_dir)
    stores = run_dir / "stores"
    agents: list[AgentSpec] = []

    def pw() -> str:
        return secrets.token_urlsafe(12)

    market = data.get("market")
    if market is not None:
        mname = _get(market, "name", "market", str, "market")
        cfg = {k: v for k, v in market.items() if k != "name"}
        agents.append(AgentSpec("market", mname, f"{mname}@{domain}", pw(), "market", str(stores / f"{mname}.sqlite"), cfg))
    agg_names = []
    for i, a in enumerate(data["aggregator"]):
        path = f"aggregator[{i}]"
        aname = _get(a, "name", path, str)
        agg_names.append(aname)
        cfg = {k: v for k, v in a.items() if k not in ("name", "parent", "part")}
        up = cfg.get("upstream", "market" if market is not None else "plan")
        cfg["upstream"] = up
        if up == "market":
            if market is None:
                raise ScenarioError(f"{path}.upstream", "market, but the scenario has no [market]")
            cfg["upstream_jid"] = agents[0].jid
        elif up == "parent":
            parent = _get(a, "parent", path, str)
            cfg["upstream_jid"] = f"{parent}@{domain}"
        part = a.get("part", "aggregators")
        agents.append(AgentSpec("aggregator", aname, f"{aname}@{domain}", pw(), part, str(stores / f"{aname}.sqlite"), cfg))
    day0 = start - start % DAY
    parts = {a.part for a in agents}
    for g, group in enumerate(data["prosumers"]):
        path = f"prosumers[{g}]"
        count = _get(group, "count", path, int)
        pattern = _get(group, "name", path, str, f"g{g}-house{{i}}")
        aggname = _get(group, "aggregator", path, str)
        if aggname not in agg_names:
            raise ScenarioError(f"{path}.aggregator", f"no aggregator named {aggname!r}")
        templates = [_template(t, data["_dir"]) for t in _get(group, "offers", path, list)]
        processes = _get(group, "processes", path, int, 1)
        spread = float(group.get("energy_spread", 0.2))
        jitter = int(group.get("start_jitter", 4))
        deviation = float(group.get("deviation", 0.02))
        for i in range(count):
            pname = pattern.format(i=i, g=g)
            jid = f"{pname}@{domain}"
            offers = []
            for k, t in enumerate(templates):
                shift = _shift_for(t, start, day0)
                fo = vary_offer(t, shift=shift, rng=rng, new_id=f"{pname}-{k}", issuer=jid,
                                energy_spread=spread, start_jitter=jitter)
                release = max(start, fo.creation_time or start)
                offers.append({"release": release, "offer": fo.to_dict()})
            part = f"prosumers-{i % processes}"
            parts.add(part)
            agents.append(AgentSpec("prosumer", pname, jid, pw(), part, str(stores / f"{pname}.sqlite"),
                                    {"aggregator": f"{aggname}@{domain}", "deviation": deviation}, offers))
    clock = {"mode": "accelerated", "start": start, "speed": speed, "wall_anchor": wall_start + startup_margin}
    order = ["market", "aggregators"]
    return Plan(name, str(run_dir), server, clock, start, until, agents,
                sorted(parts, key=lambda p: (order.index(p) if p in order else 9, p)), seed)

