"""Finding 6 of the hostile-input probe (issue 16), first part: after a server crash its port
was reported in use for about a minute (TIME_WAIT), so it could not be restarted on the same
port. A port is in use when something listens on it, not while old connections wind down."""

from __future__ import annotations

import socket

from vmenergy.runtime.servers.process import port_in_use


def test_a_port_whose_connections_linger_in_time_wait_is_free_but_a_listening_port_is_not():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    assert port_in_use(port)
    conn.close()  # the server side closes first (as a killed server does): its end stays in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    assert not port_in_use(port)
    again = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind(("127.0.0.1", port))
    again.listen()
    try:
        assert port_in_use(port)
    finally:
        again.close()
