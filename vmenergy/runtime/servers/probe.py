"""Does an XMPP server answer, and does its certificate verify? Asked of the private servers
while they start and of external servers before a run and by ``vmenergy server status``.

Both checks speak just enough of RFC 6120 (a client stream header, then STARTTLS) to be sure
the thing on the port is an XMPP server for the domain, without logging in.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Optional

_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"


def _stream_header(domain: str) -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    ).encode()


def _read_until(sock: socket.socket, markers: tuple[bytes, ...], deadline: float) -> bytes:
    """Bytes from ``sock`` until one of ``markers`` is seen, the peer closes or time is up."""
    data = b""
    while not any(m in data for m in markers) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def _stream_error(data: bytes) -> str:
    """The condition of a stream error (RFC 6120 4.9.3), e.g. ``host-unknown``: the server does
    not serve the domain asked for."""
    m = re.search(rb"<([a-z-]+)[^>]*xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams['\"]", data)
    return m.group(1).decode() if m else "(no condition given)"


def xmpp_probe(host: str, port: int, domain: str, timeout: float = 2.0) -> bool:
    """True when the server answers a client stream header with stream features for ``domain``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_stream_header(domain))
            data = _read_until(s, (b"features",), time.monotonic() + timeout)
            try:
                s.sendall(b"</stream:stream>")
            except OSError:
                pass
            return b"features" in data
    except OSError:
        return False


@dataclass(frozen=True)
class Reachability:
    """What a probe learnt of a server: ``answers`` (stream features for the domain) and
    ``tls_verified`` (STARTTLS done and the certificate verified for the domain with the CA
    file clients will use; None when the server did not get that far). ``detail`` says it in
    words, with the reason when something failed."""

    answers: bool
    tls_verified: Optional[bool]
    detail: str

    @property
    def usable(self) -> bool:
        """Whether agents can connect: an XMPP answer and a verified certificate."""
        return self.answers and bool(self.tls_verified)


def check_reachable(host: str, port: int, domain: str, ca_file: str = "", timeout: float = 5.0) -> Reachability:
    """Connect to ``host:port`` as a client of ``domain`` would, up to the TLS handshake.

    The handshake uses the same TLS context as VME's agents (``xmpp_tuning.client_ssl_context``:
    ``ca_file``, or the system trust store when ""), so "verified" here means agents will verify
    too."""
    from vmenergy.runtime.xmpp_tuning import client_ssl_context

    where = f"{host}:{port}"
    try:
        ctx = client_ssl_context(ca_file or None)
    except ValueError as exc:
        return Reachability(False, None, str(exc))
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_stream_header(domain))
            data = _read_until(s, (b"</stream:features>", b"stream:error"), deadline)
            if b"features" not in data:
                why = f"stream error {_stream_error(data)}" if b"stream:error" in data else "no XMPP stream features"
                return Reachability(False, None, f"{where} answered with {why} for domain {domain!r}")
            if _TLS_NS.encode() not in data:
                return Reachability(True, False, f"{where} answers XMPP for {domain} but offers no STARTTLS")
            s.sendall(f"<starttls xmlns='{_TLS_NS}'/>".encode())
            data = _read_until(s, (b"proceed", b"failure"), deadline)
            if b"proceed" not in data:
                return Reachability(True, False, f"{where} answers XMPP for {domain} but refused STARTTLS")
            s.settimeout(max(0.5, deadline - time.monotonic()))
            try:
                with ctx.wrap_socket(s, server_hostname=domain) as tls:
                    tls.sendall(_stream_header(domain))  # a polite restart, then leave
            except ssl.SSLCertVerificationError as exc:
                trust = f"CA file {ca_file}" if ca_file else "the system trust store"
                return Reachability(
                    True, False, f"{where} answers XMPP for {domain} but its certificate does not verify "
                    f"with {trust}: {exc.verify_message}",
                )
            except (ssl.SSLError, OSError) as exc:
                return Reachability(True, False, f"{where} answers XMPP for {domain} but TLS failed: {exc}")
    except OSError as exc:
        return Reachability(False, None, f"nothing reachable at {where}: {exc.strerror or exc}")
    trust = f"CA file {ca_file}" if ca_file else "the system trust store"
    return Reachability(True, True, f"{where} answers XMPP for {domain}; certificate verified with {trust}")
