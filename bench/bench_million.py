"""A million devices through a day: `scenarios/million-devices.toml`, or a copy of the same shape
with fewer FOAs and households, run with ``vmenergy run`` and measured from outside.

The scenario: FOA agents that each front many households (``households = 1000``), four leaf
aggregators under a regional aggregator that trades on a market, one simulated day. Measured as
the scale ladder measures a rung (bench/bench_ladder.py: wall time, CPU seconds of the whole
process tree with Prosody, peak summed resident memory sampled every second, load average before
and after), with the counts: devices (drawn here exactly as the agents draw them), offers, offers
settled, and the outcome (``until``/``done``/``interrupted``: how far it went).

Beside it, in the same command, its reference (bench/million_reference.py): the run's device
offers aggregated by the same tree, planned and disaggregated by the core engine in one plain
process (no agents, no XMPP), with its time and peak memory; ``--no-reference`` leaves it out.

Usage: python bench/bench_million.py [--foas N] [--households H] [--timeout S] [--keep] [--no-reference]
Without ``--foas``/``--households``: the full scenario (55 FOAs per leaf, 1,000 households each).
``make bench-million`` runs the full one under ``flock /work/wt/_bigrun.lock`` (see the Makefile).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_ladder import measure_run  # bench/bench_ladder.py (the script's folder is on sys.path)
from machine import describe as machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_million_shape import MILLION, scaled  # noqa: E402
from vmenergy.devices.population import draw_households  # noqa: E402
from vmenergy.runtime.scenario import load_scenario, make_plan  # noqa: E402


def devices_of(scen: Path, base: Path) -> tuple[int, int, int, Counter]:
    """(FOA agents, households, devices, devices by kind) as the agents will draw them."""
    plan = make_plan(load_scenario(scen), base / "plan-only")
    foas = homes = 0
    kinds: Counter = Counter()
    for spec in plan.by_role("prosumer"):
        foas += 1
        for devices, _ in draw_households(spec.config["households"], plan.seed):
            homes += 1
            kinds.update(d["kind"] for d in devices)
    return foas, homes, sum(kinds.values()), kinds


def engine_reference(run_dir: Path, timeout: float) -> dict:
    """The run's reference (bench/million_reference.py) in a process of its own: its figures,
    with its wall time from outside, or ``{"error": ...}``."""
    print("reference: the same offers through the core engine in one process ...", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / "million_reference.py"), str(run_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"took longer than {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"}
    ref = json.loads(lines[-1])
    ref["process_wall_s"] = round(time.perf_counter() - t0, 1)
    ref["exit"] = proc.returncode
    print(json.dumps(ref), flush=True)
    return ref


def reference_text(result: dict, ref: dict) -> str:
    """The agents' day beside the core engine's reference, as Markdown."""
    if "error" in ref:
        return f"\nReference (core engine in one process): not measured: {ref['error']}"
    phases = ", ".join(f"{k} {v['wall_s']} s ({v['cpu_s']} CPU s)" for k, v in ref["phases"].items())
    return "\n".join([
        "", "Beside it, in the same command: the same offers through the core engine in one plain process "
        "(bench/million_reference.py: the run's device offers aggregated by the same tree with the aggregators' "
        "own strategies, planned at the top, disaggregated with split_many, each schedule checked):", "",
        "| | devices | offers | aggregates leaf / top | wall s | CPU s | peak RSS MiB | KiB per device | "
        "feasible / offers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| agents (the day, XMPP, stores, report) | {result['devices']:,} | {result.get('offers', 0):,} | | "
        f"{result['wall_s']} | {result['cpu_s']} | {result['peak_rss_mib']:,} | {result.get('kib_per_device', '-')} | "
        f"settled {result.get('settled', 0):,} |",
        f"| core engine, one process (aggregate + plan + disaggregate) | {result['devices']:,} | {ref['offers']:,} "
        f"| {ref['leaf_aggregates']:,} / {ref['top_aggregates']:,} | {ref['engine_wall_s']} | {ref['engine_cpu_s']} "
        f"| {ref['peak_rss_mib']:,} | {round((ref['peak_rss_mib'] << 10) / max(1, result['devices']), 2)} "
        f"| {ref['feasible']:,} / {ref['offers']:,} |",
        f"| the same process whole (reading the offers, checking) | | | | {ref['process_wall_s']} | {ref['cpu_s']} "
        f"| {ref['peak_rss_mib']:,} | | |",
        "", f"Phases of the reference: {phases}."])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--foas", type=int, default=55, help="FOA agents per leaf aggregator (default 55)")
    ap.add_argument("--households", type=int, default=1000, help="households per FOA (default 1000)")
    ap.add_argument("--timeout", type=float, default=1500.0, help="real seconds before the run is stopped")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (printed)")
    ap.add_argument("--no-reference", dest="reference", action="store_false",
                    help="leave out the core engine's reference in one plain process")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="vme-million-"))
    try:
        scen = base / "million.toml"
        scen.write_text(scaled(MILLION.read_text(), foas=args.foas, households=args.households)
                        .replace('"inputs/', f'"{ROOT}/scenarios/inputs/'))
        t0 = time.perf_counter()
        foas, homes, n_devices, kinds = devices_of(scen, base)
        print(f"machine: {machine()}")
        print(f"{foas} FOAs, {homes:,} households, {n_devices:,} devices ({time.perf_counter() - t0:.1f} s to draw): "
              + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()), flush=True)
        measured, output = measure_run(scen, base / "run", args.timeout)
        result: dict = {"foas": foas, "households": homes, "devices": n_devices, **measured}
        try:
            summary = json.loads((base / "run" / "summary.json").read_text())
            offers = summary["offers"]["by_prosumers"]
            result.update(offers=sum(offers.values()), settled=offers.get("settled", 0),
                          stopped_by=summary["outcome"]["stopped_by"], finished=summary["outcome"]["finished"],
                          reached=summary["outcome"].get("sim_end"),
                          cleared_kwh=summary["market"].get("cleared_kwh"),
                          kib_per_device=round((measured["peak_rss_mib"] << 10) / max(1, n_devices), 2),
                          cpu_ms_per_device=round(1000 * measured["cpu_s"] / max(1, n_devices), 3))
        except (OSError, ValueError, KeyError) as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["output"] = output[-3000:]
        print(json.dumps(result), flush=True)
        ref = engine_reference(base / "run", args.timeout) if args.reference and "error" not in result else None
        line = (f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {foas} x {args.households:,} | {n_devices:,} "
                f"| {result.get('stopped_by', 'error')} | {result.get('settled', '-')} / {result.get('offers', '-')} "
                f"| {measured['wall_s']} | {measured['cpu_s']} | {measured['peak_rss_mib']:,} "
                f"| {result.get('kib_per_device', '-')} | {measured['load_before'][0]} / {measured['load_after'][0]} |")
        print("| date UTC | FOAs x households | devices | stopped by | settled / offers | wall s | CPU s | "
              "peak RSS MiB | KiB/device | load before / after |")
        print(line)
        if ref is not None:
            print(reference_text(result, ref))
        return 0 if "error" not in result and measured["exit"] == 0 else 1
    finally:
        if args.keep:
            print(f"run folder kept in {base}")
        else:
            subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
