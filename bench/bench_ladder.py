"""The scale ladder: N prosumer agents with device models through one simulated day, for several N.

Each rung is ``scenarios/city-1k.toml`` with its two prosumer groups set to N/2 each (one swarm
process per ``--per-process`` prosumers), from noon to 18:00 the next day (offers at noon for the
day ahead, the market, assignments, execution, metering, bills), run with ``vmenergy run`` on a
private Prosody in virtual time. Measured per rung, from outside (``/proc`` of the run's process
tree, sampled every second, and the children's rusage):

- wall time of the whole run (start-up included) and the outcome (settled / all offers);
- start-up: agents per second (timings.json, per process);
- CPU seconds of the run's processes (Prosody included) and per agent;
- peak resident memory of the process tree (sum of RSS) and per agent;
- engine steps and presence stanzas (timings.json ``work``), and steps per wall second.

With ``--kind ejabberd`` the rungs run on a private ejabberd; with ``--cluster N`` on a private
ejabberd cluster of N nodes the run starts itself (``[server] nodes = N``): the prosumer groups
alternate over the nodes (north on a, south on b, ...), the aggregators and the market are on the
last node, and each node's CPU seconds, peak memory and client connections are recorded too.

Usage: python bench/bench_ladder.py [--counts 1000,2000] [--per-process 250] [--timeout S] [--record]
                                    [--kind prosody|ejabberd] [--cluster N]
``make bench`` runs 1,000 and 2,000; ``make bench-10k`` 5,000 and 10,000 (see the Makefile).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe as machine  # bench/machine.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
TEMPLATE = ROOT / "scenarios" / "city-1k.toml"
PAGE = os.sysconf("SC_PAGE_SIZE")


def scenario_text(count: int, per_process: int, until: str, kind: str = "prosody", cluster: int = 0) -> str:
    """city-1k with ``count`` prosumers (half per aggregator) and the run ending at ``until``, on
    a private server of ``kind`` or a private ejabberd cluster of ``cluster`` nodes."""
    text = TEMPLATE.read_text()
    if '[server]\nkind = "prosody"\n' not in text:
        raise SystemExit(f"{TEMPLATE} changed: expected [server] kind = \"prosody\"")
    if cluster:
        text = text.replace('[server]\nkind = "prosody"\n', f'[server]\nkind = "ejabberd"\nnodes = {cluster}\n')
        last = "abcdefghijklmnopqrstuvwxyz"[cluster - 1]
        text = re.sub(r'(?m)^(\[market\]\nname = "market"\n)', f'\\1node = "{last}"\n', text)
        text = re.sub(r'(?m)^(\[\[aggregator\]\]\nname = "\w+"\n)', f'\\1node = "{last}"\n', text)
        groups = iter(range(10**6))
        text = re.sub(r"(?m)^(\[\[prosumers\]\]\n)",
                      lambda m: m.group(1) + f'node = "{"abcdefghijklmnopqrstuvwxyz"[next(groups) % cluster]}"\n', text)
    else:
        text = text.replace('[server]\nkind = "prosody"\n', f'[server]\nkind = "{kind}"\n')
    half = count // 2
    procs = max(1, -(-half // per_process))
    text = re.sub(r'(?m)^name = "city-1k"', f'name = "ladder-{count}"', text)
    text = re.sub(r'(?m)^until = "[^"]+"', f'until = "{until}"', text)
    text = re.sub(r"(?m)^count = 500$", f"count = {half}", text)
    text = re.sub(r"(?m)^processes = 2$", f"processes = {procs}", text)
    if text.count(f"count = {half}") != 2:
        raise SystemExit(f"{TEMPLATE} changed: expected two prosumer groups of count = 500")
    return text


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    from vmenergy.runtime.servers.process import proc_table

    children: dict[int, list[int]] = {}
    for pid, _, ppid, _ in proc_table():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def _label(pid: int) -> str:
    """What a process of a run is: its swarm part, the XMPP server, or the run itself (the report)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "--part" in args:
        return args[args.index("--part") + 1]
    return "server" if any("prosody" in a or "beam" in a for a in args[:2]) else "run"


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _nodes(run_dir: Path) -> dict[str, int]:
    """The private server's (or each cluster node's) process id, by run directory name."""
    found = {}
    for info in sorted((run_dir / "xmpp").glob("**/server.json")):
        try:
            found[info.parent.name] = int(json.loads(info.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return found


def measure_run(scen: Path, run_dir: Path, timeout: float) -> tuple[dict, str]:
    """Run ``vmenergy run SCEN`` and measure it from outside: wall time, CPU seconds of the
    process tree (children's rusage), peak summed RSS (sampled every second), exit code, load
    average before and after; per server node (``nodes``) its CPU and peak RSS; per process
    (``by_part``: swarm part, server, run) its peak RSS and the CPU seconds it had used at its
    last sample; with the run's output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vmenergy", "run", str(scen), "--out", str(run_dir),
                             "--timeout", str(timeout)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]
    node_cpu: dict[str, float] = {}
    node_rss: dict[str, int] = {}
    parts: dict[str, dict] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            pids = _tree(proc.pid)
            peak[0] = max(peak[0], _rss_bytes(pids))
            for name, pid in _nodes(run_dir).items():  # each server (node): its process tree
                tree = _tree(pid)
                node_cpu[name] = max(node_cpu.get(name, 0.0), _cpu_seconds(tree))
                node_rss[name] = max(node_rss.get(name, 0), _rss_bytes(tree))
            for pid in pids:
                part = parts.setdefault(_label(pid), {"peak_rss_mib": 0, "cpu": {}})
                part["peak_rss_mib"] = max(part["peak_rss_mib"], _rss_bytes([pid]) >> 20)
                part["cpu"][pid] = _cpu_seconds([pid])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.communicate()[0]
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": peak[0] >> 20, "exit": proc.returncode,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "nodes": {n: {"cpu_s": round(node_cpu[n], 1), "peak_rss_mib": node_rss.get(n, 0) >> 20}
                      for n in sorted(node_cpu)},
            "by_part": {k: {"peak_rss_mib": v["peak_rss_mib"], "cpu_s": round(sum(v["cpu"].values()), 1)}
                        for k, v in sorted(parts.items())}}, output


def run_rung(count: int, per_process: int, timeout: float, base: Path, kind: str = "prosody",
             cluster: int = 0) -> dict:
    until = "2026-11-23T18:00:00Z"
    scen = base / f"ladder-{count}.toml"
    scen.write_text(scenario_text(count, per_process, until, kind, cluster))
    # the scenario's inputs are found relative to the scenario file or scenarios/
    run_dir = base / f"run-{count}"
    measured, output = measure_run(scen, run_dir, timeout)
    result: dict = {"count": count, **measured, "server": f"{cluster}-node ejabberd cluster" if cluster else kind}
    cpu, wall, peak = measured["cpu_s"], measured["wall_s"], [measured["peak_rss_mib"] << 20]
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        timings = json.loads((run_dir / "timings.json").read_text())
    except (OSError, ValueError):
        result["error"] = output[-3000:]
        return result
    offers = summary["offers"]["by_prosumers"]
    parts = timings.get("parts", {})
    agents = sum(p.get("agents", 0) for p in parts.values())
    start = max((p.get("start_seconds", 0) for p in parts.values()), default=0)
    work = timings.get("work", {})
    steps = sum(v for k, v in work.items() if k.endswith("_steps"))
    plan = json.loads((run_dir / "plan.json").read_text())
    on_node: dict[str, int] = {}
    for agent in plan["agents"]:  # clients per node (a single server: all on it)
        node = plan.get("node_of", {}).get(agent["part"], "server")
        on_node[node] = on_node.get(node, 0) + 1
    for i, name in enumerate(sorted(result["nodes"])):
        letter = "abcdefghijklmnopqrstuvwxyz"[i] if cluster else "server"
        result["nodes"][name]["clients"] = on_node.get(letter, 0)
    result.update({
        "finished": summary["outcome"]["finished"], "stopped_by": summary["outcome"]["stopped_by"],
        "offers": sum(offers.values()),
        "settled": offers.get("settled", 0), "agents": agents,
        "start_agents_per_s": round(agents / start, 1) if start else None,
        "cpu_ms_per_agent": round(1000 * cpu / max(1, agents), 1),
        "rss_kib_per_agent": round((peak[0] >> 10) / max(1, agents), 1),
        "steps": steps, "steps_per_wall_s": round(steps / wall, 1),
        "prosumer_steps_per_offer": round(work.get("prosumer_steps", 0) / max(1, sum(offers.values())), 2),
        "prosumer_presence_per_agent": round(work.get("prosumer_presence_stanzas", 0) / max(1, count), 2),
        "run_s": timings.get("run_seconds"),
    })
    return result


def markdown(results: list[dict], command: str) -> str:
    lines = [f"## Scale ladder: prosumers with device models through a day (`bench/bench_ladder.py`)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}. Command: `{command}`. "
             "Load average (1, 5, 15 min) before and after each rung in the table. "
             f"Server: {', '.join(sorted({r.get('server', 'prosody') for r in results}))}.", "",
             "| prosumers | wall s | stopped by | settled / offers | start agents/s | CPU s (all processes) | "
             "CPU ms/agent | peak RSS MiB | KiB/agent | engine steps | steps/s | prosumer steps/offer | "
             "presence stanzas/prosumer | load before / after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['count']:,} | {r['wall_s']} | error (exit {r['exit']}) | | | {r['cpu_s']} | | "
                         f"{r['peak_rss_mib']} | | | | | | {r['load_before'][0]} / {r['load_after'][0]} |")
            continue
        lines.append(
            f"| {r['count']:,} | {r['wall_s']} | {r['stopped_by']} | {r['settled']:,} / {r['offers']:,} "
            f"| {r['start_agents_per_s']} | {r['cpu_s']} | {r['cpu_ms_per_agent']} | {r['peak_rss_mib']} "
            f"| {r['rss_kib_per_agent']} | {r['steps']:,} | {r['steps_per_wall_s']} | {r['prosumer_steps_per_offer']} "
            f"| {r['prosumer_presence_per_agent']} | {r['load_before'][0]} / {r['load_after'][0]} |")
    noded = [r for r in results if r.get("nodes")]
    if noded:
        lines += ["", "Per server node (process tree of each node, sampled every second):", "",
                  "| prosumers | server | node | clients | CPU s | CPU ms/client | peak RSS MiB |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in noded:
            for name, n in r["nodes"].items():
                per = round(1000 * n["cpu_s"] / n["clients"], 1) if n.get("clients") else "-"
                lines.append(f"| {r['count']:,} | {r['server']} | {name} | {n.get('clients', '-')} | {n['cpu_s']} "
                             f"| {per} | {n['peak_rss_mib']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1000,2000", help="prosumer counts, comma-separated (default 1000,2000)")
    ap.add_argument("--per-process", type=int, default=250, help="prosumers per swarm process (default 250, as city-1k)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="real seconds a rung may take (default 3600)")
    ap.add_argument("--quick", action="store_true", help="one rung of 100 prosumers")
    ap.add_argument("--record", action="store_true", help="append the Markdown section to bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    ap.add_argument("--kind", default="prosody", choices=("prosody", "ejabberd"), help="the private server (default prosody)")
    ap.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="a private ejabberd cluster of N nodes instead (prosumer groups alternate over the nodes)")
    args = ap.parse_args(argv)
    counts = [100] if args.quick else [int(c) for c in args.counts.split(",") if c.strip()]
    results = []
    base = Path(tempfile.mkdtemp(prefix="vme-ladder-"))
    try:
        for count in counts:
            print(f"ladder: {count} prosumers ...", flush=True)
            r = run_rung(count, args.per_process, args.timeout, base, args.kind, args.cluster)
            print(json.dumps(r), flush=True)
            results.append(r)
    finally:
        if args.keep:
            print(f"run folders kept in {base}")
        else:
            subprocess.run(["rm", "-rf", str(base)], check=False)
    text = markdown(results, "python bench/bench_ladder.py " + " ".join(argv))
    print(text)
    if args.record:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n" + text)
    # offers the devices make on the second day's noon cannot settle by the end: "until" is normal
    return 0 if all("error" not in r and r.get("stopped_by") in ("done", "until") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
