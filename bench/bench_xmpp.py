"""XMPP start-up and message rates on each installed server kind (plain slixmpp, no agents).

For every server kind that can run here (prosody, ejabberd, embedded), on a private server:

(a) connect + authenticate N clients (N=200; --quick 20) concurrently in one process, accounts
    made beforehand: without tuning (slixmpp as SPADE uses it: own TLS context with the system CA
    store per client, pure-Python SCRAM) and with ``vmenergy.runtime.xmpp_tuning`` (shared TLS
    context, hashlib SCRAM). Each variant runs in a fresh child process so memory and patches
    do not leak between them. Reported: wall time per client, client CPU per client, client
    memory per client, server CPU per client. Verification is on in both variants.
(b) raw message rates between two plain clients in different processes (20,000 messages;
    --quick 2,000): one-way throughput, pipelined echo round trips, and sequential ping-pong
    latency. These are the references for agent flex-offer round trips (offer -> ack).

Usage: python bench/bench_xmpp.py [--quick] [--kinds prosody,ejabberd,embedded] [--n N] [--messages M]
Prints the figures and a Markdown section; with --record it appends that to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from vmenergy.runtime import servers  # noqa: E402
from vmenergy.runtime.servers import ServerInfo  # noqa: E402

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)

# ---------------------------------------------------------------------------------------------
# Clients


def _client_class() -> type:
    from slixmpp import ClientXMPP

    class BenchClient(ClientXMPP):
        def __init__(self, jid: str, password: str, **kwargs: Any) -> None:
            super().__init__(jid, password, **kwargs)
            self.enable_direct_tls = False
            self.enable_plaintext = False
            self.ready: asyncio.Future = asyncio.get_event_loop().create_future()
            self.add_event_handler("session_start", self._started)
            for ev in ("failed_all_auth", "ssl_invalid_chain", "connection_failed"):
                self.add_event_handler(ev, lambda e, ev=ev: self._fail(f"{ev}: {e}"))

        def _fail(self, why: str) -> None:
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"{self.boundjid.bare}: {why}"))

        def _started(self, _: Any) -> None:
            self.send_presence()
            if not self.ready.done():
                self.ready.set_result(True)

    return BenchClient


def _make_client(info: ServerInfo, user: str, password: str, tuned: bool) -> Any:
    from vmenergy.runtime import xmpp_tuning

    cls = _client_class()
    if tuned:
        return cls(info.jid(user), password, ssl_context=xmpp_tuning.client_ssl_context(info.ca_file))
    client = cls(info.jid(user), password)  # slixmpp's default context, system store loaded
    client.ca_certs = Path(info.ca_file)    # ... plus the private CA, loaded on connect
    return client


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _server_cpu(info: ServerInfo) -> float:
    """CPU seconds used so far by the server's whole process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in servers.process.group_members(info.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


async def _connect_pass(info: ServerInfo, users: list[tuple[str, str]], tuned: bool) -> dict[str, float]:
    from vmenergy.runtime import xmpp_tuning

    if tuned:
        xmpp_tuning.install_fast_scram()
    rss0, cpu0, srv0 = _rss_kib(), time.process_time(), _server_cpu(info)
    t0 = time.perf_counter()
    clients = [_make_client(info, u, p, tuned) for u, p in users]
    t_built = time.perf_counter()
    for c in clients:
        c.connect(host=info.host, port=info.port)
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients)), 300)
    t1 = time.perf_counter()
    cpu1, rss1, srv1 = time.process_time(), _rss_kib(), _server_cpu(info)
    mechs = {str(c.plugin["feature_mechanisms"].mech.name) for c in clients}
    verified = all(c.ssl_context.verify_mode.name == "CERT_REQUIRED" and c.ssl_context.check_hostname for c in clients)
    await asyncio.wait_for(asyncio.gather(*(c.disconnect(wait=1) for c in clients), return_exceptions=True), 30)
    await asyncio.sleep(0.2)  # let slixmpp's stream tasks finish before the loop closes
    n = len(users)
    return {
        "n": n, "wall_s": t1 - t0, "build_ms_per_client": 1000 * (t_built - t0) / n,
        "wall_ms_per_client": 1000 * (t1 - t0) / n, "cpu_ms_per_client": 1000 * (cpu1 - cpu0) / n,
        "rss_kib_per_client": (rss1 - rss0) / n, "server_cpu_ms_per_client": 1000 * (srv1 - srv0) / n,
        "mechanisms": ",".join(sorted(mechs)), "verified": verified,
    }


async def _echo_peer(info: ServerInfo, user: str, password: str) -> None:
    """Child process: echoes "e:" messages back to their sender, counts "o:" messages, and
    reports the count in the echo of a message "e:last"."""
    from vmenergy.runtime import xmpp_tuning

    xmpp_tuning.install_fast_scram()
    c = _client_class()(info.jid(user), password, ssl_context=xmpp_tuning.client_ssl_context(info.ca_file))
    seen = 0
    done = asyncio.get_running_loop().create_future()
    shape: list[Any] = []  # the children an "s:" echo carries besides its body ("e:shape" sets them)
    body_tag = "{jabber:client}body"

    def on_message(msg: Any) -> None:
        nonlocal seen
        body = msg["body"]
        if body.startswith("o:"):
            seen += 1
        elif body.startswith("s:"):
            reply = c.make_message(mto=msg["from"], mbody=body, mtype="chat")
            for el in shape:
                reply.xml.append(el.__deepcopy__({}))
            reply.send()
        elif body == "e:shape":
            shape[:] = [el for el in msg.xml if el.tag != body_tag]
            c.send_message(mto=msg["from"], mbody="e:shape", mtype="chat")
        elif body == "e:stop":
            done.set_result(True)
        elif body == "e:last":
            c.send_message(mto=msg["from"], mbody=f"e:last:{seen}:{time.process_time():.6f}", mtype="chat")
            seen = 0
        elif body == "e:cpu":
            c.send_message(mto=msg["from"], mbody=f"e:cpu:{time.process_time():.6f}", mtype="chat")
        else:
            c.send_message(mto=msg["from"], mbody=body, mtype="chat")

    c.add_event_handler("message", on_message)
    c.connect(host=info.host, port=info.port)
    await c.ready
    print("READY", flush=True)
    await done
    await c.disconnect(wait=1)


def wire_bytes(info: ServerInfo) -> int:
    """Bytes the server's client connections carried so far, both ways, TLS records and all
    (the kernel's per-socket counters, ``ss -ti``, on the server's side of each connection);
    -1 if ``ss`` cannot say."""
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{info.port} )"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    total = 0
    for word in out.split():
        if word.startswith(("bytes_sent:", "bytes_received:")):
            total += int(word.split(":", 1)[1])
    return total


def stanza_children(xml_text: str) -> list[Any]:
    """The children of a ``<message/>`` stanza's XML other than its body (what a shaped echo
    carries: an offer's or an ack's metadata form and protocol element)."""
    import xml.etree.ElementTree as ET

    return [el for el in ET.fromstring(xml_text) if el.tag != "{jabber:client}body"]


async def _rates(info: ServerInfo, peer_jid: str, messages: int, pingpong: int,
                 shapes: dict[str, str] | None = None) -> dict[str, float]:
    """Raw slixmpp rates: one way, pipelined echo, ping-pong; with ``shapes`` ({"request":
    stanza XML, "reply": stanza XML, "body": a body line}) also an echo whose request and reply
    carry the same children and body length as those stanzas (an offer and its ack), so the
    stanza's size and shape can be told apart from the agents' own work."""
    from vmenergy.runtime import xmpp_tuning

    xmpp_tuning.install_fast_scram()
    c = _client_class()(info.jid("bench-sender"), "pw-sender", ssl_context=xmpp_tuning.client_ssl_context(info.ca_file))
    replies: asyncio.Queue = asyncio.Queue()
    c.add_event_handler("message", lambda m: replies.put_nowait(m["body"]))
    c.connect(host=info.host, port=info.port)
    await c.ready
    pad = "x" * 80  # ~100-byte bodies, like a short human-readable summary line
    out: dict[str, float] = {}

    # one-way: N messages, then a marker whose echo carries the count received. CPU per
    # message on each side is less sensitive to other load on the machine than the rate.
    c.send_message(mto=peer_jid, mbody="e:cpu", mtype="chat")
    peer_cpu0 = float((await asyncio.wait_for(replies.get(), 30)).rsplit(":", 1)[1])
    cpu0, srv0 = time.process_time(), _server_cpu(info)
    t0 = time.perf_counter()
    for i in range(messages):
        c.send_message(mto=peer_jid, mbody=f"o:{i}:{pad}", mtype="chat")
    c.send_message(mto=peer_jid, mbody="e:last", mtype="chat")
    last = await asyncio.wait_for(replies.get(), 300)
    t1 = time.perf_counter()
    cpu1, srv1 = time.process_time(), _server_cpu(info)
    _, _, got_s, peer_cpu1_s = last.split(":")
    if int(got_s) != messages:
        raise RuntimeError(f"one-way: {got_s} of {messages} messages arrived")
    out["oneway_msgs_per_s"] = messages / (t1 - t0)
    out["sender_cpu_us_per_msg"] = 1e6 * (cpu1 - cpu0) / messages
    out["receiver_cpu_us_per_msg"] = 1e6 * (float(peer_cpu1_s) - peer_cpu0) / messages
    out["server_cpu_us_per_msg"] = 1e6 * (srv1 - srv0) / messages

    async def peer_cpu() -> float:
        c.send_message(mto=peer_jid, mbody="e:cpu", mtype="chat")
        return float((await asyncio.wait_for(replies.get(), 30)).rsplit(":", 1)[1])

    async def measured(prefix: str, count: int, send: Any) -> None:
        """Run ``send(i)`` ``count`` times (each answered once) and record the rate and what one
        round trip cost: CPU of the sender, the echo peer and the server, and bytes on the wire."""
        p0, cpu0, srv0, b0 = await peer_cpu(), time.process_time(), _server_cpu(info), wire_bytes(info)
        t0 = time.perf_counter()
        await send(count)
        t1 = time.perf_counter()
        cpu1, srv1, b1 = time.process_time(), _server_cpu(info), wire_bytes(info)
        p1 = await peer_cpu()
        out[f"{prefix}_roundtrips_per_s"] = count / (t1 - t0)
        out[f"{prefix}_sender_cpu_us"] = 1e6 * (cpu1 - cpu0) / count
        out[f"{prefix}_peer_cpu_us"] = 1e6 * (p1 - p0) / count
        out[f"{prefix}_server_cpu_us"] = 1e6 * (srv1 - srv0) / count
        out[f"{prefix}_wire_bytes"] = (b1 - b0) / count if b0 >= 0 and b1 >= 0 else -1

    async def pipelined(make: Any, count: int) -> None:
        for i in range(count):
            make(i).send()
        for _ in range(count):
            await asyncio.wait_for(replies.get(), 300)

    latencies: list[float] = []  # of the last one-at-a-time pass, seconds each

    async def one_at_a_time(make: Any, count: int) -> None:
        latencies.clear()
        for i in range(count):
            t = time.perf_counter()
            make(i).send()
            await asyncio.wait_for(replies.get(), 30)
            latencies.append(time.perf_counter() - t)

    def quantiles(prefix: str) -> None:
        """p10 and p50 of the last one-at-a-time pass: on a loaded machine the low quantiles say
        what a round trip costs when nothing else was scheduled in its way, the mean does not."""
        xs = sorted(latencies)
        for q in (10, 50):
            out[f"{prefix}_p{q}_ms"] = 1000 * xs[min(len(xs) - 1, len(xs) * q // 100)]

    def small(i: int) -> Any:
        return c.make_message(mto=peer_jid, mbody=f"e:{i}:{pad}", mtype="chat")

    # pipelined echo: N requests in flight, N replies
    await measured("echo", messages, lambda n: pipelined(small, n))
    # sequential ping-pong: one request at a time
    await measured("pingpong", pingpong, lambda n: one_at_a_time(lambda i: c.make_message(
        mto=peer_jid, mbody=f"e:p{i}", mtype="chat"), n))
    out["pingpong_latency_ms"] = 1000 / out["pingpong_roundtrips_per_s"]
    quantiles("pingpong")
    for variant, keep in (("shaped", lambda el: True), ("noform", lambda el: el.tag != "{jabber:x:data}x")):
        # "noform": the same without SPADE's metadata form (a diagnostic: what the form costs),
        # only when the agents send it (bench_agents --form on; by default they do not)
        if not shapes:
            break
        if variant == "noform" and "{jabber:x:data}x" not in {el.tag for el in stanza_children(shapes["request"])}:
            break
        request = [el for el in stanza_children(shapes["request"]) if keep(el)]
        reply_body = shapes["body"]
        setter = c.make_message(mto=peer_jid, mbody="e:shape", mtype="chat")
        setter.xml.extend(el for el in stanza_children(shapes["reply"]) if keep(el))
        setter.send()
        await asyncio.wait_for(replies.get(), 30)

        def shaped(i: int, request: list = request, reply_body: str = reply_body) -> Any:
            m = c.make_message(mto=peer_jid, mbody=f"s:{i}:{reply_body}"[:len(reply_body)], mtype="chat")
            for el in request:
                m.xml.append(el.__deepcopy__({}))
            return m

        out[f"{variant}_request_bytes"] = len(str(shaped(0)))
        await measured(f"{variant}_echo", messages, lambda n: pipelined(shaped, n))
        await measured(f"{variant}_pingpong", pingpong, lambda n: one_at_a_time(shaped, n))
        out[f"{variant}_pingpong_latency_ms"] = 1000 / out[f"{variant}_pingpong_roundtrips_per_s"]
        quantiles(f"{variant}_pingpong")
    c.send_message(mto=peer_jid, mbody="e:stop", mtype="chat")
    await c.disconnect(wait=2)
    return out


# ---------------------------------------------------------------------------------------------
# Orchestration (parent process)


def _run(coro: Any) -> Any:
    """Run on uvloop when it is there: SPADE switches every agent process to it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def _child(args: list[str], **kw: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", *args], **kw)


def _ensure_accounts(info: ServerInfo, users: list[tuple[str, str]]) -> None:
    if info.kind == "embedded":  # no admin tool: register in-band once (not timed)
        proc = _child(["register", info.run_dir, json.dumps(users)], stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise RuntimeError(f"in-band registration failed on embedded: {out}")
    else:
        servers.register_accounts(info, users)


async def _register_inband(info: ServerInfo, users: list[tuple[str, str]]) -> None:
    from slixmpp.exceptions import IqError

    from vmenergy.runtime import xmpp_tuning

    xmpp_tuning.install_fast_scram()
    cls = _client_class()
    batch = 50
    for k in range(0, len(users), batch):
        clients = []
        for u, p in users[k:k + batch]:
            c = cls(info.jid(u), p, ssl_context=xmpp_tuning.client_ssl_context(info.ca_file))
            c.register_plugin("xep_0077")

            async def reg(form: Any, c: Any = c, u: str = u, p: str = p) -> None:
                iq = c.Iq()
                iq["type"], iq["register"]["username"], iq["register"]["password"] = "set", u, p
                try:
                    await iq.send()
                except IqError:
                    pass

            c.add_event_handler("register", reg)
            c.connect(host=info.host, port=info.port)
            clients.append(c)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients)), 120)
        await asyncio.gather(*(c.disconnect(wait=1) for c in clients), return_exceptions=True)


def bench_kind(kind: str, n: int, messages: int, pingpong: int, base: Path) -> dict[str, Any]:
    info = servers.start_server(kind, base / kind, registration=True)  # clients register in-band
    try:
        users = [(f"bench{i}", f"pw{i}") for i in range(n)]
        t0 = time.perf_counter()
        _ensure_accounts(info, users + [("bench-echo", "pw-echo"), ("bench-sender", "pw-sender")])
        res: dict[str, Any] = {"kind": kind, "accounts_s": time.perf_counter() - t0}
        # A short untimed pass first, so neither variant pays for the server's warm-up.
        warm = _child(["connect", info.run_dir, json.dumps(users[:10]), "1"], stdout=subprocess.DEVNULL)
        if warm.wait(timeout=300):
            raise RuntimeError(f"warm-up pass failed on {kind}")
        for tuned in (False, True):
            proc = _child(["connect", info.run_dir, json.dumps(users), "1" if tuned else "0"],
                          stdout=subprocess.PIPE, text=True)
            out, _ = proc.communicate(timeout=900)
            if proc.returncode:
                raise RuntimeError(f"connect pass failed on {kind}")
            res["tuned" if tuned else "plain"] = json.loads(out.strip().splitlines()[-1])
        peer = _child(["echo", info.run_dir], stdout=subprocess.PIPE, text=True)
        try:
            line = peer.stdout.readline() if peer.stdout else ""
            if "READY" not in line:
                raise RuntimeError(f"echo peer did not start on {kind}")
            res["rates"] = _run(_rates(info, info.jid("bench-echo"), messages, pingpong))
            peer.wait(timeout=30)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
        return res
    finally:
        servers.stop_server(info.run_dir)


def versions() -> str:
    out = []
    for pkg in ("prosody", "ejabberd"):
        try:
            v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        except OSError:
            v = ""
        if v:
            out.append(f"{pkg} {v}")
    try:
        from importlib.metadata import version

        out.append(f"slixmpp {version('slixmpp-multiplatform')}, pyjabber {version('pyjabber')}")
    except Exception:  # noqa: BLE001 - informative only
        pass
    return "; ".join(out)


def report(results: list[dict[str, Any]], skipped: dict[str, str], n: int, messages: int, pingpong: int,
           command: str, load: str) -> str:
    lines = [
        "## XMPP start-up and raw message rates (`bench/bench_xmpp.py`)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {machine()}; {versions()}. Command: `{command}`. "
        f"Load average before the run: {load}; other engineers' work may have been running on the machine.",
        "",
        f"(a) {n} plain slixmpp clients connecting at once in one process (STARTTLS, certificate and host name "
        "verified against the private server's certificate, accounts made beforehand). *plain*: slixmpp as SPADE "
        "uses it (own TLS context with the system CA store per client, pure-Python SCRAM); *tuned*: "
        "`xmpp_tuning` (one shared context, `hashlib.pbkdf2_hmac` SCRAM). Each variant in a fresh process.",
        "",
        "| server | variant | SASL | wall ms/client | client CPU ms/client | client KiB/client | server CPU ms/client |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for variant in ("plain", "tuned"):
            v = r[variant]
            lines.append(
                f"| {r['kind']} | {variant} | {v['mechanisms']} | {v['wall_ms_per_client']:.1f} | "
                f"{v['cpu_ms_per_client']:.1f} | {v['rss_kib_per_client']:.0f} | {v['server_cpu_ms_per_client']:.1f} |"
            )
    lines += [
        "",
        f"(b) Two plain clients in two processes, ~100-byte bodies: {messages} messages one way; {messages} echo "
        f"round trips all in flight; {pingpong} sequential ping-pong round trips.",
        "",
        "| server | one-way msgs/s | CPU µs/msg sender / receiver / server | pipelined echo round trips/s "
        "| ping-pong round trips/s | ping-pong latency ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        x = r["rates"]
        lines.append(
            f"| {r['kind']} | {x['oneway_msgs_per_s']:,.0f} | {x['sender_cpu_us_per_msg']:.0f} / "
            f"{x['receiver_cpu_us_per_msg']:.0f} / {x['server_cpu_us_per_msg']:.0f} | "
            f"{x['echo_roundtrips_per_s']:,.0f} | {x['pingpong_roundtrips_per_s']:,.0f} | {x['pingpong_latency_ms']:.2f} |"
        )
    for kind, why in skipped.items():
        lines.append(f"\n{kind}: not measured ({why}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 clients, 2,000 messages")
    p.add_argument("--kinds", default="prosody,ejabberd,embedded")
    p.add_argument("--n", type=int, default=None, help="clients per connect pass (default 200, quick 20)")
    p.add_argument("--messages", type=int, default=None, help="messages (default 20000, quick 2000)")
    p.add_argument("--record", action="store_true", help="append the Markdown section to bench/RESULTS.md")
    a = p.parse_args(argv)
    n = a.n or (20 if a.quick else 200)
    messages = a.messages or (2000 if a.quick else 20000)
    pingpong = 200 if a.quick else 1000
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="vme-bench-xmpp-") as tmp:
        for kind in a.kinds.split(","):
            ok, why = servers.check_kind(kind)
            if not ok:
                skipped[kind] = why
                print(f"{kind}: skipped ({why})", flush=True)
                continue
            print(f"{kind}: running ...", flush=True)
            r = bench_kind(kind, n, messages, pingpong, Path(tmp))
            results.append(r)
            for variant in ("plain", "tuned"):
                v = r[variant]
                print(f"  connect+auth {variant:5s}: {v['wall_ms_per_client']:.1f} ms/client wall, "
                      f"{v['cpu_ms_per_client']:.1f} ms CPU, {v['rss_kib_per_client']:.0f} KiB, "
                      f"server {v['server_cpu_ms_per_client']:.1f} ms CPU ({v['mechanisms']}, verified={v['verified']})",
                      flush=True)
            x = r["rates"]
            print(f"  one-way {x['oneway_msgs_per_s']:,.0f} msgs/s (CPU us/msg: sender "
                  f"{x['sender_cpu_us_per_msg']:.0f}, receiver {x['receiver_cpu_us_per_msg']:.0f}, "
                  f"server {x['server_cpu_us_per_msg']:.0f}); echo {x['echo_roundtrips_per_s']:,.0f} "
                  f"round trips/s; ping-pong {x['pingpong_roundtrips_per_s']:,.0f}/s "
                  f"({x['pingpong_latency_ms']:.2f} ms)", flush=True)
    command = "python bench/bench_xmpp.py" + (" --quick" if a.quick else "")
    text = report(results, skipped, n, messages, pingpong, command, load)
    print("\n" + text)
    if a.record:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n" + text)
        print(f"appended to {HERE / 'RESULTS.md'}")
    return 0


def child_main(argv: list[str]) -> int:
    mode, run_dir = argv[0], argv[1]
    info = servers.read_info(run_dir)
    if info is None:
        print(f"no server in {run_dir}", file=sys.stderr)
        return 1
    if mode == "connect":
        users = [tuple(u) for u in json.loads(argv[2])]
        res = _run(_connect_pass(info, users, argv[3] == "1"))  # type: ignore[arg-type]
        print(json.dumps(res), flush=True)
    elif mode == "echo":
        _run(_echo_peer(info, "bench-echo", "pw-echo"))
    elif mode == "register":
        _run(_register_inband(info, [tuple(u) for u in json.loads(argv[2])]))  # type: ignore[misc]
    else:
        print(f"unknown child mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
