"""asyncio holds a 256 KiB read buffer for every TLS connection for the connection's life; a
process of many agents bounds it (runtime/xmpp_tuning.py ``install_small_tls_reads``;
bench/RESULTS.md: 625 MiB of them in a swarm process of 2,500 prosumers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from vmenergy.runtime import xmpp_tuning
from vmenergy.runtime.control import client_context, server_context
from vmenergy.runtime.servers.certs import make_certificate
from vmenergy.runtime.xmpp_tuning import TLS_READ_BYTES, install_small_tls_reads, uninstall_small_tls_reads

BIG = 300 * 1024  # larger than the bounded buffer and than a TLS record, like a bill of 1,000 offers


@pytest.fixture
def small_reads():
    was = uninstall_small_tls_reads()  # a test before may have tuned this process
    assert install_small_tls_reads() is True
    yield
    uninstall_small_tls_reads()
    if was:
        install_small_tls_reads()


@pytest.fixture
def certificate(tmp_path):
    cert, key = make_certificate(tmp_path, "localhost")
    return str(cert), str(key)


def _read_buffer(transport) -> int:
    return len(transport._ssl_protocol._ssl_buffer)


async def _serve(certificate, payload: bytes, *, starttls: bool):
    """A server that sends ``payload`` over TLS (direct, or upgraded in the stream as XMPP's
    STARTTLS does through ``loop.start_tls``), and a client that reads it whole."""
    cert, key = certificate
    done = asyncio.Event()

    async def handle(reader, writer):
        if starttls:
            await reader.readexactly(8)  # "starttls"
            writer.write(b"proceed\n")
            await writer.drain()
            await writer.start_tls(server_context(cert, key))
        writer.write(payload)
        await writer.drain()
        await done.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if starttls else server_context(cert, key))
    port = server.sockets[0].getsockname()[1]
    try:
        if starttls:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"starttls")
            assert await reader.readline() == b"proceed\n"
            await writer.start_tls(client_context(cert), server_hostname="localhost")
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(cert),
                                                          server_hostname="localhost")
        got = await reader.readexactly(len(payload))
        size = _read_buffer(writer.transport)
        done.set()
        writer.close()
        return got, size
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("starttls", [False, True])
async def test_a_tls_connection_holds_the_bounded_buffer_and_still_reads_what_is_larger(small_reads, certificate,
                                                                                       starttls):
    payload = os.urandom(BIG)
    got, size = await _serve(certificate, payload, starttls=starttls)
    assert size == TLS_READ_BYTES < 256 * 1024
    assert got == payload


async def test_without_the_install_asyncio_holds_its_own_256_kib(certificate):
    was = uninstall_small_tls_reads()
    try:
        got, size = await _serve(certificate, b"x" * 100, starttls=False)
        assert size == 256 * 1024 and got == b"x" * 100
    finally:
        if was:
            install_small_tls_reads()


def test_the_install_is_idempotent_and_undone_by_the_uninstall():
    was = uninstall_small_tls_reads()
    try:
        assert install_small_tls_reads() is True and install_small_tls_reads() is False
        assert uninstall_small_tls_reads() is True and uninstall_small_tls_reads() is False
        assert xmpp_tuning._ssl_protocol().max_size == 256 * 1024
    finally:
        if was:
            install_small_tls_reads()


@pytest.mark.parametrize("size", [0, 1024, 16 * 1024 - 1, "32768", True, 32768.0])
def test_a_size_that_cannot_hold_a_tls_record_is_refused_naming_it(size):
    with pytest.raises(ValueError, match="size: "):
        install_small_tls_reads(size)


def test_a_process_tuned_for_many_agents_bounds_the_read_buffer():
    # in a process of its own: tune_process changes SQLite and the collector for the whole process
    out = subprocess.run([sys.executable, "-c", "from vmenergy.runtime import xmpp_tuning as t; t.tune_process(); "
                          "print(t._ssl_protocol().max_size)"], capture_output=True, text=True, check=True)
    assert int(out.stdout) == TLS_READ_BYTES
