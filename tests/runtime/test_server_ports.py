"""Private servers listen below the kernel's ephemeral port range.

A server on an ephemeral port that dies leaves the port to outgoing connections: agents that keep
reconnecting to it on loopback can be given that port as their own local port and connect to
themselves, and the server cannot be restarted where its clients look for it."""

from __future__ import annotations

import socket

from vmenergy.runtime.servers import free_port
from vmenergy.runtime.servers.process import ephemeral_ports, listen_port_range


def test_ports_for_servers_are_below_the_ephemeral_range_and_free():
    low, high = ephemeral_ports()
    assert 0 < low <= high
    bottom, top = listen_port_range()
    assert 1024 <= bottom < top < low
    seen = set()
    for _ in range(50):
        port = free_port()
        assert bottom <= port <= top, port
        seen.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # free: we can listen on it
            s.bind(("127.0.0.1", port))
            s.listen()
    assert len(seen) > 1  # drawn, not one fixed port that several runs would fight over


def test_a_port_taken_by_a_listener_is_not_given(monkeypatch):
    bottom, _ = listen_port_range()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        held.listen()
        monkeypatch.setattr("vmenergy.runtime.servers.process.listen_port_range", lambda: (taken, taken + 1))
        for _ in range(20):
            assert free_port() != taken
