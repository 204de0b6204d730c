"""Wall time of a simulated day: coordinated virtual time against the accelerated clock.

Runs the demo scenario (a market, an aggregator, 6 prosumers, 36 offers) and the same scenario
with 200 prosumers (1,200 offers, prosumers in 2 processes), each once with ``clock =
"virtual"`` and once with ``clock = "accelerated"`` at the demo's old speed (1500x), on a
private Prosody, through ``vmenergy.runtime.orchestrator.run_scenario`` as ``vmenergy run``
does. The accelerated clock is the reference: its wall time is fixed by the speed, and how much
of the work it completes depends on the machine; virtual time runs as fast as the agents go and
completes the same work every time.

Usage: python bench/bench_scenario_time.py [--quick]   (--quick: the demo only)
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

from machine import describe as machine  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmenergy.flexoffer.timeutil import parse_utc  # noqa: E402
from vmenergy.runtime.orchestrator import run_scenario  # noqa: E402

DEMO = ROOT / "scenarios" / "demo.toml"
SPEED = 1500


def variant(text: str, *, clock: str, count: int, processes: int) -> str:
    text = re.sub(r"^speed = .*$", "", text, flags=re.M)
    text = text.replace("[scenario]\n", f'[scenario]\nclock = "{clock}"\n' + (f"speed = {SPEED}\n" if clock == "accelerated" else ""), 1)
    text = re.sub(r"^count = \d+", f"count = {count}", text, flags=re.M)
    return re.sub(r"^processes = \d+", f"processes = {processes}", text, flags=re.M)


def one(tmp: Path, name: str, text: str) -> dict:
    path = tmp / f"{name}.toml"
    path.write_text(text)
    t0 = time.perf_counter()
    result = run_scenario(path, tmp / name, out=lambda line: None, timeout=3600)
    wall = time.perf_counter() - t0
    start = parse_utc(re.search(r'^start = "(.*)"', text, re.M).group(1), "start")
    prog = result.progress
    report = json.loads((tmp / name / "report.json").read_text())
    return {"wall": wall, "sim_hours": (prog.sim_time - start) / 3600, "settled": report["offers"].get("settled", 0),
            "offers": sum(report["offers"].values()), "outcome": result.outcome}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    base = DEMO.read_text()
    print(f"# {time.strftime('%Y-%m-%d')} on {machine()}")
    print("| scenario | clock | wall s | simulated h | sim s per wall s | offers settled | outcome |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    sizes = [(6, 1)] if quick else [(6, 1), (200, 2)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for count, procs in sizes:
            for clock in ("virtual", "accelerated"):
                r = one(tmp, f"p{count}-{clock}", variant(base, clock=clock, count=count, processes=procs))
                rate = r["sim_hours"] * 3600 / r["wall"]
                label = "accelerated (1500x)" if clock == "accelerated" else "virtual"
                print(f"| {count} prosumers | {label} | {r['wall']:.1f} | {r['sim_hours']:.1f} | {rate:,.0f} | "
                      f"{r['settled']} / {r['offers']} | {r['outcome']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
