"""The drills' parts on their own: the lossy proxy (bytes in order, delayed, swallowed, cut)
and the reading of a run's logs for exceptions."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from vmenergy.runtime.drill.figures import logged_exceptions
from vmenergy.runtime.drill.proxy import Impairment, LossyProxy


@pytest.fixture
def echo_server():
    """A loopback TCP server that echoes whatever it gets, one thread per connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()
    stop.set()
    srv.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _until(predicate, timeout: float = 30.0) -> None:
    """Wait for a condition the proxy's thread makes true (a bounded poll, not a fixed sleep)."""
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        done.wait(0.01)


def test_the_proxy_passes_bytes_in_order_though_each_chunk_is_delayed(echo_server):
    proxy = LossyProxy(echo_server, seed=1)
    port = proxy.start()
    proxy.impair(Impairment(delay_max=0.01))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            sent = b"".join(f"<m n='{i}'/>".encode() for i in range(300))
            for i in range(0, len(sent), 97):  # many small chunks, each with its own delay
                s.sendall(sent[i:i + 97])
            assert _recv_exactly(s, len(sent)) == sent
    finally:
        proxy.stop()
    assert proxy.forwarded_bytes >= 2 * len(sent)


def test_a_blackholed_proxy_swallows_what_is_sent_and_a_cut_closes_the_connection(echo_server):
    proxy = LossyProxy(echo_server, seed=2)
    port = proxy.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"before")
            assert _recv_exactly(s, 6) == b"before"
            proxy.impair(Impairment(blackhole=True))
            s.sendall(b"lost in the dark")
            _until(lambda: proxy.dropped_bytes == len(b"lost in the dark"))  # read by the proxy, thrown away
            assert proxy.cut() == 2  # the agent's side and the server's side
            assert s.recv(100) == b""  # closed: the echo of the swallowed bytes never came
    finally:
        proxy.stop()
    assert proxy.dropped_bytes == len(b"lost in the dark") and proxy.cuts == 2


def test_an_impairment_refuses_a_delay_out_of_range():
    with pytest.raises(ValueError, match="delay_max"):
        Impairment(delay_max=-1)


def test_the_exceptions_of_a_run_are_found_in_its_logs_and_told_apart_by_where_they_were_raised(tmp_path):
    import vmenergy

    ours = f"{vmenergy.__file__.rsplit('/', 1)[0]}/agents/base.py"
    (tmp_path / "prosumers-0.log").write_text(
        "12:00 INFO started\n"
        "Traceback (most recent call last):\n"
        f'  File "{ours}", line 10, in run\n'
        "    step()\n"
        "ValueError: from our code\n"
        "12:01 ERROR Task exception was never retrieved\n"
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/slixmpp/xmlstream.py", line 5, in data_received\n'
        "    x()\n"
        "KeyError: 'x'\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/slixmpp/xmlstream.py", line 9, in data_received\n'
        "    y()\n"
        "RuntimeError: the one that escaped\n")
    (tmp_path / "market.log").write_text("12:00 INFO nothing wrong\n")
    found = logged_exceptions(tmp_path)
    assert [(e.log, e.exception, e.ours) for e in found] == [
        ("prosumers-0.log", "ValueError: from our code", True),
        ("prosumers-0.log", "RuntimeError: the one that escaped", False)]
    assert found[1].where.endswith("xmlstream.py:9")
