"""Start-up savings for many XMPP clients in one process, with verification left on.

Starting a SPADE agent costs ~75 ms of CPU, mostly in two places inside slixmpp (measured, see
STACK-NOTES.md and bench/bench_xmpp.py):

1. SCRAM's key derivation (``SCRAM.Hi``) is a pure-Python PBKDF2 loop over thousands of HMACs.
   :func:`install_fast_scram` makes it call ``hashlib.pbkdf2_hmac``, which computes the very same
   bytes in C, about 50 times faster. Authentication is unchanged on the wire.
2. Every client builds its own ``ssl.SSLContext`` and loads the system CA store into it (~42 ms,
   ~0.8 MB each). :func:`client_ssl_context` returns ONE context per CA file per process with
   certificate and host-name verification on; :func:`apply_to_client` gives it to a client that
   exists, and :func:`install_shared_tls` makes new slixmpp clients (including the ones SPADE
   builds inside ``Agent.start``) use it from their constructor, which is where the cost is.

One saving is in what a client keeps after sending: slixmpp's send loop held each client's last
stanza sent until the next; :func:`install_lean_send_loop` lets it go.

One saving is on every message, not at start-up: slixmpp escapes each character of what it
sends through a Python generator; :func:`install_fast_escape` gives it the same escaping by
``str.replace`` (the same bytes on the wire).

A shared context must never be weakened by one client for all others, so the context returned
here refuses to turn verification off (SPADE's ``verify_security=False`` does exactly that to
its client's context): agents using it must keep ``verify_security=True``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

# ---------------------------------------------------------------------------------------------
# SCRAM


def _scram_class() -> type:
    from slixmpp.util.sasl.mechanisms import SCRAM

    return SCRAM


def original_scram_hi() -> Callable[..., bytes]:
    """slixmpp's own ``SCRAM.Hi`` (also after :func:`install_fast_scram`), for comparisons."""
    hi = _scram_class().Hi
    return getattr(hi, "__vme_original__", hi)


def _fast_hi(self: Any, text: Any, salt: bytes, iterations: int) -> bytes:
    """``SCRAM.Hi`` (RFC 5802: PBKDF2 with dkLen = hash length) computed by OpenSSL."""
    if iterations < 1:
        # slixmpp's loop treats 0 like 1 iteration; pbkdf2_hmac refuses it. Keep the behaviour.
        return original_scram_hi()(self, text, salt, iterations)
    from slixmpp.util import bytes as to_bytes

    return hashlib.pbkdf2_hmac(self.hash().name, to_bytes(text), salt, iterations)


_PATCH_LOCK = threading.Lock()


def _install(owner: Any, name: str, replacement: Callable[..., Any]) -> bool:
    """``owner.name = replacement``, remembering what it replaced; False if already replaced."""
    with _PATCH_LOCK:
        current = getattr(owner, name)
        if getattr(current, "__vme_original__", None) is not None:
            return False
        replacement.__vme_original__ = current  # type: ignore[attr-defined]
        setattr(owner, name, replacement)
        return True


def _uninstall(owner: Any, name: str) -> bool:
    """Put back what :func:`_install` replaced; False if nothing was replaced."""
    with _PATCH_LOCK:
        original = getattr(getattr(owner, name), "__vme_original__", None)
        if original is None:
            return False
        setattr(owner, name, original)
        return True


def install_fast_scram() -> bool:
    """Make slixmpp's SCRAM key derivation use ``hashlib.pbkdf2_hmac`` (same output, in C).

    Idempotent; returns True if it changed something. Affects every slixmpp client in the
    process, which is the point: SPADE creates its clients itself."""

    def Hi(self: Any, text: Any, salt: bytes, iterations: int) -> bytes:  # noqa: N802 (slixmpp's name)
        return _fast_hi(self, text, salt, iterations)

    Hi.__doc__ = _fast_hi.__doc__
    return _install(_scram_class(), "Hi", Hi)


def uninstall_fast_scram() -> bool:
    """Put slixmpp's own ``SCRAM.Hi`` back (for tests and comparisons)."""
    return _uninstall(_scram_class(), "Hi")


def fast_scram_installed() -> bool:
    return getattr(_scram_class().Hi, "__vme_original__", None) is not None


# ---------------------------------------------------------------------------------------------
# Shared TLS context


class SharedClientContext(ssl.SSLContext):
    """A client TLS context shared by many connections, so it cannot be weakened.

    Once sealed, turning off certificate or host-name checks, adding trust anchors other than
    its own CA file or loading a client certificate raise ``ValueError``: each of those would
    silently change every other client of the process."""

    def _seal(self, ca_file: Optional[str]) -> None:
        self.__dict__["_vme_ca_file"] = ca_file
        self.__dict__["_vme_sealed"] = True

    def _sealed(self) -> bool:
        return bool(self.__dict__.get("_vme_sealed"))

    @property
    def verify_mode(self) -> ssl.VerifyMode:  # type: ignore[override]
        return ssl.VerifyMode(super().verify_mode)

    @verify_mode.setter
    def verify_mode(self, value: ssl.VerifyMode) -> None:
        if self._sealed() and value != ssl.CERT_REQUIRED:
            raise ValueError(
                "this TLS context is shared by every XMPP client in the process and keeps certificate "
                "verification on; do not turn it off (SPADE: use verify_security=True)"
            )
        ssl.SSLContext.verify_mode.__set__(self, value)  # type: ignore[attr-defined]

    @property
    def check_hostname(self) -> bool:  # type: ignore[override]
        return bool(ssl.SSLContext.check_hostname.__get__(self))  # type: ignore[attr-defined]

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        if self._sealed() and not value:
            raise ValueError(
                "this TLS context is shared by every XMPP client in the process and keeps host-name "
                "checking on; do not turn it off (SPADE: use verify_security=True)"
            )
        ssl.SSLContext.check_hostname.__set__(self, value)  # type: ignore[attr-defined]

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None) -> None:
        if self._sealed():
            own = self.__dict__.get("_vme_ca_file")
            if cafile is not None and capath is None and cadata is None and own and _same_file(cafile, own):
                return  # already trusted (slixmpp reloads client.ca_certs on every connection)
            raise ValueError("cannot add trust anchors to a shared TLS context; use client_ssl_context(ca_file)")
        super().load_verify_locations(cafile, capath, cadata)

    def load_cert_chain(self, *args: Any, **kwargs: Any) -> None:
        if self._sealed():
            raise ValueError("a client certificate needs a TLS context of its own, not the shared one")
        super().load_cert_chain(*args, **kwargs)


def _same_file(a: Any, b: str) -> bool:
    try:
        return os.path.realpath(os.fspath(a)) == os.path.realpath(b)
    except TypeError:
        return False


_CONTEXTS: dict[Optional[str], SharedClientContext] = {}
_CTX_LOCK = threading.Lock()


def client_ssl_context(ca_file: Optional[str] = None) -> SharedClientContext:
    """The process-wide client TLS context for ``ca_file`` (created on first use).

    With ``ca_file`` (e.g. ``ServerInfo.ca_file``, the private server's self-signed
    certificate) only that certificate is trusted; without, the system CA store is. Either
    way certificates are verified and the host name (the XMPP domain) must match."""
    key = os.path.realpath(ca_file) if ca_file else None
    ctx = _CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    with _CTX_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = SharedClientContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if key is None:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                try:
                    ctx.load_verify_locations(cafile=key)
                except (OSError, ssl.SSLError) as exc:
                    raise ValueError(f"cannot load CA file {ca_file}: {exc}") from None
            ctx._seal(key)
            _CONTEXTS[key] = ctx
    return ctx


def apply_to_client(client: Any, ca_file: Optional[str] = None) -> ssl.SSLContext:
    """Give an existing slixmpp client (``ClientXMPP``, SPADE's ``XMPPClient``) the shared
    context: it frees the client's own context and CA store (memory), but the CPU spent building
    that context in the constructor is already gone; see :func:`install_shared_tls` for that.

    slixmpp uses ``client.ssl_context`` for STARTTLS and direct TLS (``get_ssl_context``), and
    would load ``client.ca_certs`` into it on every connection, so that is cleared (the CA file
    is already in the context). Note: a SPADE client made with ``verify_security=False`` gets
    verification back on from here."""
    ctx = client_ssl_context(ca_file)
    client.ssl_context = ctx
    client.ca_certs = None
    return ctx


_TLS_LOCK = threading.Lock()


def install_shared_tls(ca_file: Optional[str] = None) -> bool:
    """Make every slixmpp stream built from now on in this process (without an explicit
    ``ssl_context``) start with the shared context for ``ca_file``, instead of building and
    filling its own. This is how SPADE agents get the saving, since ``Agent.start`` constructs
    its client itself. Idempotent for the same CA file; returns True if it changed something.
    Agents must keep ``verify_security=True`` (the shared context refuses to be weakened)."""
    from slixmpp.xmlstream.xmlstream import XMLStream

    key = os.path.realpath(ca_file) if ca_file else None
    client_ssl_context(ca_file)  # fail now on a bad CA file, not in some agent's constructor
    with _TLS_LOCK:
        current = getattr(XMLStream.__init__, "__vme_ca_file__", "unset")
        if current == key:
            return False
        original = getattr(XMLStream.__init__, "__vme_original__", XMLStream.__init__)

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            if len(args) < 3 and kwargs.get("ssl_context") is None:
                kwargs["ssl_context"] = client_ssl_context(key)
            original(self, *args, **kwargs)

        __init__.__vme_original__ = original  # type: ignore[attr-defined]
        __init__.__vme_ca_file__ = key  # type: ignore[attr-defined]
        XMLStream.__init__ = __init__  # type: ignore[method-assign]
        return True


def uninstall_shared_tls() -> bool:
    """Undo :func:`install_shared_tls`."""
    from slixmpp.xmlstream.xmlstream import XMLStream

    with _TLS_LOCK:
        original = getattr(XMLStream.__init__, "__vme_original__", None)
        if original is None:
            return False
        XMLStream.__init__ = original  # type: ignore[method-assign]
        return True


# ---------------------------------------------------------------------------------------------
# XML escaping on the send path


def _tostring_module() -> Any:
    import importlib

    # the package re-exports the function under the module's name: import the module itself
    return importlib.import_module("slixmpp.xmlstream.tostring")


def fast_escape(text: str, use_cdata: bool = False) -> str:
    """slixmpp's ``escape`` (the same five entities, the same CDATA rule), by ``str.replace``.

    slixmpp joins a generator over every character of every attribute and text it sends, which
    was 5-10 % of an agent's CPU per message (bench/RESULTS.md, the agent path)."""
    if use_cdata:  # slixmpp's rule: text with a special character goes in CDATA sections
        if any(c in text for c in "&<>'\""):
            return "<![CDATA[]]]><![CDATA[]>]]>".join(f"<![CDATA[{part}]]>" for part in text.split("]]>"))
        return text
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "'" in text:
        text = text.replace("'", "&apos;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    return text


def install_fast_escape() -> bool:
    """Make slixmpp's serialiser use :func:`fast_escape` (same output). Idempotent; returns True
    if it changed something; affects every client of the process, like the SCRAM saving."""

    def escape(text: str, use_cdata: bool = False) -> str:
        return fast_escape(text, use_cdata)

    escape.__doc__ = fast_escape.__doc__
    return _install(_tostring_module(), "escape", escape)


def uninstall_fast_escape() -> bool:
    """Put slixmpp's own ``escape`` back (for tests and comparisons)."""
    return _uninstall(_tostring_module(), "escape")


# ---------------------------------------------------------------------------------------------
# slixmpp's send loop, without the last stanza sent

#: The slixmpp releases whose ``XMLStream.run_filters`` :func:`_send_one` reproduces (it reads
#: the stream's private filter lists); with another release the loop is left as it is.
SEND_LOOP_RELEASES = frozenset({"1.12.0"})

_send_log = logging.getLogger("slixmpp.xmlstream.xmlstream")  # slixmpp's own messages, as before


async def _send_one(stream: Any, data: Any, use_filters: bool) -> bool:
    """One item of a stream's send queue, handled as slixmpp 1.12's ``XMLStream.run_filters``
    handles it (the out filters, a slow filter's hand-over, the sync filters, the write); False
    when the loop must stop (it was cancelled in a filter). Its locals (the stanza, its XML
    tree, the text written) die when it returns."""
    from slixmpp.xmlstream.stanzabase import StanzaBase
    from slixmpp.xmlstream.tostring import tostring
    from slixmpp.xmlstream.xmlstream import ContinueQueue

    filters = stream._XMLStream__filters
    try:
        if isinstance(data, StanzaBase):
            if use_filters:
                already_run_filters = set()
                for out_filter in filters["out"]:
                    already_run_filters.add(out_filter)
                    if asyncio.iscoroutinefunction(out_filter):
                        task = asyncio.create_task(out_filter(data))
                        _, pending = await asyncio.wait({task}, timeout=1)
                        if pending:
                            stream._XMLStream__slow_tasks.append(task)
                            asyncio.ensure_future(stream._continue_slow_send(task, already_run_filters), loop=stream.loop)
                            raise ContinueQueue("Slow coroutine, rescheduling filters")
                        data = task.result()
                    elif isinstance(data, StanzaBase):
                        data = out_filter(data)
                    if data is None:
                        raise ContinueQueue("Empty stanza")
        if isinstance(data, StanzaBase):
            if use_filters:
                for sync_filter in filters["out_sync"]:
                    data = sync_filter(data)
                    if data is None:
                        raise ContinueQueue("Empty stanza")
            if isinstance(data, StanzaBase):
                str_data = tostring(data.xml, xmlns=stream.default_ns, stream=stream, top_level=True)
            else:
                str_data = data
            stream.send_raw(str_data)
        elif isinstance(data, (str, bytes)):
            stream.send_raw(data)
    except ContinueQueue as exc:
        _send_log.debug("Stanza in send queue not sent: %s", exc)
    except asyncio.CancelledError:
        _send_log.debug("Send coroutine received cancel(), stopping")
        return False
    except Exception:
        _send_log.error("Exception raised in send queue:", exc_info=True)
    return True


async def _lean_run_filters(self: Any) -> None:
    """slixmpp's send loop (``XMLStream.run_filters``) that keeps nothing of what it sent.

    slixmpp's own loop awaits the next item of its queue with the last one still bound to its
    locals: every client held its last stanza sent, XML tree and text, until it sent another.
    For a prosumer that was mostly its last flex-offer message (~100 elements), hours after it
    went out: 37-100 KiB a prosumer, ~250,000 of a swarm process's 280,000 XML elements
    (bench/RESULTS.md, "Prosumer memory, round 5"). Here each item is handled in a coroutine of
    its own (:func:`_send_one`), whose locals go when it returns."""
    while True:
        if not await _send_one(self, *(await self.waiting_queue.get())):
            return
        self.waiting_queue.task_done()


def install_lean_send_loop() -> bool:
    """Make every slixmpp stream connected from now on in this process send through
    :func:`_lean_run_filters` (the same filters, order and bytes). Idempotent; returns True if
    it changed something, False too when the installed slixmpp is not one of
    :data:`SEND_LOOP_RELEASES` (its own loop then stays)."""
    from slixmpp.version import __version__ as release
    from slixmpp.xmlstream.xmlstream import XMLStream

    if release not in SEND_LOOP_RELEASES:
        return False

    async def run_filters(self: Any) -> None:
        await _lean_run_filters(self)

    run_filters.__doc__ = _lean_run_filters.__doc__
    return _install(XMLStream, "run_filters", run_filters)


def uninstall_lean_send_loop() -> bool:
    """slixmpp's own send loop again (for tests and comparisons)."""
    from slixmpp.xmlstream.xmlstream import XMLStream

    return _uninstall(XMLStream, "run_filters")


# ---------------------------------------------------------------------------------------------
# SPADE's web interface, built when used


class LazyWebApp:
    """What a SPADE agent holds as ``agent.web``: SPADE's :class:`spade.web.WebApp`, built the
    first time anything of it is used or set (the console of agents/web serves its app). SPADE builds one per agent in ``Agent.__init__`` (an
    aiohttp application with its jinja2 environment: ~8 KiB, kept for the agent's life and tied
    to it in a reference cycle); VME agents serve their console with agents/web instead and
    never start it, so in a process of thousands of prosumers they were ~8 KiB each of nothing
    (bench/RESULTS.md, "Scale ladder, round 4")."""

    __slots__ = ("_agent", "_app")

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self._app: Any = None

    def is_started(self) -> bool:  # what SPADE's Agent.stop asks of every agent
        return self._app is not None and self._app.is_started()

    def built(self) -> bool:
        return self._app is not None

    def _real(self) -> Any:
        if self._app is None:
            from spade.web import WebApp

            self._app = WebApp(agent=self._agent)
        return self._app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LazyWebApp.__slots__:
            object.__setattr__(self, name, value)
        else:  # the console (agents/web) sets the runner it started, which SPADE's stop cleans up
            setattr(self._real(), name, value)


def install_lazy_web() -> bool:
    """Make SPADE agents built from now on hold a :class:`LazyWebApp`. Idempotent; returns True
    if it changed something; affects every SPADE agent of the process (they behave the same)."""
    import spade.agent

    def web_app(agent: Any) -> LazyWebApp:
        return LazyWebApp(agent)

    return _install(spade.agent, "WebApp", web_app)


def uninstall_lazy_web() -> bool:
    """SPADE's own web app per agent again (for tests and comparisons)."""
    import spade.agent

    return _uninstall(spade.agent, "WebApp")


# ---------------------------------------------------------------------------------------------
# The garbage collector


def freeze_heap() -> int:
    """Move every object the cyclic garbage collector tracks now into its permanent generation
    (``gc.freeze``): full collections stop scanning them again and again; returns how many.

    An agent process holds a million or more long-lived objects once SPADE, slixmpp, numpy and
    the models are imported; each full collection walked all of them, 0.3-0.6 s a time, which
    was a third or more of the agents' CPU per message in a pipelined run (bench/RESULTS.md).
    What is frozen is never freed, so call it when the process's fixed part is built (after the
    imports, and again after the agents have started), not in a loop."""
    gc.freeze()
    return gc.get_freeze_count()


def tune_process(ca_file: Optional[str] = None) -> None:
    """The savings at once, for a process about to start many agents."""
    from vmenergy.store.page_cache import no_bulk_page_cache

    no_bulk_page_cache()  # before any agent opens its store (vmenergy/store/page_cache.py)
    install_fast_scram()
    install_shared_tls(ca_file)
    install_fast_escape()
    install_lazy_web()
    install_lean_send_loop()
    freeze_heap()


# ---------------------------------------------------------------------------------------------
# Where to connect


@dataclass(frozen=True)
class ConnectAddress:
    """Where a client of ``domain`` should open its TCP connection.

    ``spade_ok`` says whether a SPADE ``Agent`` gets there by itself: ``Agent`` always connects
    to ``(jid.host, agent.xmpp_port)``, i.e. it resolves the JID's domain and ignores any other
    host. That works for domain "localhost" (resolves to 127.0.0.1), and for a real deployment
    whose domain resolves to the server. Otherwise plain slixmpp clients can call
    ``client.connect(host, port)``; SPADE agents need the domain in /etc/hosts or DNS.
    TLS always checks the certificate against the domain, never against ``host``."""

    host: str
    port: int
    spade_ok: bool
    note: str


def connect_address(domain: str, host: str = "127.0.0.1", port: int = 5222) -> ConnectAddress:
    """The address to connect to for ``domain`` served at ``host:port``, and whether SPADE's
    ``Agent`` (which connects to the JID's domain) reaches the same place."""
    try:
        resolved = sorted({ai[4][0] for ai in socket.getaddrinfo(domain, port, type=socket.SOCK_STREAM)})
    except OSError:
        resolved = []
    try:
        wanted = {ai[4][0] for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        wanted = {host}
    ok = bool(resolved) and bool(set(resolved) & wanted)
    if ok:
        note = f"{domain} resolves to {', '.join(resolved)}: SPADE agents reach {host}:{port} with Agent(..., port={port})"
    else:
        note = (
            f"{domain} resolves to {', '.join(resolved) or 'nothing'}, not {host}: plain clients must call "
            f"connect({host!r}, {port}); SPADE agents need {domain} mapped to {host} (/etc/hosts or DNS)"
        )
    return ConnectAddress(host, port, ok, note)
