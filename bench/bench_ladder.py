"""The scale ladder: N prosumer agents with device models through one simulated day, for several N.

Each rung is ``scenarios/city-1k.toml`` with its two prosumer groups set to N/2 each (one swarm
process per ``--per-process`` prosumers of either group), from noon to 18:00 the next day (offers at noon for the
day ahead, the market, assignments, execution, metering, bills), run with ``vmenergy run`` on a
private Prosody in virtual time. Measured per rung, from outside (``/proc`` of the run's process
tree, sampled every second, and the children's rusage):

- wall time of the whole run (start-up included) and the outcome (settled / all offers);
- start-up: agents per second (timings.json, per process);
- CPU seconds of the run's processes (Prosody included) and per agent;
- peak resident memory of the process tree (sum of RSS) and per agent;
- engine steps and presence stanzas (timings.json ``work``), and steps per wall second.

Beside each rung, in the same run, its reference (bench/ladder_reference.py): as many plain
slixmpp clients as the rung has agents, on a private server of the same kind provisioned the same
way, in the same processes, logging in the same way and exchanging as many messages per client
as the agents did (by sender and receiver role, from the run's counts) through the same span:
start rate, CPU and memory per client of XMPP alone. On by default for rungs of up to
``REFERENCE_UP_TO`` prosumers; ``--reference`` for every rung, ``--no-reference`` for none.

With ``--kind ejabberd`` the rungs run on a private ejabberd; with ``--cluster N`` on a private
ejabberd cluster of N nodes the run starts itself (``[server] nodes = N``): the prosumer groups
alternate over the nodes (north on a, south on b, ...), the aggregators and the market are on the
last node, and each node's CPU seconds, peak memory and client connections are recorded too.

Usage: python bench/bench_ladder.py [--counts 1000,2000 | --up-to N] [--per-process 500] [--timeout S] [--record]
                                    [--kind prosody|ejabberd] [--cluster N] [--reference | --no-reference]
``make bench`` runs 1,000 and 2,000; ``make bench-10k`` 5,000 and 10,000; ``make bench-largest``
climbs 1,000, 2,000, 5,000, 10,000, 20,000 ... until a rung does not complete or would not fit
in memory (projected from the rung before), and says the largest that completed.
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
#: Rungs up to this many prosumers run their plain-XMPP reference unless told not to.
REFERENCE_UP_TO = 2000


def scenario_text(count: int, per_process: int, until: str, kind: str = "prosody", cluster: int = 0) -> str:
    """city-1k with ``count`` prosumers (half per aggregator) in processes of at most
    ``per_process`` prosumers, the run ending at ``until``, on a private server of ``kind`` or a
    private ejabberd cluster of ``cluster`` nodes. The two groups share their processes
    (prosumer ``i`` of every group runs in part ``prosumers-{i % processes}``), so a group's
    ``processes`` is the number of processes of the whole population."""
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
    procs = max(1, -(-count // per_process))
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


def _rss_by_process(pids: list[int]) -> dict[str, int]:
    """Resident bytes of each process, keyed ``label`` (``label#2`` for a second one)."""
    out: dict[str, int] = {}
    for pid in pids:
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
        label, n = _label(pid), 2
        key = label
        while key in out:
            key, n = f"{label}#{n}", n + 1
        out[key] = rss
    return out


def _rss_bytes(pids: list[int]) -> int:
    return sum(_rss_by_process(pids).values())


def _peak_kinds(by_process: dict[str, int]) -> dict[str, int]:
    """The breakdown at the moment of the peak (it sums to the peak; ``by_part`` holds each
    process's own peak, whenever it came) by kind, MiB: the server, the prosumer processes (and
    the largest of them), the aggregators/market/DSO processes, the run's own process."""
    kinds: dict[str, int] = {}
    for key, rss in by_process.items():
        label = key.split("#")[0]
        kind = "prosumer processes" if label.startswith("prosumers-") else label
        kinds[kind] = kinds.get(kind, 0) + rss
    prosumers = [rss for key, rss in by_process.items() if key.startswith("prosumers-")]
    if prosumers:
        kinds["largest prosumer process"] = max(prosumers)
    return {k: v >> 20 for k, v in sorted(kinds.items())}


def _label(pid: int) -> str:
    """What a process of a run is: its swarm part, the XMPP server, or the run itself (the report)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "--part" in args:
        return args[args.index("--part") + 1]
    if not any(args):  # exited, not yet reaped: its CPU is already counted under its own label
        return "?"
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
    at_peak: dict[str, int] = {}
    node_cpu: dict[str, float] = {}
    node_rss: dict[str, int] = {}
    parts: dict[str, dict] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            pids = _tree(proc.pid)
            by_process = _rss_by_process(pids)
            total = sum(by_process.values())
            if total > peak[0]:
                peak[0] = total
                at_peak.clear()
                at_peak.update(by_process)
            for name, pid in _nodes(run_dir).items():  # each server (node): its process tree
                tree = _tree(pid)
                node_cpu[name] = max(node_cpu.get(name, 0.0), _cpu_seconds(tree))
                node_rss[name] = max(node_rss.get(name, 0), _rss_bytes(tree))
            for pid in pids:
                label = _label(pid)
                if label == "?":  # gone, or a zombie whose CPU would land under "run"
                    continue
                part = parts.setdefault(label, {"peak_rss_mib": 0, "cpu": {}})
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
            "peak_mib_by_kind": _peak_kinds(at_peak), "processes": len(at_peak),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "nodes": {n: {"cpu_s": round(node_cpu[n], 1), "peak_rss_mib": node_rss.get(n, 0) >> 20}
                      for n in sorted(node_cpu)},
            "by_part": {k: {"peak_rss_mib": v["peak_rss_mib"], "cpu_s": round(sum(v["cpu"].values()), 1)}
                        for k, v in sorted(parts.items())}}, output


def run_rung(count: int, per_process: int, timeout: float, base: Path, kind: str = "prosody",
             cluster: int = 0, reference: bool = False) -> dict:
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
        "messages": {k: v for k, v in work.items() if k.startswith("messages_")},
    })
    if reference:
        result["reference"] = rung_reference(run_dir, timings, base / f"reference-{count}", kind, cluster, timeout)
    return result


def rung_reference(run_dir: Path, timings: dict, base: Path, kind: str, cluster: int, timeout: float) -> dict:
    """The rung's plain-XMPP reference (bench/ladder_reference.py) for the run in ``run_dir``."""
    from ladder_reference import run_reference  # bench/ladder_reference.py

    from vmenergy.runtime.scenario import Plan

    if cluster:
        return {"error": "not run: the reference starts a single server, not a cluster"}
    if not any(k.startswith("messages_") for k in timings.get("work", {})):
        return {"error": "not run: the run counted no messages (timings.json work messages_*)"}
    print(f"ladder: reference for {run_dir.name} ...", flush=True)
    ref = run_reference(Plan.load(run_dir / "plan.json"), timings["work"], float(timings.get("run_seconds") or 0),
                        base, kind=kind, timeout=timeout)
    ref.pop("received_by", None)  # one count per client (clients_short says how many got less than owed)
    return ref


def _swarm_cpu_s(r: dict) -> float:
    """CPU seconds of a rung's agents' processes and server: all of the run's but its own
    process's (the coordinator and the report, which the reference has no counterpart of)."""
    return r["cpu_s"] - r.get("by_part", {}).get("run", {}).get("cpu_s", 0.0)


def _swarm_peak_mib(r: dict) -> int:
    """The peak of the summed RSS of a rung's agents' processes and server (the run's own
    process's share at that moment left out)."""
    return r["peak_rss_mib"] - r.get("peak_mib_by_kind", {}).get("run", 0)


def _server_cpu_s(r: dict) -> float:
    return sum(n["cpu_s"] for n in r.get("nodes", {}).values())


def reference_lines(results: list[dict]) -> list[str]:
    """The table of each rung beside its reference: agents / plain XMPP clients."""
    rows = [r for r in results if "reference" in r and "error" not in r]
    if not rows:
        return []
    lines = ["", "Beside each rung, measured in the same run: **plain XMPP** (bench/ladder_reference.py): as many "
             "plain slixmpp clients on a private server of the same kind, provisioned the same way, in the same "
             "processes, logging in the same way (STARTTLS, SCRAM, binding, presence to the same rosters) and "
             "exchanging as many messages per client by role through the same span (the day's `run_seconds`). "
             "Agents' CPU and memory here are the swarm's and the server's: the run's own process (coordinator and "
             "report) is left out, its CPU and its share of the peak; memory is the peak of the summed RSS "
             "(sampled every second) for both.", "",
             "| prosumers | clients | span s | start /s agents / XMPP | CPU ms per client agents / XMPP | ÷ | "
             "server CPU s agents / XMPP | peak RSS MiB agents / XMPP | KiB per client agents / XMPP | ÷ | "
             "messages per client | received / sent | XMPP wall s | load before / after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = r["reference"]
        if "error" in ref:
            lines.append(f"| {r['count']:,} | reference {ref['error']} |" + " |" * 12)
            continue
        agents = max(1, r["agents"])
        swarm_ms = 1000 * _swarm_cpu_s(r) / agents
        swarm_kib = (_swarm_peak_mib(r) << 10) / agents
        lines.append(
            f"| {r['count']:,} | {ref['clients']:,} | {ref['span_s']} | {r['start_agents_per_s']} / "
            f"{ref['start_clients_per_s']} | {swarm_ms:.1f} / {ref['cpu_ms_per_client']} "
            f"| {swarm_ms / max(0.001, ref['cpu_ms_per_client']):.1f}x | {_server_cpu_s(r):.1f} / {ref['server_cpu_s']} "
            f"| {_swarm_peak_mib(r):,} / {ref['peak_rss_mib']:,} | {swarm_kib:.1f} / {ref['rss_kib_per_client']} "
            f"| {swarm_kib / max(0.001, ref['rss_kib_per_client']):.1f}x | {ref['messages_per_client']} "
            f"| {ref['messages_received']:,} / {ref['messages_sent']:,} | {ref['wall_s']} "
            f"| {ref['load_before'][0]} / {ref['load_after'][0]} |")
    lines.append("")
    for r in rows:
        ref = r["reference"]
        if "error" in ref:
            continue
        kinds = ", ".join(f"{k} {v}" for k, v in ref.get("peak_mib_by_kind", {}).items())
        msgs = ", ".join(f"{k[len('messages_'):].replace('_to_', '->')} {v:,}" for k, v in sorted(r["messages"].items()))
        unplaced = f"; not reproduced (no link between the roles): {ref['unplaced']}" if ref.get("unplaced") else ""
        lines.append(f"- {r['count']:,} prosumers: the run's messages by role {msgs}; plain XMPP's peak MiB by "
                     f"process kind: {kinds}{unplaced}")
    return lines


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
        if "skipped" in r:
            lines.append(f"| {r['count']:,} | not started: {r['skipped']} |" + " |" * 12)
            continue
        if "error" in r:
            lines.append(f"| {r['count']:,} | {r['wall_s']} | error (exit {r['exit']}) | | | {r['cpu_s']} | | "
                         f"{r['peak_rss_mib']} | | | | | | {r['load_before'][0]} / {r['load_after'][0]} |")
            continue
        lines.append(
            f"| {r['count']:,} | {r['wall_s']} | {r['stopped_by']} | {r['settled']:,} / {r['offers']:,} "
            f"| {r['start_agents_per_s']} | {r['cpu_s']} | {r['cpu_ms_per_agent']} | {r['peak_rss_mib']} "
            f"| {r['rss_kib_per_agent']} | {r['steps']:,} | {r['steps_per_wall_s']} | {r['prosumer_steps_per_offer']} "
            f"| {r['prosumer_presence_per_agent']} | {r['load_before'][0]} / {r['load_after'][0]} |")
    lines.append("")
    done = [r["count"] for r in results if completed(r)]
    lines.append(f"Largest population that completed the day in this run: "
                 f"{f'{max(done):,} prosumers' if done else 'none'}.")
    lines += reference_lines(results)
    lines.append("")
    for r in results:  # where the peak's memory was
        if "skipped" in r:
            continue
        kinds = ", ".join(f"{k} {v}" for k, v in r.get("peak_mib_by_kind", {}).items())
        lines.append(f"- {r['count']:,} prosumers, peak resident MiB by process kind ({r.get('processes', 0)} "
                     f"processes): {kinds}")
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


def ladder_counts(up_to: int) -> list[int]:
    """The rungs 1,000, 2,000, 5,000, 10,000, 20,000, ... (1-2-5 steps) up to ``up_to``, and
    ``up_to`` itself as the last rung."""
    counts, step = [], 0
    while True:
        c = (1, 2, 5)[step % 3] * 1000 * 10 ** (step // 3)
        if c >= up_to:
            return counts + [up_to]
        counts.append(c)
        step += 1


def completed(r: dict) -> bool:
    """Whether a rung ran its day to the end (``until``: see :func:`main`)."""
    return "error" not in r and "skipped" not in r and r.get("stopped_by") in ("done", "until")


def projected_peak_mib(previous: dict, count: int) -> float:
    """The next rung's peak resident memory if it grows in proportion to the prosumers from the
    previous rung (fixed costs included: an over-estimate, which is the safe side)."""
    return previous["peak_rss_mib"] * count / previous["count"]


def _available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1000,2000", help="prosumer counts, comma-separated (default 1000,2000)")
    ap.add_argument("--per-process", type=int, default=500,
                    help="prosumers per swarm process (default 500, as city-1k: its groups share two processes)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="real seconds a rung may take (default 3600)")
    ap.add_argument("--up-to", type=int, default=None, metavar="N",
                    help="the largest population the box holds: rungs 1,000, 2,000, 5,000, 10,000, ... up to N, "
                         "stopping at the first that does not complete (or would not fit, see --max-gib)")
    ap.add_argument("--max-gib", type=float, default=16.0,
                    help="do not start a rung whose projected peak memory exceeds this (default 16) or what "
                         "the machine has available")
    ap.add_argument("--quick", action="store_true", help="one rung of 100 prosumers")
    ap.add_argument("--record", action="store_true", help="append the Markdown section to bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    ap.add_argument("--kind", default="prosody", choices=("prosody", "ejabberd"), help="the private server (default prosody)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--reference", dest="reference", action="store_true", default=None,
                       help=f"run the plain-XMPP reference beside every rung (default: rungs up to {REFERENCE_UP_TO:,})")
    which.add_argument("--no-reference", dest="reference", action="store_false",
                       help="run no reference (big rungs that would not fit in time or memory)")
    ap.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="a private ejabberd cluster of N nodes instead (prosumer groups alternate over the nodes)")
    args = ap.parse_args(argv)
    if args.quick:
        counts = [100]
    elif args.up_to is not None:
        counts = ladder_counts(args.up_to)
    else:
        counts = [int(c) for c in args.counts.split(",") if c.strip()]
    results: list[dict] = []
    base = Path(tempfile.mkdtemp(prefix="vme-ladder-"))
    try:
        for count in counts:
            ran = [r for r in results if "peak_rss_mib" in r and "skipped" not in r]
            if ran:  # memory first: a run that does not fit would take the machine down with it
                need = projected_peak_mib(ran[-1], count)
                room = min(args.max_gib * 1024, _available_mib())
                if need > room:
                    results.append({"count": count, "skipped": f"projected peak {need / 1024:.1f} GiB, "
                                                               f"limit {room / 1024:.1f} GiB"})
                    print(f"ladder: {count} prosumers not started: {results[-1]['skipped']}", flush=True)
                    break
            print(f"ladder: {count} prosumers ...", flush=True)
            reference = count <= REFERENCE_UP_TO if args.reference is None else args.reference
            r = run_rung(count, args.per_process, args.timeout, base, args.kind, args.cluster, reference)
            print(json.dumps(r), flush=True)
            results.append(r)
            if args.up_to is not None and not completed(r):
                break
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
    return 0 if all(completed(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
