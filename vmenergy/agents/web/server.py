"""The web side of one agent: console pages and REST interface on SPADE's own web application.

SPADE gives every agent an aiohttp application (``agent.web.app``, with aiohttp_jinja2 set up);
VME adds its routes to it and runs it itself instead of calling ``agent.web.start()``, which would
also mount SPADE's own pages: those answer anyone, and ``GET /spade/stop`` stops the agent.

Access is decided here, once, for every request (:func:`guard`): a token (``Authorization:
Bearer ...``, or the cookie the login page sets) names a bare JID, and the agent's ``[operators]``
say what it may do: viewers read, controllers also change (POST, PUT, DELETE). Without a known
token nothing is readable but the login page and the static files (the console's own script and
style and the vendored chart library, none of them data). A browser's state-changing request must
come from the console's own origin (the cookie is also ``SameSite=Strict``).
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import aiohttp_jinja2
import jinja2
from aiohttp import web

from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol.operators import Access, check_bare_jid
from vmenergy.runtime.private import PrivateFileError, read_private

from . import api, pages
from .config import WebConfig
from .http import ACCESS, COOKIE, USER, error_response
from .tokens import TokenFile, Tokens

__all__ = ["WebConsole"]

log = logging.getLogger("vmenergy.web")

HERE = Path(__file__).resolve().parent
#: How long stopping the agent waits for open requests (event streams never end by themselves).
SHUTDOWN_SECONDS = 2.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/login", "/favicon.ico"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token(request: web.Request) -> tuple[Optional[str], bool]:
    """(token, from the cookie)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


#: Pages load nothing from elsewhere and may not be framed (the console runs no third-party code).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")  # operators' data stays out of caches


def certificate_jid(request: web.Request) -> Optional[str]:
    """The bare JID a verified client certificate names: its e-mail subjectAltName, else its
    common name; None without a certificate (or one that names no JID)."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None  # none sent, or not verified (an unverified one is not even returned)
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "email"]
    names += [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    for name in names:
        try:
            return check_bare_jid(name, "certificate")
        except FlexOfferError:
            continue
    return None


def _allowed(request: web.Request, default: str) -> str:
    """The methods of the route that serves this path: aiohttp's 405 lists those of every route
    that matches (``/flexoffer/measurement`` also matches ``/flexoffer/{id}``)."""
    for resource in request.app.router.resources():
        match = getattr(resource, "_match", None)
        try:
            found = match(request.path) if match is not None else None
        except Exception:  # a resource kind without path matching (static files)
            found = None
        if found is not None:
            return ",".join(sorted({route.method for route in resource}))
    return default


def _wants_html(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


class WebConsole:
    """Routes, access and the listening socket of one agent's web side."""

    def __init__(self, agent: Any, config: WebConfig) -> None:
        self.agent = agent
        self.config = config
        self._tokens = TokenFile(config.tokens) if config.tokens is not None else None
        self.site: Optional[web.TCPSite] = None
        self.port: Optional[int] = None
        app: web.Application = agent.web.app
        app.middlewares.append(self.guard)
        app.on_response_prepare.append(_harden)
        agent.web.add_template_path(str(HERE / "templates"))
        env = aiohttp_jinja2.get_env(app)
        env.autoescape = jinja2.select_autoescape(default=True, default_for_string=True)
        env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True)
        app.router.add_static("/static/", str(HERE / "static"), name="static")
        api.add_routes(app, self)
        pages.add_routes(app, self)

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"{'https' if self.config.certificate else 'http'}://{host}:{self.port}"

    def tls(self) -> Optional[ssl.SSLContext]:
        """HTTPS when configured; with ``client_ca``, client certificates are asked for (and
        checked against it) but not required: a browser may log in with a token instead."""
        cfg = self.config
        if cfg.certificate is None or cfg.key is None:
            return None
        try:  # the key is only its owner's to read, as every secret of a node
            read_private(cfg.key, "web TLS key")
        except PrivateFileError as exc:
            raise FlexOfferError("key", str(exc)) from None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.certificate, cfg.key)
        if cfg.client_ca is not None:
            ctx.load_verify_locations(cfg.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def start(self) -> None:
        """Listen (on loopback unless configured otherwise)."""
        webapp = self.agent.web
        tls = self.tls()
        # an open page keeps its event stream open: stopping the agent waits at most this long
        runner = web.AppRunner(webapp.app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, ssl_context=tls)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        self.site = site
        # SPADE's stop() cleans up ``web.runner`` when it is set
        webapp.runner, webapp.server, webapp.hostname, webapp.port = runner, site, self.config.host, self.port
        self.agent.log.info("event=web-started url=%s tokens=%d", self.url, len(self.tokens.by_digest))

    def access(self, jid: Optional[str]) -> Access:
        return Access.NONE if jid is None else self.agent.operators.access(jid)

    @property
    def tokens(self) -> Tokens:
        """The token file as it is now (re-read when it changes; see :class:`TokenFile`)."""
        if self._tokens is None:
            return Tokens({})
        before = self._tokens.problem
        tokens = self._tokens.current()
        if self._tokens.problem is not None and self._tokens.problem != before:
            self.agent.log.error("event=web-tokens-unreadable file=%s reason=%r (the tokens read before stay)",
                                 self._tokens.path, self._tokens.problem)
        return tokens

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
                return await handler(request)
            token, from_cookie = _token(request)
            jid = self.tokens.who(token) if token is not None else certificate_jid(request)
            access = self.access(jid)
            if access is Access.NONE:
                if _wants_html(request):
                    raise web.HTTPSeeOther(f"/login?next={request.path}")
                why = "a token (Authorization: Bearer TOKEN) or a client certificate is required" \
                    if token is None and jid is None else "unknown token or certificate, or its holder is not " \
                                                          "an operator of this agent"
                resp = error_response(401, why, "Authorization")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="vmenergy"'
                return resp
            if request.method not in SAFE_METHODS:
                if access < Access.CONTROL:
                    return error_response(403, f"{jid} is a viewer; changes are for controllers", "Authorization")
                origin = request.headers.get("Origin")
                if from_cookie and origin is not None and origin != f"{request.scheme}://{request.host}":
                    return error_response(403, f"a change from another site ({origin}) is refused", "Origin")
            request[USER] = jid
            request[ACCESS] = access
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            if exc.status == 405:
                resp = error_response(405, f"{request.method} is not allowed here", "method")
                resp.headers["Allow"] = _allowed(request, exc.headers.get("Allow", ""))
                return resp
            return error_response(exc.status, exc.reason, None)
        except Exception:  # a handler's bug must not take the agent down, nor leak a trace to a client
            self.agent.log.exception("event=web-error path=%s", request.path)
            return error_response(500, "internal error (the agent's log says why)")
