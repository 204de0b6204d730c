"""The ``[web]`` table of a node: where the console and REST interface listen, and the tokens.

Off unless configured. Loopback by default: a box is not opened to its network by accident;
``host = "0.0.0.0"`` (or an address) is a deliberate choice, best behind a TLS proxy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from vmenergy.flexoffer import FlexOfferError
from vmenergy.validation import set_field

__all__ = ["WebConfig", "WEB_KEYS"]

WEB_KEYS = ("host", "port", "tokens")


@dataclass(frozen=True)
class WebConfig:
    """``host`` to listen on (an IP address), ``port`` (0: any free port, said in the log) and
    ``tokens``, the private token file (:mod:`.tokens`); without it nobody gets in."""

    host: str = "127.0.0.1"
    port: int = 0
    tokens: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise FlexOfferError("host", "an IP address such as \"127.0.0.1\"")
        try:
            set_field(self, "host", str(ipaddress.ip_address(self.host.strip())))
        except ValueError:
            raise FlexOfferError("host", f"{self.host!r} is not an IP address (\"127.0.0.1\" is loopback)") from None
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise FlexOfferError("port", f"a TCP port 0..65535 (0: any free one), got {self.port!r}")
        if self.tokens is not None and (not isinstance(self.tokens, str) or not self.tokens.strip()):
            raise FlexOfferError("tokens", "the path of the token file")

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> "WebConfig":
        for key in table:
            if key not in WEB_KEYS:
                raise FlexOfferError(str(key), f"unknown web setting (known: {', '.join(WEB_KEYS)})")
        return cls(**dict(table))
