"""Fixtures for tests against real XMPP servers (mark such tests ``@pytest.mark.integration``).

Servers are private, on 127.0.0.1, each in its own temporary run directory, and stopped when
the session ends. A missing server binary skips the test with what to install.

Use from agent tests::

    pytestmark = pytest.mark.integration

    def test_something(prosody_server):            # ServerInfo of a session-wide Prosody
        jid = prosody_server.jid("house1")           # "house1@localhost"
        host, port = prosody_server.address          # ("127.0.0.1", <port>)
        ca = prosody_server.ca_file                  # the server's certificate, as CA file

    def test_on_both(real_xmpp_server): ...          # runs once on prosody, once on ejabberd
    def test_kind(xmpp_server): info = xmpp_server("ejabberd")   # any kind, started once
    def test_private(fresh_xmpp_server): info = fresh_xmpp_server("prosody")  # own server,
                                                     # stopped at the end of this test
    async def test_wire(prosody_server, xmpp_client):   # plain slixmpp clients, TLS verified
        alice = await xmpp_client(prosody_server, "alice", "secret")

SPADE agents reach these servers with ``Agent(jid, password, port=info.port,
verify_security=True)`` after ``vmenergy.runtime.xmpp_tuning.tune_process(info.ca_file)``
(the domain "localhost" resolves to 127.0.0.1; without the shared context SPADE would need
the certificate in the system store or verify_security=False).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Optional

import pytest

from vmenergy.runtime.server_cli import add_server_commands
from vmenergy.runtime.servers import ServerError, ServerInfo, check_kind, start_server, stop_server

ServerFactory = Callable[..., ServerInfo]


def _start_or_skip(kind: str, run_dir: Path, **kwargs: Any) -> ServerInfo:
    ok, reason = check_kind(kind)
    if not ok:
        pytest.skip(reason)
    # the tests' servers let their clients register in-band (a run's own server does not)
    kwargs.setdefault("registration", True)
    try:
        return start_server(kind, run_dir, **kwargs)
    except ServerError as exc:
        pytest.fail(f"could not start {kind}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def xmpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """``xmpp_server(kind="prosody")`` -> ServerInfo of a server of that kind shared by the
    whole session (started on first use, stopped at the end; skipped if not installed)."""
    started: dict[str, ServerInfo] = {}

    def get(kind: str = "prosody") -> ServerInfo:
        if kind not in started:
            started[kind] = _start_or_skip(kind, tmp_path_factory.mktemp(f"xmpp-{kind}"))
        return started[kind]

    yield get
    for info in started.values():
        stop_server(info.run_dir)


@pytest.fixture(scope="session")
def prosody_server(xmpp_server: ServerFactory) -> ServerInfo:
    return xmpp_server("prosody")


@pytest.fixture(scope="session")
def ejabberd_server(xmpp_server: ServerFactory) -> ServerInfo:
    return xmpp_server("ejabberd")


@pytest.fixture(scope="session")
def embedded_server(xmpp_server: ServerFactory) -> ServerInfo:
    return xmpp_server("embedded")


@pytest.fixture(scope="session", params=["prosody", "ejabberd"])
def real_xmpp_server(request: pytest.FixtureRequest, xmpp_server: ServerFactory) -> ServerInfo:
    """The same test once on Prosody and once on ejabberd (each skipped if not installed)."""
    return xmpp_server(request.param)


@pytest.fixture
def fresh_xmpp_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """``fresh_xmpp_server(kind, **start_server_kwargs)`` -> a server of this test's own, in a
    new run dir under tmp_path, stopped when the test ends (for tests that stop, restart or
    otherwise disturb their server)."""
    started: list[ServerInfo] = []

    def make(kind: str = "prosody", **kwargs: Any) -> ServerInfo:
        info = _start_or_skip(kind, tmp_path / f"xmpp-{kind}-{len(started)}", **kwargs)
        started.append(info)
        return info

    yield make
    for info in started:
        stop_server(info.run_dir)


# ---------------------------------------------------------------------------------------------
# Plain slixmpp clients (no VME code): what a third-party XMPP client does.


def plain_client_class() -> type:
    from slixmpp import ClientXMPP
    from slixmpp.exceptions import IqError

    class PlainClient(ClientXMPP):
        """A slixmpp client that registers in-band (optionally), authenticates over STARTTLS
        and records messages and presence in queues."""

        def __init__(self, jid: str, password: str, register: bool, **kwargs: Any) -> None:
            super().__init__(jid, password, **kwargs)
            self.enable_direct_tls = False  # the private servers offer STARTTLS on one port
            self.enable_plaintext = False
            self.messages: asyncio.Queue = asyncio.Queue()
            self.presences: asyncio.Queue = asyncio.Queue()
            self.ready: asyncio.Future = asyncio.get_event_loop().create_future()
            self.register_plugin("xep_0030")
            self.register_plugin("xep_0199")
            if register:
                self.register_plugin("xep_0077")
                self.add_event_handler("register", self._register)
            self.add_event_handler("session_start", self._session_start)
            self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
            self.add_event_handler("presence_available", lambda p: self.presences.put_nowait(p))
            for event in ("failed_all_auth", "ssl_invalid_chain", "connection_failed"):
                self.add_event_handler(event, lambda e, event=event: self._fail(f"{event}: {e}"))
            self.add_event_handler("disconnected", lambda e: self._fail(f"disconnected: {e}"))

        def _fail(self, reason: str) -> None:
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"{self.boundjid.bare}: {reason}"))

        async def _register(self, form: Any) -> None:
            iq = self.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = self.boundjid.user
            iq["register"]["password"] = self.password
            try:
                await iq.send()
            except IqError as exc:  # an existing account is fine: authentication follows
                if exc.iq["error"]["condition"] != "conflict":
                    self._fail(f"registration refused: {exc.iq['error']['condition']}")

        async def _session_start(self, event: Any) -> None:
            self.send_presence()
            await self.get_roster()
            if not self.ready.done():
                self.ready.set_result(True)

        def tls_peer_certificate(self) -> Optional[dict]:
            ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
            return ssl_obj.getpeercert() if ssl_obj is not None else None

    return PlainClient


async def connect_plain_client(
    info: ServerInfo, user: str, password: str, *, register: bool = True,
    ssl_context: Optional[ssl.SSLContext] = None, timeout: float = 15.0,
) -> Any:
    """A connected, authenticated plain slixmpp client of ``user`` on ``info``. Without
    ``ssl_context`` it uses slixmpp's own TLS set-up with ``ca_certs = info.ca_file``
    (verification and host-name check on)."""
    cls = plain_client_class()
    kwargs = {"ssl_context": ssl_context} if ssl_context is not None else {}
    client = cls(info.jid(user), password, register, **kwargs)
    if ssl_context is None:
        client.ca_certs = Path(info.ca_file)
    client.connect(host=info.host, port=info.port)
    try:
        await asyncio.wait_for(client.ready, timeout)
    except BaseException:
        client.disconnect()
        raise
    return client


@pytest.fixture
async def xmpp_client() -> Any:
    """``await xmpp_client(info, user, password, register=True, ssl_context=None)`` -> a
    connected plain slixmpp client; all are disconnected when the test ends."""
    clients: list[Any] = []

    async def make(info: ServerInfo, user: str, password: str, **kwargs: Any) -> Any:
        client = await connect_plain_client(info, user, password, **kwargs)
        clients.append(client)
        return client

    yield make
    await disconnect_all(clients)


async def disconnect_all(clients: list[Any], wait: float = 2.0) -> None:
    """Close the streams of ``clients`` and wait (bounded) until they are closed."""
    futures = [c.disconnect(wait=wait) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), wait + 3)
    except asyncio.TimeoutError:
        for c in clients:
            c.abort()


async def next_item(queue: asyncio.Queue, timeout: float = 10.0, what: str = "item") -> Any:
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {timeout:g} s") from None


AsyncFactory = Callable[..., Awaitable[Any]]


def server_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``vmenergy server ...`` in-process: (exit code, output)."""
    parser = argparse.ArgumentParser(prog="vmenergy")
    add_server_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return int(args.func(args, out)), out.getvalue()


def server_dict(info: ServerInfo) -> dict:
    """A started server as a scenario run's ``server`` table."""
    return {"kind": info.kind, "host": info.host, "port": info.port, "domain": info.domain, "ca_file": info.ca_file}


def run_to_done(scenario: Path, run_dir: Path, server: ServerInfo, *, timeout: float) -> tuple[dict, Any, Path]:
    """Run a scenario swarm on ``server`` until every offer is final (it must get there, with its
    views reconciled); its ``summary.json``, its plan and its report folder."""
    import json

    from vmenergy.runtime.orchestrator import Swarm

    swarm = Swarm(scenario, run_dir, server=server_dict(server), out=lambda line: None)
    try:
        plan = swarm.start()
        prog = swarm.wait(timeout=timeout)
    finally:
        swarm.stop()
    report = swarm.report()
    assert prog.finished == "done", prog.line()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["reconciled"]["ok"], summary["reconciled"]
    return summary, plan, report.parent


def run_two_shards(first: list[str], second: list[str], run1: Path, *, timeout: float = 600):
    """``vmenergy run ... --shard 1/2 --out RUN1`` (``first``: the arguments after ``run``) and,
    once shard 1 has written its join file, ``vmenergy run ... --shard 2/2 --join RUN1/join.json``
    (``second``), as two commands would on two machines; both must end with exit code 0. Shard
    2's completed process (its output says what it sent)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "vmenergy", "run"]
    shard1 = subprocess.Popen(cmd + first + ["--shard", "1/2", "--out", str(run1)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        for line in shard1.stdout:  # shard 1 says where the join file is once it is written
            if "join with" in line:
                break
        assert (run1 / "join.json").exists(), "shard 1 wrote no join file"
        shard2 = subprocess.run(cmd + second + ["--shard", "2/2", "--join", str(run1 / "join.json")],
                                capture_output=True, text=True, timeout=timeout)
        assert shard2.returncode == 0, shard2.stdout + shard2.stderr
        assert shard1.wait(timeout) == 0
        return shard2
    finally:
        if shard1.poll() is None:
            shard1.kill()
            shard1.wait()
