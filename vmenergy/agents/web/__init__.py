"""An agent's console in the browser and its REST interface (docs/web.md), on SPADE's web server.

:class:`WebConsole` (``server.py``) mounts the routes and decides access; ``api.py`` holds the
REST resources, ``pages.py`` the console's pages, ``views.py`` what both read from the ledger,
``channel.py`` the mailboxes of HTTP peers, ``tokens.py`` the per-user tokens, ``openapi.py`` the
OpenAPI document, ``config.py`` the ``[web]`` table.
"""

from .config import WebConfig
from .tokens import Tokens, issue_token

__all__ = ["WebConfig", "Tokens", "issue_token"]
