"""VME agents on a real XMPP server: start-up cost per agent and flex-offer round trips.

For every server kind asked for (prosody, ejabberd; a kind whose binary is missing is skipped
with the reason), on a private server this script starts in a temporary directory and stops at
the end:

1. Start-up: N ``ProsumerAgent`` s (no offers, pointing at an aggregator JID that is not running,
   ``auto_register=True``, ``verify_security=True``, an SQLite store each, like a swarm process)
   started in one process in concurrent batches of ``swarm.BATCH``, (a) without
   ``tune_process`` (slixmpp's own TLS context per client, pure-Python SCRAM; the server's
   certificate is trusted through ``ServerAddress.ca_file``, which the agent applies with
   ``apply_to_client``) and (b) with ``tune_process(ca_file)``. Each variant in a fresh child
   process, each with its own fresh accounts (in-band registration is part of the start).
   Reported per agent: wall time, CPU time (getrusage), RSS; then idle CPU of the running
   agents and the time to stop them all cleanly. N=1000 (--quick 100).
2. Flex-offer round trips (offer -> ack): one ``AggregatorAgent`` (upstream "plan", a cycle of a
   week so no planning happens, open enrolment) in one process, K ``ProsumerAgent`` s in another.
   The prosumers send M offers together (``ProsumerEngine.add_offer`` with release 0, unique
   ids, a start window 1-3 h ahead so they are accepted); measured from the first send to the
   last prosumer ledger moving to 'accepted', with the latency distribution; then P offers one
   at a time (unloaded latency); then a third, cProfile'd run summarised by where the time goes.
   Compared in the same run with raw slixmpp between two plain clients on the same server
   (``bench_xmpp``'s pipelined echo round trips, one-way rate and ping-pong).
   M=5,000, K=50, P=200 (--quick: M=500, K=10, P=50).

Usage: python bench/bench_agents.py [--quick] [--kinds prosody,ejabberd] [--record] [--py-spy PATH]
Prints the figures and a Markdown section; with --record it appends that to bench/RESULTS.md.
The run imports a snapshot of vmenergy/ taken when it starts (others edit the shared tree while it
runs); --in-place imports the tree itself. Profiling uses py-spy when it is on PATH or given with
--py-spy (all threads, low overhead), else cProfile (event-loop thread only).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the code imported: the repository, or the snapshot of it this run works from
REPO = Path(os.environ.get("VME_BENCH_REPO", ROOT))  # the repository itself (git state, RESULTS.md)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_xmpp as bx  # noqa: E402  (raw slixmpp reference: echo peer, rates, server versions)
from machine import describe as machine  # noqa: E402  (bench/machine.py)

from vmenergy.runtime import servers  # noqa: E402
from vmenergy.runtime.servers import ServerInfo  # noqa: E402

AGG_USER, AGG_PASSWORD = "bench-agg", "pw-bench-agg"
RESULT = "@@"  # prefix of the JSON result lines children print on stdout


# =============================================================================================
# Child processes (agents). Everything SPADE is imported here only, so the parent stays plain.


def _emit(obj: Any) -> None:
    print(RESULT + json.dumps(obj), flush=True)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _GcTime:
    """CPU seconds this process spent in the cyclic garbage collector (gc.callbacks), by generation:
    a sampling profiler charges a collection to whatever line allocated last."""

    def __init__(self) -> None:
        import gc

        self.s = [0.0, 0.0, 0.0]
        self.n = [0, 0, 0]
        self._t0 = 0.0
        if os.environ.get("VME_BENCH_GC_TIME") == "1":  # a callback per collection costs CPU itself
            gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.thread_time()  # CPU: the collector runs in the thread that allocated
        else:
            g = info["generation"]
            self.s[g] += time.thread_time() - self._t0
            self.n[g] += 1


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _address(info: ServerInfo):
    from vmenergy.agents import ServerAddress

    return ServerAddress(info.host, info.port, info.ca_file)


def _verified(agent: Any) -> bool:
    import ssl

    ctx = agent.client.ssl_context
    return ctx.verify_mode == ssl.CERT_REQUIRED and bool(ctx.check_hostname)


def _mechanism(agent: Any) -> str:
    try:
        return str(agent.client.plugin["feature_mechanisms"].mech.name)
    except Exception:  # noqa: BLE001 - informative only
        return "?"


async def _stop_all(agents: list) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)
    took = time.perf_counter() - t0
    for a in agents:  # so spade.run's own stop_agents at exit has nothing left to do
        a.container.unregister(str(a.jid))
    return took


# ---------------------------------------------------------------------------------------------
# 1. start-up


async def _startup(info: ServerInfo, n: int, tuned: bool, prefix: str, store_dir: Path, idle_s: float) -> dict:
    from vmenergy.agents import ProsumerAgent
    from vmenergy.runtime import swarm
    from vmenergy.runtime.xmpp_tuning import tune_process

    if tuned:
        tune_process(info.ca_file)
    address = _address(info)
    aggregator = info.jid("bench-agg-absent")  # pointed at, never started
    rss0, cpu0, srv0 = bx._rss_kib(), _cpu_s(), bx._server_cpu(info)
    t0 = time.perf_counter()
    agents = [
        ProsumerAgent(
            info.jid(f"{prefix}{i}"),
            f"pw-{prefix}{i}",
            aggregator=aggregator,
            server=address,
            store_path=store_dir / f"{prefix}{i}.sqlite",
            tick=swarm.TICK["prosumer"],
        )
        for i in range(n)
    ]
    t_built, cpu_built = time.perf_counter(), _cpu_s()
    errors: list[str] = []
    for i in range(0, n, swarm.BATCH):
        res = await asyncio.gather(
            *(a.start(auto_register=True) for a in agents[i : i + swarm.BATCH]), return_exceptions=True
        )
        errors += [repr(r) for r in res if isinstance(r, BaseException)]
    t1, cpu1, rss1, srv1 = time.perf_counter(), _cpu_s(), bx._rss_kib(), bx._server_cpu(info)
    alive = sum(a.is_alive() for a in agents)
    verified = all(_verified(a) for a in agents if a.client is not None)
    contexts = len({id(a.client.ssl_context) for a in agents if a.client is not None})
    mechs = sorted({_mechanism(a) for a in agents if a.client is not None})
    # the agents just run (tick every 0.5 s, inbox polls): what does that cost while idle?
    cpu_i0, t_i0 = _cpu_s(), time.perf_counter()
    await asyncio.sleep(idle_s)
    idle_cpu, idle_wall = _cpu_s() - cpu_i0, time.perf_counter() - t_i0
    stop_s = await _stop_all(agents)
    connected_after = sum(1 for a in agents if a.client is not None and a.client.is_connected())
    return {
        "n": n,
        "tuned": tuned,
        "alive": alive,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "wall_s": t1 - t0,
        "wall_ms_per_agent": 1000 * (t1 - t0) / n,
        "build_ms_per_agent": 1000 * (t_built - t0) / n,
        "build_cpu_ms_per_agent": 1000 * (cpu_built - cpu0) / n,
        "cpu_ms_per_agent": 1000 * (cpu1 - cpu0) / n,
        "rss_kib_per_agent": (rss1 - rss0) / n,
        "rss_mib_total": rss1 / 1024,
        "maxrss_mib": _maxrss_kib() / 1024,
        "server_cpu_ms_per_agent": 1000 * (srv1 - srv0) / n,
        "idle_cpu_pct": 100 * idle_cpu / idle_wall,
        "idle_s": idle_wall,
        "stop_s": stop_s,
        "still_connected": connected_after,
        "verified": verified,
        "ssl_contexts": contexts,
        "mechanisms": ",".join(mechs),
    }


# ---------------------------------------------------------------------------------------------
# 2. round trips: aggregator process, prosumer process, driven over stdin/stdout


class _Commands:
    """Reads command lines from stdin without blocking the event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def next(self) -> list[str]:
        line = await self.loop.run_in_executor(None, sys.stdin.readline)
        return line.split() or ["stop"]  # EOF: the parent is gone


class _Profiler:
    def __init__(self) -> None:
        self.prof = None

    def on(self) -> None:
        import cProfile

        self.prof = cProfile.Profile()
        self.prof.enable()

    def off(self, path: str) -> None:
        if self.prof is not None:
            self.prof.disable()
            self.prof.dump_stats(path)
            self.prof = None


def _counting(cls: type) -> type:
    """A subclass of an agent class that counts engine steps and presence events (cheaply)."""

    class Counting(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kw: Any) -> None:
            self.n_handle = 0
            self.n_presence = 0
            self.n_status_sent = 0
            self.answers: dict[str, tuple[float, str]] = {}
            self.resends = 0
            self.notes: dict[str, int] = {}
            self.on_answer = None
            #: (perf_counter, what) of each protocol message's way through this agent while a
            #: list (the sequential run's hops): "send" handed to slixmpp, "wire" written to
            #: the TLS transport, "recv" reached the agent's message handler
            self.stamps: Optional[list] = None
            super().__init__(*args, **kw)

        def send_protocol(self, to, payload):  # the base's signature
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "send"))
            return super().send_protocol(to, payload)

        def _message_received(self, stanza):
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "recv"))
            return super()._message_received(stanza)

        # finer stamps on the way through the shell (FINE_HOPS): decoded and handed to the
        # inbox, the inbox's step begins, the engine step done, the commit callback begins,
        # the store written
        def _deliver(self, *a, **kw):
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "decoded"))
            return super()._deliver(*a, **kw)

        def _run_step(self, *a, **kw):
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "woke"))
            out = super()._run_step(*a, **kw)
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "stepped"))
            return out

        def _commit(self, *a, **kw):
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "commit"))
            return super()._commit(*a, **kw)

        def _persist(self, *a, **kw):
            out = super()._persist(*a, **kw)
            if self.stamps is not None:
                self.stamps.append((time.perf_counter(), "flushed"))
            return out

        def stamp_wire(self) -> None:
            """Stamp each ``<message/>`` as slixmpp writes it to the transport (after its send
            queue and filters)."""
            client = self.client
            send_raw = client.send_raw

            def stamped(data, *a, **kw):
                if self.stamps is not None and isinstance(data, str) and data.startswith("<message"):
                    self.stamps.append((time.perf_counter(), "wire"))
                return send_raw(data, *a, **kw)

            client.send_raw = stamped

        # VmeAgent.handle is a plain method in some versions of the shell and a coroutine in
        # others (serialised steps, offloaded ticks); newer ones run bursts through handle_all
        # (one commit per loop turn) and count their own steps (agent.work): wrap what this tree has
        if hasattr(cls, "_apply") and hasattr(cls, "handle_all"):
            # effects are seen where every step's are carried out, after its commit (steps also
            # run outside handle_all in newer shells: a received message's, at once), the same
            # moment for every shell that has it; steps as the agent counts them

            def _apply(self, effects):  # the base's signature
                super()._apply(effects)
                self._seen(effects)

            @property
            def n_handle(self):
                return self.work["steps"]

            @n_handle.setter
            def n_handle(self, _value):
                pass
        elif hasattr(cls, "handle_all"):

            async def handle_all(self, steps, **kw):  # the base's signature
                self.n_handle += len(steps)
                effects = await super().handle_all(steps, **kw)
                self._seen(effects)
                return effects
        elif inspect.iscoroutinefunction(cls.handle):

            async def handle(self, step, **kw):  # the base's signature
                self.n_handle += 1
                effects = await super().handle(step, **kw)
                self._seen(effects)
                return effects
        else:

            def handle(self, step, **kw):  # the base's signature
                self.n_handle += 1
                effects = super().handle(step, **kw)
                self._seen(effects)
                return effects

        def _seen(self, effects: list) -> None:
            for e in effects:
                event = getattr(e, "event", None)
                if event is not None:  # agent.events keeps only the last 500 notes: count here
                    self.notes[event] = self.notes.get(event, 0) + 1
                if event in ("offer-accepted", "offer-rejected"):
                    offer_id = e.fields["offer"]
                    self.answers[offer_id] = (time.perf_counter(), event)
                    if self.on_answer is not None:
                        self.on_answer(offer_id)
                elif event == "resend":
                    self.resends += 1

        def _presence(self, jid: str, available: bool) -> None:
            self.n_presence += 1
            super()._presence(jid, available)

        def _update_status(self) -> None:
            before = self._status
            super()._update_status()
            if self._status != before:
                self.n_status_sent += 1

    Counting.__name__ = "Bench" + cls.__name__
    return Counting


async def _step(agent: Any, step: Any) -> list:
    """Run one engine step through the agent shell, whether its ``handle`` is sync or async."""
    out = agent.handle(step)
    if inspect.isawaitable(out):
        out = await out
    return out


def _tune(info: ServerInfo) -> None:
    """``tune_process`` as swarm processes call it; ``--gc-freeze off`` undoes its heap freeze."""
    import gc

    from vmenergy.runtime.xmpp_tuning import tune_process

    tune_process(info.ca_file)
    _count_stream_acks()
    if os.environ.get("VME_BENCH_GC_FREEZE") == "off":
        gc.unfreeze()


def _tune_after_start() -> None:
    """What a swarm process does once its agents are up: freeze the heap (unless turned off)."""
    from vmenergy.runtime.xmpp_tuning import freeze_heap

    if os.environ.get("VME_BENCH_GC_FREEZE") != "off":
        freeze_heap()


#: XEP-0198 traffic of this process's clients: ack requests from the server answered, and
#: ack requests sent (each answered by the server with an <a/>). Counted by wrapping the two
#: places that write them (_count_stream_acks).
SM_COUNTS = {"r_answered": 0, "r_sent": 0}


def _count_stream_acks() -> None:
    """Count XEP-0198 ``<r/>``/``<a/>`` traffic in this process (a diagnostic, not the agents'
    behaviour): the short-way answer to the server's request and slixmpp's answer, and every
    request a client sends (its window or BurstAcks)."""
    from slixmpp.plugins.xep_0198.stream_management import XEP_0198

    from vmenergy.agents import smacks

    answer = smacks.answer_ack_request

    def counted_answer(client: Any) -> bool:
        done = answer(client)
        SM_COUNTS["r_answered"] += done
        return done

    smacks.answer_ack_request = counted_answer
    slow_answer, request = XEP_0198.send_ack, XEP_0198.request_ack

    def counted_slow_answer(self: Any) -> None:
        SM_COUNTS["r_answered"] += 1
        slow_answer(self)

    def counted_request(self: Any) -> None:
        SM_COUNTS["r_sent"] += 1
        request(self)

    XEP_0198.send_ack, XEP_0198.request_ack = counted_slow_answer, counted_request


def _agent_stats(agent: Any, gc_time: Optional["_GcTime"] = None) -> dict:
    return {
        "sm_r_answered": SM_COUNTS["r_answered"],
        "sm_r_sent": SM_COUNTS["r_sent"],
        "cpu_s": _cpu_s(),
        "gc_s": sum(gc_time.s) if gc_time else 0.0,
        "gc_full": gc_time.n[2] if gc_time else 0,
        "gc_full_s": gc_time.s[2] if gc_time else 0.0,
        "handles": agent.n_handle,
        "commits": getattr(agent, "work", {}).get("commits", -1),
        "presence_events": agent.n_presence,
        "status_broadcasts": agent.n_status_sent,
        "rss_mib": bx._rss_kib() / 1024,
    }


async def _aggregator(info: ServerInfo, store: Path) -> None:
    from vmenergy.agents import AggregatorAgent
    from vmenergy.protocol.aggregator import AggregatorConfig
    from vmenergy.runtime import swarm
    from vmenergy.runtime.xmpp_tuning import tune_process

    _tune(info)
    gc_time = _GcTime()
    config = AggregatorConfig(enrolment="open", upstream="plan", cycle=7 * 86400, lead=60)
    agent = _counting(AggregatorAgent)(
        info.jid(AGG_USER),
        AGG_PASSWORD,
        config=config,
        server=_address(info),
        store_path=store,
        tick=swarm.TICK["aggregator"],
    )
    await agent.start(auto_register=True)
    agent.stamp_wire()
    _tune_after_start()
    _emit({"ready": True, "verified": _verified(agent), "mechanism": _mechanism(agent)})
    commands, prof = _Commands(), _Profiler()
    while True:
        cmd = await commands.next()
        if cmd[0] == "stamps-on":
            agent.stamps = []
            _emit({"ok": True})
        elif cmd[0] == "stamps":
            _emit({"stamps": agent.stamps or []})
            agent.stamps = None
        elif cmd[0] == "stats":
            _emit(
                {
                    **_agent_stats(agent, gc_time),
                    "counts": agent.engine.counts(),
                    "planned": agent.notes.get("planned", 0),
                    "duplicates": agent.notes.get("duplicate", 0),
                }
            )
        elif cmd[0] == "profile-on":
            prof.on()
            _emit({"ok": True})
        elif cmd[0] == "profile-off":
            prof.off(cmd[1])
            _emit({"ok": True})
        else:
            break
    await _stop_all([agent])
    _emit({"stopped": True})


def _make_offer(offer_id: str, issuer: str, now: float):
    from vmenergy.flexoffer import FlexOffer, Profile, Slice, TotalEnergy

    res = 900
    first = int(now) // res + 4  # one hour ahead: well past the aggregator's lead time
    profile = Profile((Slice(1, 0.5, 2.0), Slice(2, 1.0, 3.0)), total=TotalEnergy(2.0, 4.0))
    return FlexOffer(offer_id, (profile,), issuer=issuer, resolution=res, start_after=first, start_before=first + 8)


def _quantiles(xs: list[float]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return {
        "p10_ms": 1000 * q(0.10),
        "p50_ms": 1000 * q(0.50),
        "p90_ms": 1000 * q(0.90),
        "p99_ms": 1000 * q(0.99),
        "max_ms": 1000 * xs[-1],
        "min_ms": 1000 * xs[0],
    }


async def _prosumers(info: ServerInfo, k: int, store_dir: Path) -> None:
    from vmenergy.agents import ProsumerAgent
    from vmenergy.flexoffer import State
    from vmenergy.runtime import swarm
    from vmenergy.runtime.xmpp_tuning import tune_process

    _tune(info)
    gc_time = _GcTime()
    cls = _counting(ProsumerAgent)
    agg = info.jid(AGG_USER)
    agents = [
        cls(
            info.jid(f"rt-p{i}"),
            f"pw-rt-p{i}",
            aggregator=agg,
            server=_address(info),
            store_path=store_dir / f"rt-p{i}.sqlite",
            tick=swarm.TICK["prosumer"],
        )
        for i in range(k)
    ]
    t0 = time.perf_counter()
    for i in range(0, k, swarm.BATCH):
        await asyncio.gather(*(a.start(auto_register=True) for a in agents[i : i + swarm.BATCH]))
    start_s = time.perf_counter() - t0
    for a in agents:
        a.stamp_wire()
    # wait until the presence subscriptions both ways are settled: every prosumer sees the
    # aggregator available, then a quiet second for the last presence stanzas
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = sum(
            1 for a in agents if a.presence.contacts.get(agg) is not None and a.presence.contacts[agg].is_available()
        )
        if seen == k:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    _tune_after_start()
    _emit({"ready": True, "start_s": start_s, "see_aggregator": seen, "verified": all(_verified(a) for a in agents)})

    commands, prof = _Commands(), _Profiler()

    def totals() -> dict:
        return {
            "cpu_s": _cpu_s(),
            "gc_s": sum(gc_time.s),
            "gc_full": gc_time.n[2],
            "gc_full_s": gc_time.s[2],
            "handles": sum(a.n_handle for a in agents),
            "commits": sum(getattr(a, "work", {}).get("commits", 0) for a in agents),
            "presence_events": sum(a.n_presence for a in agents),
            "status_broadcasts": sum(a.n_status_sent for a in agents),
            "resends": sum(a.resends for a in agents),
            "sm_r_answered": SM_COUNTS["r_answered"],
            "sm_r_sent": SM_COUNTS["r_sent"],
            "stray_acks": sum(a.notes.get("stray-ack", 0) for a in agents),
            "server_cpu_s": bx._server_cpu(info),
        }

    while True:
        cmd = await commands.next()
        if cmd[0] == "pipelined":
            run, m, timeout = cmd[1], int(cmd[2]), float(cmd[3])
            offers = [
                (agents[j % k], _make_offer(f"{run}-{j}", agents[j % k].engine.jid, time.time())) for j in range(m)
            ]
            ids = {fo.id for _, fo in offers}
            sent: dict[str, float] = {}
            done = asyncio.get_running_loop().create_future()
            got = 0

            def on_answer(offer_id: str, ids: set = ids, m: int = m, done: asyncio.Future = done) -> None:
                nonlocal got
                if offer_id in ids:
                    got += 1
                    if got == m and not done.done():
                        done.set_result(True)

            for a in agents:
                a.on_answer = on_answer
            before = totals()
            t_first = time.perf_counter()
            for j0 in range(0, len(offers), k):
                # one offer from each prosumer at once, as separate boxes would: none waits for
                # another's step (or its commit) before sending its own
                chunk = offers[j0:j0 + k]
                for a, fo in chunk:
                    sent[fo.id] = time.perf_counter()
                await asyncio.gather(*(_step(a, lambda now, a=a, fo=fo: a.engine.add_offer(fo, 0, now))
                                       for a, fo in chunk))
            t_sent = time.perf_counter()
            try:
                await asyncio.wait_for(done, timeout)
            except TimeoutError:
                pass
            after = totals()
            answers = {fid: a.answers[fid] for a, fo in offers for fid in (fo.id,) if fid in a.answers}
            accepted = [fid for fid, (_, ev) in answers.items() if ev == "offer-accepted"]
            t_last = max((t for t, _ in answers.values()), default=time.perf_counter())
            in_ledger = sum(1 for a, fo in offers if a.engine.ledger.get("offers", fo.id).state is State.ACCEPTED)
            lat = [answers[fid][0] - sent[fid] for fid in answers]
            _emit(
                {
                    "run": run,
                    "m": m,
                    "k": k,
                    "answered": len(answers),
                    "accepted": len(accepted),
                    "ledger_accepted": in_ledger,
                    "send_s": t_sent - t_first,
                    "total_s": t_last - t_first,
                    "acks_per_s": len(accepted) / max(1e-9, t_last - t_first),
                    **_quantiles(lat),
                    **{f"d_{key}": after[key] - before[key] for key in after},
                }
            )
        elif cmd[0] == "sequential":
            run, p = cmd[1], int(cmd[2])
            before = totals()
            lat = []
            hops: list[list] = []  # per offer: step start, then the prosumer's stamps, then the answer
            t0 = time.perf_counter()
            for j in range(p):
                a = agents[j % k]
                fo = _make_offer(f"{run}-{j}", a.engine.jid, time.time())
                fut = asyncio.get_running_loop().create_future()
                a.on_answer = lambda oid, fut=fut, want=fo.id: not fut.done() and oid == want and fut.set_result(True)
                a.stamps = []
                ts = time.perf_counter()
                await _step(a, lambda now, a=a, fo=fo: a.engine.add_offer(fo, 0, now))
                try:
                    await asyncio.wait_for(fut, 30)
                except TimeoutError:
                    break
                lat.append(a.answers[fo.id][0] - ts)
                hops.append([ts, a.stamps, a.answers[fo.id][0]])
                a.stamps = None
            t1 = time.perf_counter()
            after = totals()
            _emit(
                {
                    "run": run,
                    "p": p,
                    "answered": len(lat),
                    "per_s": len(lat) / (t1 - t0),
                    **_quantiles(lat),
                    "mean_ms": 1000 * sum(lat) / max(1, len(lat)),
                    "hops": hops,
                    **{f"d_{key}": after[key] - before[key] for key in after},
                }
            )
        elif cmd[0] == "profile-on":
            prof.on()
            _emit({"ok": True})
        elif cmd[0] == "profile-off":
            prof.off(cmd[1])
            _emit({"ok": True})
        elif cmd[0] == "stats":
            _emit(totals())
        else:
            break
    stop_s = await _stop_all(agents)
    _emit({"stopped": True, "stop_s": stop_s})


def _stream_management(choice: str) -> None:
    """``--sm``: "default" (VME's XEP-0198 window), "off" (no stream management) or a window."""
    from vmenergy.agents.base import VmeAgent

    if choice == "off":
        VmeAgent.stream_management = None
    elif choice != "default":
        VmeAgent.stream_management = int(choice)


def _with_metadata_form() -> None:
    """``--form on`` (a diagnostic): the agents send their protocol stanzas with SPADE's metadata
    form, as every VME agent did before it became a switch (``spade_metadata``, docs/protocol.md
    section 7), to measure what the form costs end to end. Receiving does not need it."""
    from vmenergy.agents.base import VmeAgent

    plain_init = VmeAgent.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        kw.setdefault("spade_metadata", True)
        plain_init(self, *args, **kw)

    VmeAgent.__init__ = init  # type: ignore[method-assign]


def child_main(argv: list[str]) -> int:
    import logging

    import spade

    from vmenergy.runtime.logs import setup_logging

    mode, run_dir = argv[0], argv[1]
    info = servers.read_info(run_dir)
    if info is None:
        print(f"no server in {run_dir}", file=sys.stderr)
        return 1
    _raise_nofile()
    setup_logging(os.environ.get("VME_BENCH_LOG_LEVEL", "INFO"))  # what `vmenergy agent/swarm` use
    _stream_management(os.environ.get("VME_BENCH_SM", "default"))
    if os.environ.get("VME_BENCH_FORM") == "on":
        _with_metadata_form()
    if os.environ.get("VME_BENCH_RESEND"):  # --resend: the protocol's resend timeout, real seconds
        from vmenergy.agents import base as agent_base

        agent_base.RESEND_REAL_SECONDS = float(os.environ["VME_BENCH_RESEND"])
    logging.getLogger("vmenergy.bench").info("child %s pid %d", mode, os.getpid())
    rc = 0

    async def main() -> None:
        nonlocal rc
        try:
            if mode == "startup":
                n, tuned, prefix, store_dir, idle_s = (
                    int(argv[2]),
                    argv[3] == "1",
                    argv[4],
                    Path(argv[5]),
                    float(argv[6]),
                )
                store_dir.mkdir(parents=True, exist_ok=True)
                _emit(await _startup(info, n, tuned, prefix, store_dir, idle_s))
            elif mode == "aggregator":
                await _aggregator(info, Path(argv[2]))
            elif mode == "prosumers":
                store_dir = Path(argv[3])
                store_dir.mkdir(parents=True, exist_ok=True)
                await _prosumers(info, int(argv[2]), store_dir)
            else:
                raise ValueError(f"unknown child mode {mode}")
        except BaseException:  # spade.run would swallow it: report and fail
            traceback.print_exc()
            _emit({"error": traceback.format_exc(limit=3)})
            rc = 1

    spade.run(main())  # SPADE's container loop (uvloop), as swarm processes run
    return rc


# =============================================================================================
# Parent


class Child:
    """A child process of this script, spoken to by command lines, answering with result lines."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def result(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no answer from child in {timeout:.0f} s; log {self.log_path}:\n" + servers.log_tail(self.log_path)
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"child exited ({self.proc.poll()}); log {self.log_path}:\n" + servers.log_tail(self.log_path)
                )
            if line.startswith(RESULT):
                out = json.loads(line[len(RESULT) :])
                if "error" in out:
                    raise RuntimeError(f"child failed:\n{out['error']}")
                return out

    def ask(self, command: str, timeout: float = 120) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.result(timeout)

    def close(self, timeout: float = 120) -> Optional[dict]:
        out = None
        if self.proc.poll() is None:
            try:
                out = self.ask("stop", timeout)
            except Exception:  # noqa: BLE001 - it is killed below anyway
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return out


# ---------------------------------------------------------------------------------------------
# Profile summary

_KEY_FUNCTIONS = [  # (label, file fragment, function name): cumulative time, i.e. with callees
    ("VmeAgent._message_received (stanza -> engine)", "agents/base.py", "_message_received"),
    ("  wire decode (XML -> message, offer validation)", "wire/messages.py", "decode"),
    ("  FlexOffer.__post_init__ (validation)", "flexoffer/model.py", "__post_init__"),
    ("VmeAgent.handle (engine step + store + effects)", "agents/base.py", "handle"),
    ("  Engine.receive", "protocol/engine.py", "receive"),
    ("  AggregatorEngine._offer", "protocol/aggregator.py", "_offer"),
    ("  Store.flush (SQLite transaction)", "store/sqlite.py", "flush"),
    ("    store codec dumps (records -> JSON)", "store/codec.py", "dumps"),
    ("  VmeMessage.of + prepare + send (ack out)", "agents/base.py", "client_send"),
    ("  VmeAgent._update_status (status + presence)", "agents/base.py", "_update_status"),
    ("    engine status()/counts() over all offers", "vmenergy/protocol/", "status"),
    ("Engine.tick (timer: resend, expire, settle)", "protocol/engine.py", "tick"),
    ("VmeAgent._presence (presence -> engine step)", "agents/base.py", "_presence"),
    ("PresenceManager.handle_presence (SPADE)", "spade/presence.py", "handle_presence"),
    ("slixmpp XMLStream.__spawn_event (stanza dispatch)", "xmlstream/xmlstream.py", "_XMLStream__spawn_event"),
    ("slixmpp XMLStream.data_received (TLS bytes -> XML)", "xmlstream/xmlstream.py", "data_received"),
    ("slixmpp XMLStream.send_raw (out)", "xmlstream/xmlstream.py", "send_raw"),
    ("SPADE dispatch + behaviour queue", "spade/agent.py", "dispatch"),
    ("InboxBehaviour.run", "agents/base.py", "run"),
    ("logging (records, formatting, writes)", "logging/__init__.py", "_log"),
]


def _category(filename: str, func: str) -> str:
    f = filename.replace("\\", "/")
    # sampled leaf frames whose time is really spent in C below them
    if f.endswith("slixmpp/xmlstream/xmlstream.py") and func == "send_raw":
        return "TLS encrypt + socket write (uvloop transport.write)"
    if (f.endswith("spade/container.py") and func == "run") or (
        f.endswith("asyncio/base_events.py") and func in ("run_forever", "run_until_complete", "_run_once")
    ):
        return "event loop, sockets"
    if filename == "~":  # built-ins: sort by what they belong to
        if "sqlite3" in func:
            return "SQLite (execute/commit)"
        if "xmlparser" in func or "pyexpat" in func or "XMLPullParser" in func or "_elementtree" in func:
            return "XML parse/serialise (expat, ElementTree)"
        if "_ssl" in func or "SSL" in func:
            return "TLS"
        if "uvloop" in func or "socket" in func or "select" in func or "epoll" in func:
            return "event loop, sockets"
        if "json" in func:
            return "store record encoding (JSON, codec)"
        return "other built-ins (str, dict, isinstance, ...)"
    if "/vmenergy/store/" in f or "/json/" in f:
        return "store record encoding (JSON, codec)" if "codec" in f or "/json/" in f else "SQLite (execute/commit)"
    if "/sqlite3/" in f:
        return "SQLite (execute/commit)"
    if "/vmenergy/wire/json" in f:
        return "store record encoding (JSON, codec)"
    if "/vmenergy/wire/" in f:
        return "VME wire codec (XML <-> messages)"
    if "/vmenergy/flexoffer/" in f:
        return "flex-offer model (construction, validation)"
    if "/vmenergy/protocol/" in f:
        return "VME engines (protocol)"
    if "/vmenergy/agents/" in f:
        return "VME agent shell"
    if "/xml/etree/" in f or "/xml/" in f:
        return "XML parse/serialise (expat, ElementTree)"
    if "/slixmpp/xmlstream/" in f:
        return "slixmpp stanza objects + XML stream"
    if "/slixmpp/" in f:
        return "slixmpp other (roster, presence, plugins)"
    if "/spade/" in f:
        return "SPADE (dispatch, behaviours, presence)"
    if "/logging/" in f:
        return "logging"
    if "/asyncio/" in f or "uvloop" in f:
        return "event loop, sockets"
    if "ssl.py" in f:
        return "TLS"
    if "dataclasses.py" in f or "copy.py" in f:
        return "dataclasses.replace / copies"
    if "enum.py" in f:
        return "other Python stdlib"
    return "other Python stdlib"


def _summary(
    total: float,
    cats: dict[str, float],
    key: dict[str, tuple[float, int]],
    top: list,
    unit: str,
    threads: Optional[dict[str, float]] = None,
) -> dict:
    total = total or 1e-9
    return {
        "unit": unit,
        "total_s": total,
        "categories": sorted(({"what": k, "s": v, "share": v / total} for k, v in cats.items()), key=lambda d: -d["s"]),
        "key": [
            {"what": label, "cum_s": key[label][0], "share": key[label][0] / total, "calls": key[label][1]}
            for label, _f, _n in _KEY_FUNCTIONS
            if label in key
        ],
        "top_self": top,
        "threads": sorted(
            ({"what": k, "s": v, "share": v / total} for k, v in (threads or {}).items()), key=lambda d: -d["s"]
        ),
    }


def summarise_cprofile(path: Path, top: int = 12) -> dict:
    """cProfile stats: self time by area, cumulative time of the main steps (event-loop thread only)."""
    st = pstats.Stats(str(path))
    stats = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    cats: dict[str, float] = {}
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.items():
        cat = _category(filename, func)
        cats[cat] = cats.get(cat, 0.0) + tt
        short = filename if filename == "~" else "/".join(Path(filename).parts[-2:])
        rows.append((tt, ct, nc, f"{short}:{line}({func})" if filename != "~" else func))
    rows.sort(reverse=True)
    key: dict[str, tuple[float, int]] = {}
    for label, frag, name in _KEY_FUNCTIONS:
        for (filename, _line, func), (cc, nc, tt, ct, _c) in stats.items():
            if func == name and frag in filename.replace("\\", "/") and ct > key.get(label, (-1.0, 0))[0]:
                key[label] = (ct, nc)
    top_rows = [
        {"what": w, "self_s": tt, "cum_s": ct, "calls": nc, "share": tt / (total or 1e-9)}
        for tt, ct, nc, w in rows[:top]
    ]
    return _summary(total, cats, key, top_rows, "cProfile, event-loop thread")


def summarise_pyspy(path: Path, rate: int, top: int = 12) -> dict:
    """py-spy raw (collapsed) stacks of every thread, idle samples excluded: self time by area
    (leaf frame), inclusive time of the main steps, time per thread."""
    import re

    frame_re = re.compile(r"^(.*) \((.*):(\d+)\)$")
    cats: dict[str, float] = {}
    key: dict[str, tuple[float, int]] = {}
    leaves: dict[str, float] = {}
    threads: dict[str, float] = {}
    total = 0.0
    # a non-blocking sampler can read a frame name while it changes: tolerate the odd bad byte
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        secs = int(count) / rate
        total += secs
        parts = stack.split(";")
        thread = parts[0].split(": ", 1)[-1] if parts[0].startswith("thread") else "?"
        thread = re.sub(r"_\d+$", "_N", re.sub(r"\(.*\)", "", thread)).strip()
        threads[thread] = threads.get(thread, 0.0) + secs
        frames = []
        for fr in parts[1:] if parts[0].startswith("thread") else parts:
            m = frame_re.match(fr)
            frames.append((m.group(2), m.group(1).split(".")[-1], m.group(3)) if m else ("?", fr, "0"))
        if not frames:
            continue
        filename, func, lineno = frames[-1]
        cat = _category(filename, func)
        cats[cat] = cats.get(cat, 0.0) + secs
        leaf = f"{'/'.join(Path(filename).parts[-2:])}:{lineno}({func})"
        leaves[leaf] = leaves.get(leaf, 0.0) + secs
        for label, frag, name in _KEY_FUNCTIONS:
            if any(f == name and frag in fn for fn, f, _l in frames):
                s0, n0 = key.get(label, (0.0, 0))
                key[label] = (s0 + secs, n0)
    top_rows = [
        {"what": w, "self_s": v, "share": v / (total or 1e-9)}
        for w, v in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]
    ]
    return _summary(total, cats, key, top_rows, f"py-spy, {rate} samples/s, all threads, idle excluded", threads)


# ---------------------------------------------------------------------------------------------
# One server kind


def _startup_pass(
    info: ServerInfo, n: int, tuned: bool, prefix: str, base: Path, idle_s: float, timeout: float
) -> dict:
    child = Child(
        ["startup", info.run_dir, str(n), "1" if tuned else "0", prefix, str(base / f"stores-{prefix}"), str(idle_s)],
        base / f"startup-{prefix}.log",
    )
    try:
        return child.result(timeout)
    finally:
        child.close(30)


#: The hops of one sequential offer, in order: (name, from stamp, to stamp); stamps are the
#: prosumer's "start" (its step begins), "send" (offer handed to slixmpp), "wire" (written to
#: TLS), "recv" (the ack reached its handler), "answer" (the ack's step committed), and the
#: aggregator's "a-recv" (the offer reached its handler), "a-send" (the ack handed to slixmpp,
#: after the commit), "a-wire".
HOPS = (
    ("prosumer step+commit", "start", "send"),
    ("prosumer send queue", "send", "wire"),
    ("prosumer->aggregator (TLS, Prosody, parse)", "wire", "a-recv"),
    ("aggregator decode+step+commit", "a-recv", "a-send"),
    ("aggregator send queue", "a-send", "a-wire"),
    ("aggregator->prosumer (TLS, Prosody, parse)", "a-wire", "recv"),
    ("prosumer ack step+commit", "recv", "answer"),
)
#: The stamps each side takes per sequential offer, in order (the agents' thin subclass):
#: "decoded" the payload decoded and handed on, "woke" an engine step begins (the inbox took the
#: message), "stepped" it returned, "commit" the loop turn's commit callback begins, "flushed"
#: the store written; a name the prosumer takes twice gets a "2" the second time.
PROSUMER_STAMPS = ("woke", "stepped", "commit", "flushed", "send", "wire",
                   "recv", "decoded", "woke2", "stepped2", "commit2", "flushed2")
AGGREGATOR_STAMPS = ("recv", "decoded", "woke", "stepped", "commit", "flushed", "send", "wire")
#: The same offer's way in finer hops (all consecutive), where both sides took every stamp.
FINE_HOPS = (
    ("prosumer: add_offer step", "start", "stepped"),
    ("prosumer: wait for the offer step's commit", "stepped", "commit"),
    ("prosumer: SQLite commit of the offer step", "commit", "flushed"),
    ("prosumer: offer built and handed to slixmpp", "flushed", "send"),
    ("prosumer: send queue, filters, serialise", "send", "wire"),
    ("prosumer -> aggregator (joined write, TLS, Prosody, parse)", "wire", "a-recv"),
    ("aggregator: checks, decode + validate", "a-recv", "a-decoded"),
    ("aggregator: to the inbox's step", "a-decoded", "a-woke"),
    ("aggregator: engine step", "a-woke", "a-stepped"),
    ("aggregator: wait for the commit", "a-stepped", "a-commit"),
    ("aggregator: SQLite commit", "a-commit", "a-flushed"),
    ("aggregator: ack built and handed to slixmpp", "a-flushed", "a-send"),
    ("aggregator: send queue, filters, serialise", "a-send", "a-wire"),
    ("aggregator -> prosumer (joined write, TLS, Prosody, parse)", "a-wire", "recv"),
    ("prosumer: checks, decode", "recv", "decoded"),
    ("prosumer: to the inbox's step", "decoded", "woke2"),
    ("prosumer: engine step on the ack", "woke2", "stepped2"),
    ("prosumer: wait for the ack step's commit", "stepped2", "commit2"),
    ("prosumer: SQLite commit of the ack step", "commit2", "flushed2"),
    ("prosumer: effects, back to the bench", "flushed2", "answer"),
)


def _in_order(stamps: list, names: tuple) -> Optional[dict]:
    """The first stamp of each name in ``names``, taken in that order (other stamps between them
    are skipped; a repeated name counts from after the previous one); None if one is missing."""
    out: dict[str, float] = {}
    i = 0
    for name in names:
        want = name.rstrip("2")
        while i < len(stamps) and stamps[i][1] != want:
            i += 1
        if i == len(stamps):
            return None
        out[name] = stamps[i][0]
        i += 1
    return out


def _hops(offers: list, agg_stamps: list) -> dict:
    """Median milliseconds of each hop of the sequential offers (HOPS, and FINE_HOPS when every
    stamp was taken), from the prosumers' and the aggregator's stamps (one offer in flight at a
    time: the aggregator's stamps cut at each "recv"). Empty when a side's stamps do not line up."""
    import statistics

    starts = [i for i, (_t, what) in enumerate(agg_stamps) if what == "recv"]
    if len(starts) != len(offers):
        return {}
    per_hop: dict[str, list[float]] = {name: [] for name, _a, _b in HOPS + FINE_HOPS}
    fine = True
    for i, (start, stamps, answer) in enumerate(offers):
        chunk = agg_stamps[starts[i]:starts[i + 1] if i + 1 < len(starts) else None]
        mine = _in_order(stamps, PROSUMER_STAMPS)
        theirs = _in_order(chunk, AGGREGATOR_STAMPS)
        if mine is None or theirs is None:  # an older shell without the finer stamps
            fine = False
            mine = _in_order(stamps, ("send", "wire", "recv"))
            theirs = _in_order(chunk, ("recv", "send", "wire"))
            if mine is None or theirs is None:
                return {}
        at = {"start": start, "answer": answer, **mine, **{f"a-{what}": t for what, t in theirs.items()}}
        for name, a, b in HOPS + (FINE_HOPS if fine else ()):
            per_hop[name].append(1000 * (at[b] - at[a]))
    out = {name: statistics.median(v) for name, v in per_hop.items() if v}
    out["total"] = statistics.median(1000 * (answer - start) for start, _s, answer in offers)
    # the low decile of each hop: on a loaded machine, what it costs when nothing else was
    # scheduled in its way (the median carries the other processes' time slices)
    out.update({f"p10 {name}": sorted(v)[len(v) // 10] for name, v in per_hop.items() if v})
    return out


def _per_round_trip(res: dict) -> str:
    """One offer -> ack against one raw echo round trip (small, and shaped like an offer and
    its ack): CPU of each process, bytes on the wire, XEP-0198 requests."""
    x, sh, r, s = res["raw"], res["shapes"], res["pipelined"], res["sequential"]
    m, p = r["m"], s["p"]
    lines = [
        f"    stanzas: offer {sh['offer_bytes']} bytes, ack {sh['ack_bytes']}; small echo request "
        f"~{len('e:0000:') + 80 + 90} bytes (body of ~86 characters)",
        "    per round trip (pipelined): CPU us client A / client B / server, wire bytes both ways:",
        f"      raw echo, small    : {x['echo_sender_cpu_us']:.0f} / {x['echo_peer_cpu_us']:.0f} / "
        f"{x['echo_server_cpu_us']:.0f}, {x['echo_wire_bytes']:.0f} B; {x['echo_roundtrips_per_s']:,.0f}/s",
    ]
    for v, what in (("shaped", "offer/ack"), ("noform", "no form  ")):
        if f"{v}_echo_roundtrips_per_s" in x:
            lines.append(
                f"      raw echo, {what}: {x[f'{v}_echo_sender_cpu_us']:.0f} / {x[f'{v}_echo_peer_cpu_us']:.0f} / "
                f"{x[f'{v}_echo_server_cpu_us']:.0f}, {x[f'{v}_echo_wire_bytes']:.0f} B; "
                f"{x[f'{v}_echo_roundtrips_per_s']:,.0f}/s; ping-pong {x[f'{v}_pingpong_latency_ms']:.2f} ms "
                f"(small {x['pingpong_latency_ms']:.2f}); request {x[f'{v}_request_bytes']} B")
    lines.append(
        f"      agents             : {1e6 * r['d_cpu_s'] / m:.0f} / {1e6 * r['agg_cpu_s'] / m:.0f} / "
        f"{1e6 * r['d_server_cpu_s'] / m:.0f}, {r['wire_bytes'] / m:.0f} B; {r['acks_per_s']:,.0f}/s; "
        f"XEP-0198 per offer: server's <r/> answered {r['d_sm_r_answered'] / m:.2f} (prosumers) + "
        f"{r['agg_sm_r_answered'] / m:.2f} (aggregator), <r/> sent {r['d_sm_r_sent'] / m:.2f} + "
        f"{r['agg_sm_r_sent'] / m:.2f}")
    lines.append(
        f"    per round trip (sequential): agents {1e6 * s['d_cpu_s'] / p:.0f} / {1e6 * s['agg_cpu_s'] / p:.0f} / "
        f"{1e6 * s['d_server_cpu_s'] / p:.0f} us, {s['wire_bytes'] / p:.0f} B; raw small "
        f"{x['pingpong_sender_cpu_us']:.0f} / {x['pingpong_peer_cpu_us']:.0f} / {x['pingpong_server_cpu_us']:.0f}, "
        f"{x['pingpong_wire_bytes']:.0f} B"
        + (f"; raw offer/ack {x['shaped_pingpong_sender_cpu_us']:.0f} / {x['shaped_pingpong_peer_cpu_us']:.0f} / "
           f"{x['shaped_pingpong_server_cpu_us']:.0f}, {x['shaped_pingpong_wire_bytes']:.0f} B"
           if "shaped_pingpong_sender_cpu_us" in x else "")
        + f"; XEP-0198 <r/> answered {(s['d_sm_r_answered'] + s['agg_sm_r_answered']) / p:.2f}, "
        f"sent {(s['d_sm_r_sent'] + s['agg_sm_r_sent']) / p:.2f} per offer")
    return "\n".join(lines)


def _protocol_shapes(info: ServerInfo) -> dict:
    """The stanzas of an offer and of its ack as the agents of this benchmark send them (the
    same code, JIDs and offer; the ack's id and version as the aggregator writes them), for the
    raw echo of stanzas the same size and shape (bench_xmpp._rates)."""
    import xml.etree.ElementTree as ET

    import slixmpp

    from vmenergy.agents.base import protocol_stanza
    from vmenergy.protocol.messages import Ack, OfferMessage
    from vmenergy.wire.messages import summary

    client = slixmpp.ClientXMPP(info.jid("shape") + "/r", "pw")
    pro, agg = info.jid("rt-p0"), info.jid(AGG_USER)
    fo = _make_offer("pipe-1234", pro, time.time())
    offer, ack = OfferMessage("insert", fo.id, fo), Ack("flexoffer", fo.id, "accepted", None, 0)
    form = os.environ.get("VME_BENCH_FORM") == "on"  # as the agents are set to send (--form)
    request = protocol_stanza(client, agg, pro, summary(offer), offer, spade_metadata=form)
    reply = protocol_stanza(client, pro, agg, summary(ack), ack, spade_metadata=form)
    return {
        "request": ET.tostring(request.xml, encoding="unicode"),
        "reply": ET.tostring(reply.xml, encoding="unicode"),
        "body": summary(offer),
        "offer_bytes": len(str(request)),
        "ack_bytes": len(str(reply)),
    }


def bench_kind(kind: str, cfg: dict, base: Path) -> dict:
    info = servers.start_server(kind, base / kind / "server", registration=True)  # agents register in-band
    work = base / kind
    res: dict[str, Any] = {"kind": kind}
    children: list[Child] = []
    try:
        n, idle_s = cfg["n"], cfg["idle_s"]
        # -- 1. start-up ----------------------------------------------------------------------
        if "startup" in cfg["parts"]:
            print("  start-up: warm-up pass (20 agents, untimed) ...", flush=True)
            _startup_pass(info, 20, True, "warm", work, 1.0, 300)
        for tuned in (False, True) if "startup" in cfg["parts"] else ():
            variant = "tuned" if tuned else "plain"
            print(f"  start-up: {n} agents, {variant} ...", flush=True)
            r = _startup_pass(info, n, tuned, f"st-{variant}-", work, idle_s, 1800)
            res[variant] = r
            print(
                f"    {r['alive']}/{n} alive ({r['errors']} errors), {r['wall_ms_per_agent']:.1f} ms wall/agent, "
                f"{r['cpu_ms_per_agent']:.1f} ms CPU/agent, {r['rss_kib_per_agent']:.0f} KiB/agent, server "
                f"{r['server_cpu_ms_per_agent']:.1f} ms CPU/agent; idle {r['idle_cpu_pct']:.1f} % CPU for {n} agents; "
                f"stop {r['stop_s']:.1f} s; verified={r['verified']} contexts={r['ssl_contexts']} "
                f"SASL={r['mechanisms']}",
                flush=True,
            )
            if r["first_error"]:
                print(f"    first error: {r['first_error']}", flush=True)
        # -- 2a. raw slixmpp reference (bench_xmpp) ----------------------------------------------
        m, k, p = cfg["m"], cfg["k"], cfg["p"]
        print(f"  raw slixmpp: {m} messages, {p} ping-pongs (bench_xmpp) ...", flush=True)
        servers.register_accounts(info, [("bench-echo", "pw-echo"), ("bench-sender", "pw-sender")])
        peer = bx._child(["echo", info.run_dir], stdout=subprocess.PIPE, text=True)
        try:
            line = peer.stdout.readline() if peer.stdout else ""
            if "READY" not in line:
                raise RuntimeError(f"echo peer did not start on {kind}")
            res["shapes"] = shapes = _protocol_shapes(info)
            res["raw"] = bx._run(bx._rates(info, info.jid("bench-echo"), m, p, shapes))
            peer.wait(timeout=30)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
        x = res["raw"]
        print(
            f"    one-way {x['oneway_msgs_per_s']:,.0f} msgs/s; pipelined echo {x['echo_roundtrips_per_s']:,.0f} "
            f"round trips/s; ping-pong {x['pingpong_latency_ms']:.2f} ms",
            flush=True,
        )
        # -- 2b. agents --------------------------------------------------------------------------
        print(f"  agents: 1 aggregator process, {k} prosumers in another ...", flush=True)
        agg = Child(["aggregator", info.run_dir, str(work / "agg.sqlite")], work / "aggregator.log")
        children.append(agg)
        res["aggregator_ready"] = agg.result(120)
        pro = Child(["prosumers", info.run_dir, str(k), str(work / "stores-rt")], work / "prosumers.log")
        children.append(pro)
        res["prosumers_ready"] = pro.result(600)
        timeout = max(120.0, m / 10)

        def run_pipelined(name: str, count: int) -> dict:
            a0, b0 = agg.ask("stats"), bx.wire_bytes(info)
            r = pro.ask(f"pipelined {name} {count} {timeout}", timeout + 60)
            a1, b1 = agg.ask("stats"), bx.wire_bytes(info)
            r["wire_bytes"] = b1 - b0 if b0 >= 0 and b1 >= 0 else -1
            r["agg_sm_r_answered"] = a1["sm_r_answered"] - a0["sm_r_answered"]
            r["agg_sm_r_sent"] = a1["sm_r_sent"] - a0["sm_r_sent"]
            r["agg_cpu_s"] = a1["cpu_s"] - a0["cpu_s"]
            r["agg_handles"] = a1["handles"] - a0["handles"]
            r["agg_commits"] = a1["commits"] - a0["commits"]
            r["agg_gc_s"] = a1["gc_s"] - a0["gc_s"]
            r["agg_gc_full"] = a1["gc_full"] - a0["gc_full"]
            r["agg_gc_full_s"] = a1["gc_full_s"] - a0["gc_full_s"]
            r["agg_presence_events"] = a1["presence_events"] - a0["presence_events"]
            r["agg_status_broadcasts"] = a1["status_broadcasts"] - a0["status_broadcasts"]
            r["agg_offers_before"] = sum(a0["counts"].values())
            r["agg_duplicates"] = a1["duplicates"] - a0["duplicates"]
            r["agg_planned"] = a1["planned"]
            return r

        r = res["pipelined"] = run_pipelined("pipe", m)
        print(
            f"    pipelined: {r['accepted']}/{m} accepted (ledgers: {r['ledger_accepted']}) in {r['total_s']:.2f} s "
            f"= {r['acks_per_s']:,.0f} acks/s; latency p50 {r.get('p50_ms', 0):.0f} / p90 {r.get('p90_ms', 0):.0f} / "
            f"p99 {r.get('p99_ms', 0):.0f} / max {r.get('max_ms', 0):.0f} ms; CPU aggregator "
            f"{1e6 * r['agg_cpu_s'] / max(1, m):.0f} us/offer, "
            f"prosumers {1e6 * r['d_cpu_s'] / max(1, m):.0f} us/offer, "
            f"server {1e6 * r['d_server_cpu_s'] / max(1, m):.0f} us/offer; garbage collector aggregator "
            f"{1e6 * r['agg_gc_s'] / max(1, m):.0f} us/offer ({r['agg_gc_full']} full collections: "
            f"{r['agg_gc_full_s']:.2f} s), prosumers {1e6 * r['d_gc_s'] / max(1, m):.0f} us/offer "
            f"({r['d_gc_full']} full: {r['d_gc_full_s']:.2f} s); resends {r['d_resends']}, "
            f"prosumer presence events {r['d_presence_events']}, aggregator status broadcasts "
            f"{r['agg_status_broadcasts']}",
            flush=True,
        )
        agg.ask("stamps-on")
        a0, b0 = agg.ask("stats"), bx.wire_bytes(info)
        s = res["sequential"] = pro.ask(f"sequential seq {p}", 30 * p + 60)
        a1, b1 = agg.ask("stats"), bx.wire_bytes(info)
        s["hop_ms"] = _hops(s.pop("hops"), agg.ask("stamps")["stamps"])
        s["agg_cpu_s"] = a1["cpu_s"] - a0["cpu_s"]
        s["wire_bytes"] = b1 - b0 if b0 >= 0 and b1 >= 0 else -1
        s["agg_sm_r_answered"] = a1["sm_r_answered"] - a0["sm_r_answered"]
        s["agg_sm_r_sent"] = a1["sm_r_sent"] - a0["sm_r_sent"]
        print(
            f"    sequential: {s['answered']}/{p}, {s['per_s']:.0f}/s, latency mean {s['mean_ms']:.1f} ms, "
            f"p50 {s.get('p50_ms', 0):.1f} / p99 {s.get('p99_ms', 0):.1f} ms",
            flush=True,
        )
        print(_per_round_trip(res), flush=True)
        if s["hop_ms"]:
            coarse = {name for name, _a, _b in HOPS} | {"total"}
            print("    sequential, where each offer's time goes (median ms; hops timed with the system-wide "
                  "monotonic clock in both processes): " + ", ".join(f"{k} {v:.2f}" for k, v in s["hop_ms"].items()
                                                                     if k in coarse),
                  flush=True)
            print("      median / p10 ms", flush=True)
            for name, _a, _b in FINE_HOPS:
                if name in s["hop_ms"]:
                    print(f"      {s['hop_ms'][name]:6.3f} / {s['hop_ms'].get('p10 ' + name, 0):6.3f}  {name}", flush=True)
            x = res["raw"]
            if "pingpong_p10_ms" in x:
                print(f"    sequential p10 / p50 {s.get('p10_ms', 0):.2f} / {s.get('p50_ms', 0):.2f} ms against raw "
                      f"ping-pong p10 / p50 {x['pingpong_p10_ms']:.2f} / {x['pingpong_p50_ms']:.2f} (small), "
                      f"{x.get('shaped_pingpong_p10_ms', 0):.2f} / {x.get('shaped_pingpong_p50_ms', 0):.2f} (shaped)",
                      flush=True)
        # -- 2c. profiled run ------------------------------------------------------------------
        if cfg["profile"]:
            mp = cfg["m_profile"]
            if cfg["pyspy"]:  # sampling, all threads (the shell may run engine steps in worker threads)
                rate, secs = cfg["profile_rate"], cfg["profile_s"]
                spies = [
                    subprocess.Popen(
                        [
                            cfg["pyspy"],
                            "record",
                            "-p",
                            str(c.proc.pid),
                            "-d",
                            str(secs),
                            "-r",
                            str(rate),
                            "-f",
                            "raw",
                            "--full-filenames",
                            "--nonblocking",
                            "--threads",
                            "-o",
                            str(work / f"{who}.raw"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=open(work / f"{who}-py-spy.log", "wb"),
                    )
                    for c, who in ((agg, "aggregator"), (pro, "prosumers"))
                ]
                time.sleep(0.5)  # let py-spy attach before the first offer
                try:
                    rp = run_pipelined("prof", mp)
                finally:
                    for sp in spies:
                        try:
                            sp.wait(timeout=secs + 60)
                        except subprocess.TimeoutExpired:
                            sp.kill()
                            sp.wait()
                rp["agg_profile"] = summarise_pyspy(work / "aggregator.raw", rate)
                rp["pro_profile"] = summarise_pyspy(work / "prosumers.raw", rate)
                rp["profiler"] = f"py-spy (first {secs} s of the run)"
            else:
                agg.ask("profile-on")
                pro.ask("profile-on")
                rp = run_pipelined("prof", mp)
                agg.ask(f"profile-off {work / 'aggregator.prof'}")
                pro.ask(f"profile-off {work / 'prosumers.prof'}")
                rp["agg_profile"] = summarise_cprofile(work / "aggregator.prof")
                rp["pro_profile"] = summarise_cprofile(work / "prosumers.prof")
                rp["profiler"] = "cProfile (whole run, event-loop threads only)"
            res["profiled"] = rp
            print(f"    profiled run ({mp} offers, {rp['profiler']}): {rp['acks_per_s']:,.0f} acks/s", flush=True)
            for who in ("agg", "pro"):
                prof = rp[f"{who}_profile"]
                print(
                    f"    {'aggregator' if who == 'agg' else 'prosumers'} profile ({prof['total_s']:.1f} s CPU, "
                    f"{prof['unit']}):",
                    flush=True,
                )
                for c in prof["categories"][:10]:
                    print(f"      {100 * c['share']:5.1f} %  {c['what']}", flush=True)
                print("      main steps (inclusive):", flush=True)
                for c in prof["key"]:
                    print(f"      {100 * c['share']:5.1f} %  {c['what']}", flush=True)
                for c in prof["threads"]:
                    print(f"      thread {c['what']}: {100 * c['share']:.1f} %", flush=True)
                for c in prof["top_self"][:8]:
                    print(f"      self {100 * c['share']:5.1f} %  {c['what']}", flush=True)
        res["agg_final"] = agg.ask("stats")
        res["pro_final"] = pro.close(300)
        res["agg_stop"] = agg.close(120)
        children.clear()
        return res
    finally:
        for c in children:
            c.close(60)
        servers.stop_server(info.run_dir)


# ---------------------------------------------------------------------------------------------
# Report


def _prosody_smacks(max_unacked: int) -> None:
    """Diagnostic: the generated Prosody config with ``smacks_max_unacked_stanzas`` set (how many
    stanzas Prosody sends before asking a client for an XEP-0198 ack) instead of the project's
    value (by wrapping servers.templates.render in this process; the package is unchanged)."""
    original = servers.templates.render

    def render(template: str, dest: Path, values: dict) -> Path:
        out = original(template, dest, values)
        if template.startswith("prosody/"):
            text = re.sub(r"(?m)^smacks_max_unacked_stanzas = .*\n", "", out.read_text())
            out.write_text(f"smacks_max_unacked_stanzas = {max_unacked}  -- bench_agents --prosody-smacks\n" + text)
        return out

    servers.templates.render = render  # type: ignore[assignment]


def _prosody_without_nagle() -> None:
    """Diagnostic only: Prosody's epoll backend leaves Nagle's algorithm on for client
    connections unless ``network_settings = { nagle = false }``; add that to the config the
    project generates (by wrapping servers.templates.render in this process; the package is unchanged)."""
    original = servers.templates.render

    def render(template: str, dest: Path, values: dict) -> Path:
        out = original(template, dest, values)
        if template.startswith("prosody/"):
            out.write_text(
                "network_settings = { nagle = false }  -- bench_agents --prosody-nagle off\n" + out.read_text()
            )
        return out

    servers.templates.render = render  # type: ignore[assignment]


_CODE_PATHS = (
    "vmenergy/agents",
    "vmenergy/protocol",
    "vmenergy/store",
    "vmenergy/wire",
    "vmenergy/runtime",
    "vmenergy/flexoffer",
)


def code_fingerprint(root: Path = REPO) -> str:
    """A hash of the agent-path sources under ``root`` (others edit the same tree)."""
    import hashlib

    h = hashlib.sha1()
    for d in _CODE_PATHS:
        for f in sorted((root / d).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:10]


def _snapshot(dest: Path) -> Path:
    """Copy the code a run needs (vmenergy/, bench/, xmpp-server/) so that edits others make to
    the shared tree while the benchmark runs (minutes) cannot change or break what it measures."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("vmenergy", "bench", "xmpp-server"):
        shutil.copytree(REPO / d, dest / d, ignore=ignore)
    return dest


def code_state() -> str:
    """The commit measured, and which agent-path files had uncommitted changes (others work in
    the same tree; the figures belong to the code as it was)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", *_CODE_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except OSError:
        return "unknown commit"
    files = [line[3:] for line in dirty if line.strip()]
    if not files:
        return f"commit {head} (agent path clean)"
    import hashlib

    diff = subprocess.run(
        ["git", "-C", str(REPO), "diff", "HEAD", "--", *files], capture_output=True, timeout=10
    ).stdout
    return (
        f"commit {head} plus uncommitted changes in {', '.join(files)} "
        f"(diff sha1 {hashlib.sha1(diff).hexdigest()[:10]})"
    )


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def report(
    results: list[dict], skipped: dict[str, str], cfg: dict, command: str, load_before: str, load_after: str, code: str
) -> str:
    n = cfg["n"]
    lines = [
        "## VME agents: start-up per agent and flex-offer round trips (`bench/bench_agents.py`)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {machine()}; {bx.versions()}. Command: `{command}` (private servers on "
        f"127.0.0.1 started and stopped by the script). Load average before: {load_before}; after: {load_after} "
        "(other engineers' work may have been running on the same cores, which makes wall times and rates "
        "pessimistic; CPU per agent/offer is the steadier figure). Agent processes log at INFO like "
        f"`vmenergy agent`/`swarm`. Code measured: {code}.",
    ]
    if not any("plain" in r or "tuned" in r for r in results):
        lines.append("")
        return _report_roundtrips(lines, results, skipped, cfg)
    lines += [
        "",
        f"(1) {n} `ProsumerAgent`s (no offers, aggregator JID not running, `auto_register=True` so in-band "
        f"registration is included, `verify_security=True`, one SQLite store each) started in one process in "
        f"concurrent batches of 50 (as `swarm.py`), after an untimed 20-agent warm-up. *plain*: no "
        "`tune_process` (slixmpp builds a TLS context with the system CA store per client; pure-Python SCRAM; "
        "the agent then swaps in the CA-file context via `apply_to_client`); *tuned*: `tune_process(ca_file)`. "
        "Each in a fresh process. CPU per agent includes the ticking of the agents already started while later "
        "batches start. Idle: CPU of the process (% of one core) while all the started agents just run (ticks, "
        "inbox polls), over a few seconds after the last start.",
        "",
        "| server | variant | alive | start all | wall ms/agent | CPU ms/agent | RSS KiB/agent | server CPU ms/agent "
        "| idle CPU (all agents) | stop all | verified, contexts, SASL |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for variant in ("plain", "tuned"):
            if variant not in r:
                continue
            v = r[variant]
            lines.append(
                f"| {r['kind']} | {variant} | {v['alive']}/{v['n']} | {v['wall_s']:.1f} s | "
                f"{v['wall_ms_per_agent']:.1f} | "
                f"{v['cpu_ms_per_agent']:.1f} | {v['rss_kib_per_agent']:.0f} | {v['server_cpu_ms_per_agent']:.1f} | "
                f"{v['idle_cpu_pct']:.0f} % | {v['stop_s']:.1f} s | {v['verified']}, {v['ssl_contexts']}, "
                f"{v['mechanisms']} |"
            )
    lines.append("")
    return _report_roundtrips(lines, results, skipped, cfg)


def _report_roundtrips(lines: list[str], results: list[dict], skipped: dict[str, str], cfg: dict) -> str:
    m, k, p, mp = cfg["m"], cfg["k"], cfg["p"], cfg["m_profile"]
    if not any("pipelined" in r for r in results):
        for kind, why in skipped.items():
            lines.append(f"\n{kind}: not measured ({why}).")
        return "\n".join(lines) + "\n"
    lines += [
        f"(2) One `AggregatorAgent` (upstream plan, cycle one week: no planning during the runs; open "
        f"enrolment; SQLite store) in one process; {k} `ProsumerAgent`s (tuned) in another; all presence "
        f"subscriptions settled before measuring. *Pipelined*: the prosumers send {m} offers together "
        f"(`add_offer`, release 0, {m // k} each, round robin); time from the first send to the last prosumer "
        f"ledger moving to 'accepted'; latency = send to that moment per offer. *Sequential*: {p} offers one at a "
        f"time. *Raw*: `bench_xmpp` between two plain slixmpp clients on the same server in the same run "
        f"({m} messages one way / pipelined echo; {p} ping-pongs).",
        "",
        "| server | agent acks/s (pipelined) | raw echo round trips/s | agent / raw | raw one-way msgs/s "
        "| latency p50 / p90 / p99 / max ms | sequential latency ms (mean, p99) | raw ping-pong ms "
        "| CPU µs per offer: aggregator / prosumers / server |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        a, x, s = r["pipelined"], r["raw"], r["sequential"]
        ok = "" if a["accepted"] == m else f" ({a['accepted']}/{m} accepted)"
        lines.append(
            f"| {r['kind']} | {a['acks_per_s']:,.0f}{ok} | {x['echo_roundtrips_per_s']:,.0f} | "
            f"{a['acks_per_s'] / x['echo_roundtrips_per_s']:.2f} | {x['oneway_msgs_per_s']:,.0f} | "
            f"{a.get('p50_ms', 0):,.0f} / {a.get('p90_ms', 0):,.0f} / {a.get('p99_ms', 0):,.0f} / "
            f"{a.get('max_ms', 0):,.0f} | "
            f"{s['mean_ms']:.1f}, {s.get('p99_ms', 0):.1f} | {x['pingpong_latency_ms']:.2f} | "
            f"{1e6 * a['agg_cpu_s'] / m:,.0f} / {1e6 * a['d_cpu_s'] / m:,.0f} / {1e6 * a['d_server_cpu_s'] / m:,.0f} |"
        )
    lines += ["", "Traffic behind the pipelined run (counted by thin subclasses of the agents):", ""]
    for r in results:
        a = r["pipelined"]
        lines.append(
            f"- {r['kind']}: the {m:,} offers left the prosumers within {a['send_s']:.1f} s; "
            f"{a['d_handles']:,} engine steps in {a.get('d_commits', 0):,} SQLite transactions in the prosumers "
            f"and {a['agg_handles']:,} in {a.get('agg_commits', 0):,} in the aggregator for {m:,} offers "
            f"(steps of one event-loop turn share a transaction); "
            f"{a['d_presence_events']:,} presence events handled by the prosumers and {a['agg_presence_events']:,} "
            f"by the aggregator; {a['agg_status_broadcasts']:,} aggregator and {a['d_status_broadcasts']:,} prosumer "
            f"status (presence) broadcasts; {a['d_resends']:,} offer resends, {a['agg_duplicates']:,} duplicates "
            f"answered by the aggregator, {a['d_stray_acks']:,} stray (repeated) acks at the prosumers; planning "
            f"rounds: {a['agg_planned']}."
        )
    for r in results:
        if "profiled" not in r:
            continue
        rp = r["profiled"]
        lines += [
            "",
            f"Where the time goes, {r['kind']}: a third pipelined run of {mp} offers (the aggregator already "
            f"holding {rp['agg_offers_before']:,}) with {rp['profiler']} "
            f"on both agent processes ({rp['acks_per_s']:,.0f} acks/s while profiled). Self time by area "
            f"({rp['agg_profile']['unit']}):",
            "",
        ]
        lines += ["| area | aggregator | prosumers |", "| --- | --- | --- |"]
        agg_c = {c["what"]: c for c in rp["agg_profile"]["categories"]}
        pro_c = {c["what"]: c for c in rp["pro_profile"]["categories"]}
        order = sorted(
            set(agg_c) | set(pro_c), key=lambda w: -(agg_c.get(w, {}).get("s", 0) + pro_c.get(w, {}).get("s", 0))
        )
        for w in order:
            lines.append(
                f"| {w} | {_pct(agg_c[w]['share']) if w in agg_c else '-'} | "
                f"{_pct(pro_c[w]['share']) if w in pro_c else '-'} |"
            )
        lines.append(
            f"| total profiled CPU | {rp['agg_profile']['total_s']:.1f} s | {rp['pro_profile']['total_s']:.1f} s |"
        )
        lines += [
            "",
            "Inclusive time (with callees) of the main steps, share of the process's profiled CPU:",
            "",
            "| step | aggregator | prosumers |",
            "| --- | --- | --- |",
        ]
        agg_k = {d["what"]: d for d in rp["agg_profile"]["key"]}
        pro_k = {d["what"]: d for d in rp["pro_profile"]["key"]}
        for label, _f, _n in _KEY_FUNCTIONS:
            if label in agg_k or label in pro_k:
                lines.append(
                    f"| {label.strip()} | {_pct(agg_k[label]['share']) if label in agg_k else '-'} | "
                    f"{_pct(pro_k[label]['share']) if label in pro_k else '-'} |"
                )
        for who, name in (("agg", "aggregator"), ("pro", "prosumers")):
            prof = rp[f"{who}_profile"]
            if prof["threads"]:
                lines.append(
                    f"\n{name} threads: " + ", ".join(f"{t['what']} {_pct(t['share'])}" for t in prof["threads"])
                )
            lines.append(
                f"\n{name} top self time: " + "; ".join(f"{t['what']} {_pct(t['share'])}" for t in prof["top_self"][:8])
            )
    for kind, why in skipped.items():
        lines.append(f"\n{kind}: not measured ({why}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 agents, 500 offers from 10 prosumers")
    ap.add_argument("--kinds", default="prosody,ejabberd")
    ap.add_argument("--n", type=int, help="agents in the start-up passes (default 1000, quick 100)")
    ap.add_argument("--offers", type=int, help="offers in the pipelined run (default 5000, quick 500)")
    ap.add_argument("--prosumers", type=int, help="prosumer agents sending them (default 50, quick 10)")
    ap.add_argument("--record", action="store_true", help="append the Markdown section to bench/RESULTS.md")
    ap.add_argument("--parts", default="startup,roundtrip", help="startup, roundtrip or both (default)")
    ap.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy binary for the profiled run (default: py-spy on PATH; "
        "without it cProfile, which sees only the event-loop thread)",
    )
    ap.add_argument(
        "--prosody-nagle",
        choices=("default", "off"),
        default="default",
        help="diagnostic: 'off' adds network_settings = { nagle = false } to the generated Prosody config",
    )
    ap.add_argument("--prosody-smacks", type=int, metavar="N",
                    help="diagnostic: Prosody asks for an XEP-0198 ack once more than N stanzas are unacked")
    ap.add_argument("--no-profile", action="store_true", help="skip the third, profiled pipelined run")
    ap.add_argument("--profile-rate", type=int, default=100,
                    help="py-spy samples per second in the profiled run (default 100)")
    ap.add_argument("--gc-freeze", choices=("on", "off"), default="on",
                    help="diagnostic: 'off' undoes tune_process's gc.freeze in the agent processes")
    ap.add_argument("--gc-time", action="store_true",
                    help="diagnostic: time the garbage collector in the agent processes (gc.callbacks)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, profiles)")
    ap.add_argument("--sm", default="default",
                    help="XEP-0198 in the agents: 'default', 'off', or an ack window (stanzas per ack request)")
    ap.add_argument(
        "--in-place",
        action="store_true",
        help="import the working tree directly instead of a snapshot of it taken at the start",
    )
    ap.add_argument("--resend", type=float, metavar="SECONDS",
                    help="diagnostic: the agents' resend timeout (default 5 s); on a loaded machine a longer one "
                    "keeps resends (and their duplicates) out of the CPU per offer")
    ap.add_argument("--json", metavar="PATH", help="also write every figure of the run as JSON to PATH")
    ap.add_argument("--form", choices=("on", "off"), default="off",
                    help="diagnostic: 'on' makes the agents send SPADE's metadata form too (spade_metadata, "
                    "off by default since 2026-12-07)")
    a = ap.parse_args(argv)
    if a.sm not in ("default", "off") and not (a.sm.isdigit() and int(a.sm) > 0):
        ap.error(f"--sm: 'default', 'off' or a positive number of stanzas, got {a.sm!r}")
    os.environ["VME_BENCH_SM"] = a.sm  # the agent children read it
    if a.resend is not None:
        os.environ["VME_BENCH_RESEND"] = str(a.resend)
    os.environ["VME_BENCH_FORM"] = a.form
    os.environ["VME_BENCH_GC_FREEZE"] = a.gc_freeze
    os.environ["VME_BENCH_GC_TIME"] = "1" if a.gc_time else "0"
    if not a.in_place and "VME_BENCH_REPO" not in os.environ:
        # run from a snapshot: the parent, the agent children and bench_xmpp's peers all import it
        snap = Path(tempfile.mkdtemp(prefix="vme-bench-agents-code-"))
        try:
            _snapshot(snap)
            code = f"{code_state()}; run from a snapshot of the tree (agent-path fingerprint {code_fingerprint(snap)})"
            env = {**os.environ, "VME_BENCH_REPO": str(REPO), "VME_BENCH_CODE_STATE": code}
            return subprocess.call([sys.executable, str(snap / "bench" / "bench_agents.py"), *argv], env=env)
        finally:
            shutil.rmtree(snap, ignore_errors=True)
    cfg = {
        "n": a.n or (100 if a.quick else 1000),
        "m": a.offers or (500 if a.quick else 5000),
        "k": a.prosumers or (10 if a.quick else 50),
        "p": 50 if a.quick else 200,
        "idle_s": 3.0 if a.quick else 5.0,
        "parts": a.parts.split(","),
        "pyspy": a.py_spy or shutil.which("py-spy"),
        "profile_s": 5 if a.quick else 10,
        "profile_rate": a.profile_rate,
        "profile": not a.no_profile,
    }
    cfg["m_profile"] = max(cfg["k"], cfg["m"] // 2)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if a.prosody_nagle == "off":
        _prosody_without_nagle()
    if a.prosody_smacks is not None:
        _prosody_smacks(a.prosody_smacks)
    code, fingerprint = os.environ.get("VME_BENCH_CODE_STATE") or code_state(), code_fingerprint(ROOT)
    print(f"code: {code}", flush=True)
    results, skipped = [], {}
    tmp = tempfile.mkdtemp(prefix="vme-bench-agents-")
    try:
        for kind in a.kinds.split(","):
            ok, why = servers.check_kind(kind)
            if not ok:
                skipped[kind] = why
                print(f"{kind}: skipped ({why})", flush=True)
                continue
            print(f"{kind}: running ... (work dir {tmp}/{kind})", flush=True)
            try:
                results.append(bench_kind(kind, cfg, Path(tmp)))
            except Exception as exc:  # noqa: BLE001 - one kind failing must not lose the others' figures
                traceback.print_exc()
                skipped[kind] = f"the run failed: {str(exc).strip().splitlines()[-1][:300]}"
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if a.json:
        Path(a.json).write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                                            "utc": time.strftime("%H:%M:%S", time.gmtime()), "results": results}))
    if code_fingerprint(ROOT) != fingerprint:
        code += f"; the agent-path code changed during the run (at the end: {code_state()})"
    command = (
        "python bench/bench_agents.py"
        + (" --quick" if a.quick else "")
        + (f" --kinds {a.kinds}" if a.kinds != "prosody,ejabberd" else "")
        + (f" --parts {a.parts}" if a.parts != "startup,roundtrip" else "")
        + (" --prosody-nagle off" if a.prosody_nagle == "off" else "")
        + (f" --prosody-smacks {a.prosody_smacks}" if a.prosody_smacks is not None else "")
        + (f" --sm {a.sm}" if a.sm != "default" else "")
        + (f" --resend {a.resend:g}" if a.resend is not None else "")
        + (" --form on" if a.form == "on" else "")
        + (" --no-profile" if a.no_profile else "")
        + (f" --py-spy {a.py_spy}" if a.py_spy else "")
        + (f" --profile-rate {a.profile_rate}" if a.profile_rate != 100 else "")
        + (" --gc-freeze off" if a.gc_freeze == "off" else "")
        + (" --gc-time" if a.gc_time else "")
    )
    with open(Path(tempfile.gettempdir()) / "vme-bench-agents-last.json", "w") as f:  # raw figures, for a look later
        json.dump(
            {
                "cfg": cfg,
                "results": results,
                "skipped": skipped,
                "command": command,
                "code": code,
                "load": [load_before, load_after],
            },
            f,
            indent=1,
            default=str,
        )
    text = report(results, skipped, cfg, command, load_before, load_after, code)
    print("\n" + text)
    if a.record:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + text)
        print(f"appended to {REPO / 'bench' / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
