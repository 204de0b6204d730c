"""bench/run.py, what ``make bench`` runs: every benchmark but those with a command of their own."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from run import chosen  # noqa: E402  (bench/run.py)


def test_make_bench_runs_the_ladder_but_not_the_million_devices_nor_the_report():
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    run, left_out = chosen(scripts, [])
    stems = {s.stem for s in run}
    assert "bench_ladder" in stems and "bench_agents" in stems
    assert "bench_million" not in stems and "bench_report" not in stems
    assert set(left_out) == {"bench_million", "bench_report"} and all(left_out.values())


def test_a_named_benchmark_runs_even_if_it_has_a_command_of_its_own():
    run, left_out = chosen(sorted((ROOT / "bench").glob("bench_*.py")), ["million"])
    assert [s.stem for s in run] == ["bench_million"] and left_out == {}
