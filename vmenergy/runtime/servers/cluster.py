"""A private ejabberd cluster on this machine: N Erlang nodes on loopback serving one XMPP domain,
as N machines would (each node its own run directory, client port, certificate and distribution
port; one shared cookie; an epmd of the cluster's own). ejabberd replicates accounts, rosters and
sessions (Mnesia) and routes between nodes, so an agent on node A talks to an agent on node B as
if they shared a server: this is how VME scales the XMPP layer out (docs/scaling.md).

Start one with ``python -m vmenergy.runtime.servers.cluster start DIR [--nodes 2]`` (or
``xmpp-server/ejabberd/start-cluster.sh DIR``); it prints each node's address and writes
``DIR/cluster.json``; ``... stop DIR`` stops every node and the epmd.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from vmenergy.runtime.private import private_dir, write_private

from . import ejabberd, process
from .info import HOST, ServerError, ServerInfo, read_info
from .lifecycle import start_server, stop_server

__all__ = ["Cluster", "start_cluster", "stop_cluster", "CLUSTER_FILE"]

CLUSTER_FILE = "cluster.json"
#: How long a node may take to join (Mnesia copies the schema from the first node).
JOIN_TIMEOUT = 120.0


@dataclass
class Cluster:
    """The nodes of a running cluster (the first is the one the others joined) and its epmd."""

    base_dir: Path
    nodes: list[ServerInfo]
    epmd_pid: int
    epmd_port: int

    def node_names(self) -> list[str]:
        return [n.extra["node"] for n in self.nodes]


def _epmd() -> str:
    path = shutil.which("epmd") or "/usr/bin/epmd"
    if not Path(path).exists():
        raise ServerError("epmd (Erlang's port mapper, part of erlang-base) is missing: sudo apt-get install ejabberd")
    return path


def _ctl(node: ServerInfo, *args: str, timeout: float = 60.0) -> str:
    cmd = ejabberd._ctl_args(node) + list(args)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=node.run_dir)
    except subprocess.TimeoutExpired:
        raise ServerError(f"ejabberdctl {' '.join(args)} did not finish within {timeout:g} s") from None
    if res.returncode != 0:
        raise ServerError(f"ejabberdctl {' '.join(args)} on {node.extra['node']} failed ({res.returncode}): "
                          f"{(res.stdout + res.stderr).strip()[-800:]}")
    return res.stdout


def start_cluster(base_dir: Path | str, nodes: int = 2, domain: str = "localhost",
                  registration: bool = False, timeout: Optional[float] = None) -> Cluster:
    """Start ``nodes`` ejabberd nodes clustered on loopback under ``base_dir`` (``node1``,
    ``node2``, ...); every node after the first joins the first. Raises :class:`ServerError`
    (and stops what it started) if a node does not come up or does not join."""
    if nodes < 1:
        raise ServerError(f"a cluster has at least one node (got {nodes})")
    ok, reason = ejabberd.check()
    if not ok:
        raise ServerError(reason)
    base = Path(base_dir).resolve()
    private_dir(base)
    epmd_port = process.free_port()
    # the cluster's own port mapper, in the foreground as our child: nothing outlives the cluster
    epmd = subprocess.Popen([_epmd(), "-address", HOST, "-port", str(epmd_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    cluster = Cluster(base, [], epmd.pid, epmd_port)
    cookie = secrets.token_hex(16)
    try:
        _wait_port(epmd_port, epmd, 10.0)
        for i in range(nodes):
            info = start_server("ejabberd", base / f"node{i + 1}", domain, timeout=timeout, registration=registration,
                                options={"cluster_cookie": cookie, "epmd_port": str(epmd_port)})
            cluster.nodes.append(info)
            if i > 0:
                _ctl(info, "join_cluster", cluster.nodes[0].extra["node"], timeout=JOIN_TIMEOUT)
        _check_members(cluster)
    except BaseException:
        stop_cluster(cluster)
        raise
    write_private(base / CLUSTER_FILE, json.dumps({
        "epmd_pid": epmd.pid, "epmd_port": epmd_port, "nodes": [n.run_dir for n in cluster.nodes]}, indent=1))
    return cluster


def _wait_port(port: int, proc: subprocess.Popen, within: float) -> None:
    deadline = time.monotonic() + within
    while not process.port_in_use(port):
        if proc.poll() is not None:
            raise ServerError(f"epmd exited ({proc.returncode}) before listening on {HOST}:{port}")
        if time.monotonic() > deadline:
            raise ServerError(f"epmd did not listen on {HOST}:{port} within {within:g} s")
        time.sleep(0.05)


def _check_members(cluster: Cluster) -> None:
    """Every node lists every other as a running member of its cluster."""
    want = set(cluster.node_names())
    for node in cluster.nodes:
        listed = _ctl(node, "list_cluster")
        missing = [n for n in want if n not in listed]
        if missing:
            raise ServerError(f"{node.extra['node']} does not list {', '.join(missing)} in its cluster: {listed.strip()}")


def stop_cluster(cluster: Cluster | Path | str) -> None:
    """Stop every node (last first) and the cluster's epmd. Idempotent."""
    if not isinstance(cluster, Cluster):
        base = Path(cluster).resolve()
        try:
            recorded = json.loads((base / CLUSTER_FILE).read_text())
        except (OSError, ValueError):
            return
        nodes = [n for n in (read_info(d) for d in recorded["nodes"]) if n is not None]
        cluster = Cluster(base, nodes, int(recorded["epmd_pid"]), int(recorded["epmd_port"]))
    for node in reversed(cluster.nodes):
        stop_server(node.run_dir)
    process.reap(cluster.epmd_pid)
    try:
        os.kill(cluster.epmd_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    process.reap(cluster.epmd_pid)


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmenergy.runtime.servers.cluster", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("start", help="start N clustered ejabberd nodes in DIR")
    st.add_argument("dir")
    st.add_argument("--nodes", type=int, default=2)
    st.add_argument("--domain", default="localhost")
    st.add_argument("--open-registration", action="store_true", help="in-band registration open (development)")
    sp = sub.add_parser("stop", help="stop the cluster in DIR")
    sp.add_argument("dir")
    args = ap.parse_args(argv)
    if args.command == "stop":
        stop_cluster(args.dir)
        print(f"stopped the cluster in {args.dir}")
        return 0
    try:
        cluster = start_cluster(args.dir, args.nodes, args.domain, registration=args.open_registration)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for n in cluster.nodes:
        print(f"{n.extra['node']}: {n.domain} on {n.host}:{n.port}, CA file {n.ca_file}, run dir {n.run_dir}")
    print(f"stop with: python -m vmenergy.runtime.servers.cluster stop {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
