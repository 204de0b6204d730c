"""`scenarios/million-devices.toml` runs each leaf aggregator in a process of its own: at noon the
leaves decode and check every FOA's day-ahead offers at once, and five aggregators sharing one
process had one core for all of it (bench/RESULTS.md, "A million devices")."""

from __future__ import annotations

from collections import Counter

from tests.conftest import ROOT
from tests.integration.test_million_shape import MILLION, scaled
from vmenergy.runtime.scenario import load_scenario, make_plan

LEAVES = ("north", "south", "east", "west")


def _aggregator_parts(path, tmp_path) -> dict[str, str]:
    plan = make_plan(load_scenario(path), tmp_path / "run")
    return {spec.name: spec.part for spec in plan.by_role("aggregator")}


def test_each_leaf_aggregator_of_the_million_scenario_has_a_process_of_its_own(tmp_path):
    parts = _aggregator_parts(MILLION, tmp_path)
    assert sorted(parts) == sorted(LEAVES + ("regional",))
    per_part = Counter(parts.values())
    assert all(per_part[parts[leaf]] == 1 for leaf in LEAVES)
    assert len(set(parts.values())) == 5  # and the regional one is in none of theirs


def test_the_benchmarks_scaled_copies_keep_the_leaves_apart(tmp_path):
    copy = tmp_path / "copy.toml"
    copy.write_text(scaled(MILLION.read_text(), foas=2, households=10)
                    .replace('"inputs/', f'"{ROOT}/scenarios/inputs/'))
    assert len(set(_aggregator_parts(copy, tmp_path).values())) == 5
