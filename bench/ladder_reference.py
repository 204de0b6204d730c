"""The ladder's reference: what XMPP alone costs at a rung's size, measured in the same run.

After a rung's agents have run their day (bench/bench_ladder.py), the same number of plain
slixmpp clients (no SPADE, no VME engines, stores or devices) run through the same span on a
private server of the same kind, started and provisioned the way ``vmenergy run`` does it
(``prepare_server`` with registration closed, the same accounts, the prosumers' subscriptions
written into the rosters with ``preset_contacts``), in the same process layout: one process per
part of the run's plan holding that part's accounts, at the same priority (runtime/priority.py).

Each client logs in as an agent does: STARTTLS with certificate verification, SCRAM, resource
binding, and the slixmpp tunings the swarm processes install (those of ``xmpp_tuning.tune_process``
that concern slixmpp: one TLS context per process, hashlib's PBKDF2 for SCRAM, the fast XML
escape, the heap frozen after start-up), in batches of the swarm's size; then sends its available presence (to its roster, as the agents' presence goes).
Not reproduced: XEP-0198 stream management (the agents request acks in bursts), the agents'
metadata, and the shape of the protocol stanzas (a reference message is a chat message with a
body of ``body_bytes`` characters).

The exchange: the run counts the protocol messages its agents received from one another by
sender and receiver role (``messages_prosumer_to_aggregator`` in timings.json ``work``,
runtime/driver.py). :func:`quotas` spreads each count evenly over the plan's links between
agents of those roles (an agent is linked to every agent its configuration names: a prosumer to
its aggregator, an aggregator to its market or parent), so every reference client sends what an
agent of its role sent on average, to the same peers. Each client's messages go out spread
evenly over the first 90 % of the span (the agents' ``run_seconds``), each client's at its own
phase, so the reference runs as long as the day and its traffic is not one burst.

Measured (as the rung is): the start rate (clients / the slowest process's log-in time), CPU
seconds of the client processes (their own rusage) and of the server (its process group), the
peak of the summed resident memory of client processes and server (sampled every second), and
every message sent and received.

Usage (by bench_ladder.py): ``run_reference(plan, work, span, base)``; a client process is
``python bench/ladder_reference.py --part NAME JOB.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

#: Clients logging in at once in one process: the swarm's batch (vmenergy/runtime/swarm.py BATCH).
BATCH = 50
#: The share of the span over which the messages go out (the rest lets the last ones arrive).
SEND_SHARE = 0.9
#: Characters of a reference message's body: between an ack (275 bytes as written) and an offer
#: (544) of the agents without the SPADE form (bench/RESULTS.md, "Agent path, round 4").
BODY_BYTES = 400
PREFIX = "messages_"


class Agent(Protocol):
    """What the reference needs of a plan's agent (vmenergy.runtime.scenario.AgentSpec)."""

    role: str
    jid: str
    part: str
    config: dict


def message_counts(work: Mapping[str, int]) -> dict[tuple[str, str], int]:
    """(sender role, receiver role) -> protocol messages, from a run's ``work`` counters."""
    counts: dict[tuple[str, str], int] = {}
    for key, n in work.items():
        if not key.startswith(PREFIX):
            continue
        sender, sep, receiver = key[len(PREFIX):].partition("_to_")
        if not sep or not sender or not receiver:
            raise ValueError(f"work.{key}: expected messages_<sender role>_to_<receiver role>")
        counts[(sender, receiver)] = int(n)
    return counts


def _named(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value.lower()
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _named(v)


def links(agents: Sequence[Agent]) -> list[tuple[str, str]]:
    """Pairs of agents that talk: one names the other's JID in its configuration (a prosumer its
    aggregator, an aggregator its market or parent). Each pair once, as (named by, named)."""
    jids = {a.jid.lower() for a in agents}
    out: set[tuple[str, str]] = set()
    for a in agents:
        me = a.jid.lower()
        for value in a.config.values():
            for name in _named(value):
                if name in jids and name != me and (name, me) not in out:
                    out.add((me, name))
    return sorted(out)


def quotas(agents: Sequence[Agent], counts: Mapping[tuple[str, str], int]
           ) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """How many messages each client sends to each peer: every (sender role, receiver role)
    count spread evenly over the links between agents of those roles, in both directions (the
    first ``count % links`` links, in JID order, take one more). Returns (sender JID -> peer JID
    -> messages, the counts no link carries: roles the plan does not link)."""
    role = {a.jid.lower(): a.role for a in agents}
    directed: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for x, y in links(agents):
        for s, r in ((x, y), (y, x)):
            directed.setdefault((role[s], role[r]), []).append((s, r))
    plan: dict[str, dict[str, int]] = {}
    unplaced: dict[tuple[str, str], int] = {}
    for pair, total in sorted(counts.items()):
        if total < 0:
            raise ValueError(f"counts[{pair}]: {total} is not a count")
        edges = sorted(directed.get(pair, []))
        if not edges:
            if total:
                unplaced[pair] = total
            continue
        each, extra = divmod(total, len(edges))
        for i, (s, r) in enumerate(edges):
            n = each + (1 if i < extra else 0)
            if n:
                peers = plan.setdefault(s, {})
                peers[r] = peers.get(r, 0) + n
    return plan, unplaced


def expected(plan: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Messages each client is to receive under ``plan`` (see :func:`quotas`)."""
    out: dict[str, int] = {}
    for peers in plan.values():
        for peer, n in peers.items():
            out[peer] = out.get(peer, 0) + n
    return out


def send_times(jid: str, n: int, spread: float) -> list[float]:
    """Offsets (seconds after the start of the exchange) of a client's ``n`` messages: evenly
    over ``spread``, at a phase of its own (from its JID, so a rerun sends at the same times)."""
    phase = int.from_bytes(hashlib.sha256(jid.encode()).digest()[:4], "big") / 2 ** 32
    return [spread * (k + phase) / n for k in range(n)]


# ---------------------------------------------------------------------------------------------
# A client process


@dataclass
class _Tally:
    received: int = 0
    sent: int = 0


async def _client_main(job: dict) -> dict:
    from bench_xmpp import _client_class  # bench/bench_xmpp.py: a plain slixmpp client with a ready future

    from vmenergy.runtime import xmpp_tuning
    from vmenergy.runtime.servers import ServerInfo

    info = ServerInfo.from_json(job["server"])
    # the swarm's slixmpp tunings (tune_process), not its VME ones (the lazy web console and the
    # SQLite page cache import aiohttp and the store: ~125 MiB a process that plain clients lack)
    xmpp_tuning.install_fast_scram()
    xmpp_tuning.install_shared_tls(info.ca_file)
    xmpp_tuning.install_fast_escape()
    context = xmpp_tuning.client_ssl_context(info.ca_file)
    cls = _client_class()
    tally = _Tally()
    received_by: dict[str, int] = {}
    everyone_in = asyncio.get_running_loop().create_future()
    want = sum(c["expect"] for c in job["clients"])

    def on_message(msg: Any) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"].startswith("r:"):
            tally.received += 1
            to = msg["to"].bare.lower()
            received_by[to] = received_by.get(to, 0) + 1
            if tally.received >= want and not everyone_in.done():
                everyone_in.set_result(True)

    clients = []
    for spec in job["clients"]:
        c = cls(spec["jid"], spec["password"], ssl_context=context)
        c.add_event_handler("message", on_message)
        clients.append(c)
    t0 = time.perf_counter()
    for i in range(0, len(clients), BATCH):
        batch = clients[i:i + BATCH]
        for c in batch:
            c.connect(host=info.host, port=info.port)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in batch)), job["connect_timeout"])
    start_s = time.perf_counter() - t0
    xmpp_tuning.freeze_heap()  # as the swarm does after start-up
    print(json.dumps({"ready": True, "start_seconds": round(start_s, 3)}), flush=True)
    go = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(go.set_result, True)),
                     daemon=True).start()
    await go
    t_go = loop.time()
    span = float(job["span"])
    body = "r:" + "x" * max(0, int(job["body_bytes"]) - 2)

    def send(client: Any, peer: str) -> None:
        client.send_message(mto=peer, mbody=body, mtype="chat")
        tally.sent += 1

    for c, spec in zip(clients, job["clients"]):
        plan = [peer for peer, n in sorted(spec["send"].items()) for _ in range(n)]
        for offset, peer in zip(send_times(spec["jid"], len(plan), SEND_SHARE * span), plan):
            loop.call_at(t_go + offset, send, c, peer)
    await asyncio.sleep(max(0.0, t_go + span - loop.time()))
    if want:  # the span is over; what is still on its way may take a little longer under load
        try:
            await asyncio.wait_for(asyncio.shield(everyone_in), job["drain_timeout"])
        except asyncio.TimeoutError:
            pass
    exchange_s = loop.time() - t_go
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"done": True, "clients": len(clients), "sent": tally.sent, "received": tally.received,
              "expected": want, "exchange_seconds": round(exchange_s, 2),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "maxrss_kib": usage.ru_maxrss,
              "start_seconds": round(start_s, 3), "received_by": received_by}
    await asyncio.wait_for(asyncio.gather(*(c.disconnect(wait=2) for c in clients), return_exceptions=True), 60)
    return result


def client_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(description="one process of the ladder's reference clients")
    ap.add_argument("--part", required=True, help="the plan's part this process stands for")
    ap.add_argument("job", type=Path)
    args = ap.parse_args(argv)
    from vmenergy.runtime.priority import lower_own_priority, part_niceness
    from vmenergy.runtime.private import read_private

    job = json.loads(read_private(args.job, "reference job"))
    lower_own_priority(part_niceness(job["roles"]))  # before any thread starts, as the swarm does
    try:  # the swarm's processes run on SPADE's loop, which is uvloop's
        import uvloop

        result = uvloop.run(_client_main(job))
    except ImportError:  # pragma: no cover - uvloop comes with spade
        result = asyncio.run(_client_main(job))
    print(json.dumps(result), flush=True)
    return 0 if result["received"] >= result["expected"] else 1


# ---------------------------------------------------------------------------------------------
# The whole reference, from bench_ladder.py


def _spawn(part: str, job: dict, job_path: Path, roles: Iterable[str]) -> subprocess.Popen:
    from vmenergy.runtime.priority import spawn_options
    from vmenergy.runtime.private import write_private

    write_private(job_path, json.dumps(job))  # it holds passwords
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--part", part, str(job_path)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            **spawn_options(roles))


def _read_json_line(proc: subprocess.Popen, timeout: float) -> Optional[dict]:
    """The next JSON line of ``proc``'s output within ``timeout`` seconds (other lines skipped),
    or None if it ended or took longer."""
    found: list[dict] = []

    def read() -> None:
        for line in proc.stdout or ():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                    return
                except ValueError:
                    continue

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return found[0] if found else None


def run_reference(plan: Any, work: Mapping[str, int], span: float, base: Path, *,
                  kind: str = "prosody", body_bytes: int = BODY_BYTES, timeout: float = 1800.0) -> dict:
    """Run the reference for a run's ``plan`` (vmenergy.runtime.scenario.Plan: its agents and
    parts), its ``work`` counters and its span (seconds) on a private server of ``kind`` that it
    starts and provisions as ``vmenergy run`` does; returns its figures (see the module's
    docstring), or ``{"error": ...}``."""
    from vmenergy.runtime.orchestrator import prosumer_contacts
    from vmenergy.runtime.servers import prepare_server, preset_contacts, stop_server

    agents: Sequence[Agent] = plan.agents
    sends, unplaced = quotas(agents, message_counts(work))
    base.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    run = prepare_server({"kind": kind}, [a.jid for a in agents], base / "xmpp")
    try:
        if not run.register_in_band:
            preset_contacts(run.info, prosumer_contacts(plan))
        result = exchange(agents, sends, run.info, run.passwords, span, base, body_bytes=body_bytes, timeout=timeout)
    finally:
        stop_server(base / "xmpp")
    result.update(wall_s=round(time.perf_counter() - t0, 1), load_before=[round(x, 2) for x in load_before],
                  load_after=[round(x, 2) for x in os.getloadavg()],
                  unplaced={f"{s}->{r}": n for (s, r), n in unplaced.items()})
    return result


def exchange(agents: Sequence[Agent], sends: Mapping[str, Mapping[str, int]], info: Any,
             passwords: Mapping[str, str], span: float, base: Path, *, body_bytes: int = BODY_BYTES,
             timeout: float = 1800.0) -> dict:
    """The reference clients on a running server (``info``, a ServerInfo; accounts made with
    ``passwords`` by lower-case bare JID): one process per part of ``agents``, logging in, then
    sending ``sends`` (see :func:`quotas`) through ``span`` seconds. Figures as documented in the
    module, with ``received_by`` (bare JID -> messages it received), or ``{"error": ...}``."""
    from bench_ladder import _cpu_seconds, _peak_kinds, _rss_by_process, _tree

    from vmenergy.runtime.servers.process import group_members

    want = expected(sends)
    base.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    peak = [0]
    at_peak: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:  # the client processes and the server (both are this process's children)
        while not stop.wait(1.0):
            by_process = _rss_by_process([p for p in _tree(os.getpid()) if p != os.getpid()])
            total = sum(by_process.values())
            if total > peak[0]:
                peak[0] = total
                at_peak.clear()
                at_peak.update(by_process)

    threading.Thread(target=sample, daemon=True).start()
    try:
        parts: dict[str, list[Agent]] = {}
        for a in agents:
            parts.setdefault(a.part, []).append(a)
        for part, members in parts.items():
            job = {"server": info.to_json(), "roles": sorted({a.role for a in members}), "span": span,
                   "body_bytes": body_bytes, "connect_timeout": timeout, "drain_timeout": 120.0,
                   "clients": [{"jid": a.jid, "password": passwords[a.jid.lower()],
                                "send": dict(sends.get(a.jid.lower(), {})), "expect": want.get(a.jid.lower(), 0)}
                               for a in members]}
            procs[part] = _spawn(part, job, base / f"job-{part}.json", job["roles"])
        ready = {part: _read_json_line(p, timeout) for part, p in procs.items()}
        if not all(r and r.get("ready") for r in ready.values()):
            return {"error": "reference clients did not all log in: "
                             + ", ".join(f"{k}: {v}" for k, v in ready.items() if not (v and v.get("ready")))}
        for p in procs.values():  # the exchange starts in every process at once
            if p.stdin is not None:
                p.stdin.write("go\n")
                p.stdin.flush()
        done = {part: _read_json_line(p, span + timeout) for part, p in procs.items()}
        server_cpu = _cpu_seconds(group_members(info.pid))
        for p in procs.values():
            p.wait(timeout=120)
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    finished = {k: d for k, d in done.items() if d and d.get("done")}
    if len(finished) < len(done):
        return {"error": "reference clients did not finish: "
                         + ", ".join(f"{k}: {v}" for k, v in done.items() if k not in finished)}
    clients = len(agents)
    start = max(float(r["start_seconds"]) for r in ready.values() if r)
    client_cpu = sum(d["cpu_s"] for d in finished.values())
    cpu = client_cpu + server_cpu
    sent = sum(d["sent"] for d in finished.values())
    received_by: dict[str, int] = {}
    for d in finished.values():
        received_by.update(d["received_by"])
    return {
        "clients": clients, "span_s": round(span, 1),
        "start_clients_per_s": round(clients / start, 1) if start else None,
        "cpu_s": round(cpu, 1), "cpu_ms_per_client": round(1000 * cpu / max(1, clients), 1),
        "server_cpu_s": round(server_cpu, 1), "client_cpu_s": round(client_cpu, 1),
        "peak_rss_mib": peak[0] >> 20, "rss_kib_per_client": round((peak[0] >> 10) / max(1, clients), 1),
        "peak_mib_by_kind": _peak_kinds(at_peak),
        "messages_sent": sent, "messages_received": sum(received_by.values()),
        "messages_expected": sum(want.values()), "messages_per_client": round(sent / max(1, clients), 2),
        "received_by": received_by,
        "clients_short": sum(1 for jid, n in want.items() if received_by.get(jid, 0) < n),
        "by_part": {k: {"clients": d["clients"], "cpu_s": d["cpu_s"], "maxrss_mib": d["maxrss_kib"] >> 10,
                        "start_seconds": d["start_seconds"]} for k, d in finished.items()},
    }


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
