"""What the web side's modules share: the request keys the access guard sets, the login cookie
and the one error shape of the REST interface."""

from __future__ import annotations

from typing import Any, Optional

from aiohttp import web

__all__ = ["error_response", "COOKIE", "USER", "ACCESS"]

#: The cookie the login page sets (the token itself; HttpOnly, SameSite=Strict).
COOKIE = "vme_token"
#: Request keys the guard sets for the handlers: the token holder's bare JID and its Access.
USER: "web.RequestKey[str]" = web.RequestKey("vme_user", str)
ACCESS: "web.RequestKey[Any]" = web.RequestKey("vme_access", object)


def error_response(code: int, reason: str, path: Optional[str] = None, **extra: Any) -> web.Response:
    """The one error shape of the REST interface: ``{"error": {"path": ..., "reason": ...}}``
    (``path`` names the field, parameter or header that is wrong, as the XMPP path does)."""
    body: dict[str, Any] = {"reason": reason}
    if path is not None:
        body["path"] = path
    body.update(extra)
    return web.json_response({"error": body}, status=code)
