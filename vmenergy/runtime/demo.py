"""``vmenergy demo`` (``make demo``): the demo scenario swarm on a private XMPP server.

Runs ``scenarios/demo.toml`` through the orchestrator (a real Prosody, agents in their own
processes), prints the run's summary table (offers by state per role, energy, market sessions,
who paid whom, what did not finish) and the path of report.html.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, TextIO

from vmenergy.runtime.orchestrator import run_scenario
from vmenergy.runtime.progress import view_for
from vmenergy.runtime.report import format_summary, read_summary

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


def run_demo(out_dir: Optional[Path], out: TextIO, scenario: Path = DEMO, timeout: float = 600) -> int:
    run_dir = out_dir or ROOT / "run" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    # a progress bar on a terminal; elsewhere a line when something changed, every few seconds
    result = run_scenario(scenario, run_dir, timeout=timeout, out=say, view=view_for(say, out))
    report = result.report
    summary = read_summary(report.parent)
    print("", file=out)
    print(format_summary(summary, report.resolve()), file=out, end="")
    recon = summary["reconciled"]
    ok = recon["assignments_feasible"]["ok"] and recon["bills"]["ok"] and summary["offers"]["assigned"] > 0
    return 0 if ok else 1
