"""The run report: what a swarm did, read back from every agent's store into the run folder.

``write_report(plan, run_dir, outcome)`` writes, beside the stores and logs:

- ``summary.json``: counts, energy, money, market sessions, KPIs, reconciliation between the
  roles and the outcome (schema in docs/scenarios.md, "The run folder"). The same scenario and
  seed give the same bytes: no wall-clock figure, path, pid or password goes in.
- ``timings.json``: the wall-clock figures (start-up per process, run seconds), kept apart so
  that summary.json can be compared with ``cmp``.
- ``timeseries.csv``, ``offers.jsonl``, ``schedules.jsonl``, ``bills.csv`` (:mod:`.files`).
- PNG plots (:mod:`.plots`) and ``report.html`` showing all of it (:mod:`.html`).

It also checks what can be checked after the fact, and says so in ``reconciled``: every
assignment is feasible for its offer, prosumers and aggregators agree on each offer's state,
every bill sent arrived with the same amount, and market bills match what the aggregators got.

Modules: :mod:`.collect` (ledgers in a fixed order), :mod:`.series` (per aggregator and
interval), :mod:`.summary`, :mod:`.files`, :mod:`.plots`, :mod:`.html`, :mod:`.text` (the
terminal table, :func:`format_summary`), :mod:`.outcome` (how the run ended).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from vmenergy.runtime.scenario import Plan

from .collect import RunData, collect, part_timings, run_data
from .files import write_data_files
from .html import report_html
from .outcome import STOPPED_BY, Outcome, ReportError, Restart
from .plots import write_plots
from .series import series
from .summary import build_summary, summary_json
from .text import format_summary

__all__ = ["write_report", "write_run_folder", "Outcome", "Restart", "STOPPED_BY", "ReportError", "format_summary",
           "build_summary", "summary_json", "collect", "run_data", "read_summary"]


def write_run_folder(run: RunData, run_dir: Path, outcome: Outcome, timings: Mapping) -> Path:
    """Every report file for ``run`` in ``run_dir``; returns the path of report.html."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    s = series(run)
    summary = build_summary(run, s, outcome)
    (run_dir / "summary.json").write_text(summary_json(summary))
    (run_dir / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    write_data_files(run, s, run_dir)
    plots = write_plots(s, summary, run_dir)
    path = run_dir / "report.html"
    path.write_text(report_html(summary, plots, timings))
    return path


def write_report(plan: Plan, run_dir: Path, outcome: Outcome) -> Path:
    """The run folder's report from the agents' stores (see module docstring); returns the path
    of report.html."""
    if not isinstance(outcome, Outcome):
        raise ReportError("outcome", f"must be an Outcome (got {type(outcome).__name__})")
    timings = {"parts": part_timings(Path(run_dir), plan), **outcome.timings,
               **({"work": dict(outcome.work)} if outcome.work else {})}
    return write_run_folder(collect(plan), Path(run_dir), outcome, timings)


def read_summary(run_dir: Path) -> dict:
    """summary.json of a run folder."""
    return json.loads((Path(run_dir) / "summary.json").read_text())
