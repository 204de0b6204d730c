"""``vmenergy demo`` (``make demo``): the demo scenario swarm on a private XMPP server.

Runs ``scenarios/demo.toml`` through the orchestrator (a real Prosody, agents in their own
processes, accelerated simulated time), prints what happened (offers, aggregates, clearing,
assignments, measurements, bills) and where the report is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, TextIO

from vmenergy.runtime.orchestrator import run_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


def _eur(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def run_demo(out_dir: Optional[Path], out: TextIO, scenario: Path = DEMO, timeout: float = 600) -> int:
    run_dir = out_dir or ROOT / "run" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_scenario(scenario, run_dir, timeout=timeout, out=lambda line: print(line, file=out, flush=True))
    report = result.report
    data = json.loads((report.parent / "report.json").read_text())
    print("", file=out)
    print("What happened:", file=out)
    print(f"  offers      {sum(data['offers'].values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(data["offers"].items())), file=out)
    for a in data["aggregators"]:
        print(f"  aggregator  {a['jid']}: {a['aggregates']} aggregates of {a['members']} offers "
              f"{a['aggregate_status']}, market revenue EUR {_eur(a['revenue_cents'])}", file=out)
    for m in data["markets"]:
        for s in m["session_details"]:
            print(f"  clearing    {s['id']} ({s['mechanism']}): {s['accepted']} of {s['bids']} bids accepted, "
                  f"price {s['price']} EUR/kWh, {s['volume']} kWh", file=out)
    feas = "all feasible" if not data["infeasible_assignments"] else f"{len(data['infeasible_assignments'])} INFEASIBLE"
    print(f"  assignments {data['assignments']} ({data['scheduled_kwh']} kWh), {feas}", file=out)
    print(f"  measured    {data['measurements']} schedules, {data['measured_kwh']} kWh", file=out)
    print(f"  bills       {data['bills_received']}, prosumers paid EUR {_eur(data['prosumer_bills_cents'])}, "
          + ("reconciled to the cent" if data["reconciled"] else "NOT reconciled"), file=out)
    print(f"\nreport: {report.resolve()}", file=out)
    ok = not data["infeasible_assignments"] and data["reconciled"] and data["assignments"] > 0
    return 0 if ok else 1
