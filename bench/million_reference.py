"""The million-devices run's reference: the same devices' offers through the core engine in one
plain process (no agents, no XMPP, no stores), measured in the same command (bench_million.py).

The offers are the run's own (``offers.jsonl`` of its run folder: every offer the devices made
through the day, as the prosumers sent them). The tree is the run's plan: each FOA's offers go to
its aggregator (a leaf), each leaf's to its parent (``upstream_jid`` naming another aggregator).
With the aggregators' own strategies (``AggregatorStrategies.from_config`` of each one's
configuration, as the agents build them):

1. every leaf aggregates its FOAs' offers (the offers it cannot aggregate are planned alone, as a
   leaf does);
2. the top aggregates its leaves' aggregates and plans them, with what neither level could
   aggregate, against its objective (``schedule_offers``; in the agents' day the top bids on the
   market instead and the clearing decides: the reference plans instead, the same planning the
   aggregators fall back to);
3. the top's schedules are split to the leaves' aggregates and those to the device offers with
   the columnar ``split_many`` (the agents' ``_assign_many``), and every device offer has its
   schedule, checked feasible for its offer.

All in one batch: the agents take the day's offers in 15-minute cycles as they come. Measured:
wall and CPU seconds of each phase (reading the offers, aggregation, planning, disaggregation,
the feasibility check), and the process's peak resident memory (``ru_maxrss``).

Usage: python bench/million_reference.py RUN_DIR   (prints one JSON line)
"""

from __future__ import annotations

import json
import resource
from dataclasses import replace
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vmenergy.flexoffer import FlexOffer, Schedule, State  # noqa: E402
from vmenergy.protocol.aggregator import AggregatorConfig  # noqa: E402
from vmenergy.protocol.strategies import AggregatorStrategies, plan_schedules  # noqa: E402


class Clock:
    """Wall and CPU seconds of named phases (a phase timed again adds up)."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def time(self, name: str, fn: Any, *args: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        phase = self.phases.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
        phase["wall_s"] = round(phase["wall_s"] + time.perf_counter() - w, 3)
        phase["cpu_s"] = round(phase["cpu_s"] + time.process_time() - c, 3)
        return out


def aggregator_config(config: Mapping[str, Any]) -> AggregatorConfig:
    """An aggregator's configuration from its plan entry, as the swarm builds it."""
    cfg = dict(config)
    if isinstance(cfg.get("enrolment"), list):
        cfg["enrolment"] = tuple(cfg["enrolment"])
    return AggregatorConfig(**cfg)


def through_the_tree(offers: Sequence[FlexOffer], owner: Mapping[str, str], aggregators: Mapping[str, Mapping[str, Any]],
                     now: int, clock: Clock | None = None) -> tuple[dict[str, Schedule], dict[str, int]]:
    """Every offer's schedule (offer id -> schedule) after aggregation at its issuer's aggregator
    (``owner``: issuer JID -> aggregator JID), aggregation of those aggregates at their parent
    if they have one, planning at each top, and disaggregation back down (see the module's
    docstring); with the counts (offers, aggregates of each level, offers planned alone).
    ``aggregators``: JID -> plan configuration; ``now``: epoch seconds (nothing starts before)."""
    clock = clock or Clock()
    strategies = {jid: AggregatorStrategies.from_config(aggregator_config(cfg), jid) for jid, cfg in aggregators.items()}
    parent = {jid: cfg["upstream_jid"].lower() for jid, cfg in aggregators.items()
              if str(cfg.get("upstream_jid", "")).lower() in aggregators}
    if any(p in parent for p in parent.values()):
        raise ValueError("aggregators: the reference takes trees of two levels at most (leaves under a top)")
    by_leaf: dict[str, list[FlexOffer]] = {}
    for fo in offers:
        leaf = owner.get(fo.issuer.lower())
        if leaf is None or leaf not in aggregators:
            raise ValueError(f"offers[{fo.id}].issuer: {fo.issuer} has no aggregator in the plan")
        by_leaf.setdefault(leaf, []).append(fo)
    out: dict[str, Schedule] = {}
    counts = {"offers": len(offers), "leaf_aggregates": 0, "top_aggregates": 0, "planned": 0, "alone": 0}
    for top in sorted({parent.get(leaf, leaf) for leaf in by_leaf}):
        leaves = sorted(leaf for leaf in by_leaf if parent.get(leaf, leaf) == top)
        leaf_aggs: list = []
        alone: list[FlexOffer] = []
        for leaf in leaves:
            result = clock.time("aggregate_leaves", strategies[leaf].aggregation.aggregate, by_leaf[leaf])
            # leaves number their aggregates alike; the parent tells them apart by sender (records.AggOffer)
            leaf_aggs += [replace(a, id=f"{leaf.partition('@')[0]}.{a.id}") for a in result] if leaf != top else list(result)
            alone += [fo for fo in by_leaf[leaf] if fo.id in result.excluded]
        if len({a.id for a in leaf_aggs}) != len(leaf_aggs):
            raise ValueError(f"the aggregate ids of {top}'s leaves are not unique across them")
        if leaves == [top]:  # a top with FOAs of its own plans its aggregates itself
            top_aggs, excluded = [], {a.id for a in leaf_aggs}
        else:
            top_result = clock.time("aggregate_top", strategies[top].aggregation.aggregate, leaf_aggs)
            top_aggs, excluded = list(top_result), set(top_result.excluded)
        planned = top_aggs + [a for a in leaf_aggs if a.id in excluded] + alone
        if not planned:
            continue
        result = clock.time("plan", strategies[top].planning.plan, planned, now // planned[0].resolution)
        by_id = {s.offer_id: s for s in plan_schedules(result)[0]}
        split = strategies[top].disaggregation.split_many  # type: ignore[attr-defined]

        def disaggregate() -> dict[str, Schedule]:
            mid = dict(split(top_aggs, [by_id[a.id] for a in top_aggs])) if top_aggs else {}
            mid.update({a.id: by_id[a.id] for a in leaf_aggs if a.id in excluded})
            down = dict(split(leaf_aggs, [mid[a.id] for a in leaf_aggs])) if leaf_aggs else {}
            down.update({fo.id: by_id[fo.id] for fo in alone})
            return down

        out.update(clock.time("disaggregate", disaggregate))
        counts["leaf_aggregates"] += len(leaf_aggs)
        counts["top_aggregates"] += len(top_aggs)
        counts["planned"] += len(planned)
        counts["alone"] += len(alone)
    return out, counts


def reference(run_dir: Path) -> dict:
    """The reference for the run in ``run_dir`` (its plan.json and offers.jsonl)."""
    clock = Clock()
    plan = json.loads((run_dir / "plan.json").read_text())
    owner = {a["jid"].lower(): a["config"]["aggregator"].lower() for a in plan["agents"] if a["role"] == "prosumer"}

    def read() -> list[FlexOffer]:
        """The devices' offers (the file also holds the aggregates the aggregators sent up), in
        the state an aggregator aggregates them in (the file has each one's final state)."""
        out = []
        with open(run_dir / "offers.jsonl") as f:
            for line in f:
                doc = json.loads(line) if line.strip() else None
                if doc is not None and str(doc.get("issuer", "")).lower() in owner:
                    out.append(FlexOffer.from_dict({**doc, "state": State.ACCEPTED.value}))
        return out

    offers = clock.time("read_offers", read)
    aggregators = {a["jid"].lower(): a["config"] for a in plan["agents"] if a["role"] == "aggregator"}
    schedules, counts = through_the_tree(offers, owner, aggregators, int(plan["start"]), clock)

    def check() -> int:
        return sum(1 for fo in offers if fo.id in schedules and fo.is_feasible(schedules[fo.id]))

    feasible = clock.time("check", check)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    work = ("aggregate_leaves", "aggregate_top", "plan", "disaggregate")
    return {**counts, "scheduled": len(schedules), "feasible": feasible,
            "phases": clock.phases,
            "engine_wall_s": round(sum(clock.phases.get(p, {}).get("wall_s", 0.0) for p in work), 2),
            "engine_cpu_s": round(sum(clock.phases.get(p, {}).get("cpu_s", 0.0) for p in work), 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mib": usage.ru_maxrss >> 10}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__.rsplit("Usage: ", 1)[1].strip(), file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = reference(Path(argv[0]))
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(result), flush=True)
    return 0 if result["feasible"] == result["offers"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
