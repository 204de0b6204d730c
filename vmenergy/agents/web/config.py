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

WEB_KEYS = ("host", "port", "tokens", "certificate", "key", "client_ca")


@dataclass(frozen=True)
class WebConfig:
    """``host`` to listen on (an IP address), ``port`` (0: any free port, said in the log) and
    ``tokens``, the private token file (:mod:`.tokens`). ``certificate`` and ``key`` (PEM files)
    serve HTTPS; with ``client_ca`` too, a client certificate signed by that CA stands for the
    bare JID it names (its e-mail subjectAltName, else its common name), as a token does. With
    neither tokens nor client certificates nobody gets in."""

    host: str = "127.0.0.1"
    port: int = 0
    tokens: Optional[str] = None
    certificate: Optional[str] = None
    key: Optional[str] = None
    client_ca: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise FlexOfferError("host", "an IP address such as \"127.0.0.1\"")
        try:
            set_field(self, "host", str(ipaddress.ip_address(self.host.strip())))
        except ValueError:
            raise FlexOfferError("host", f"{self.host!r} is not an IP address (\"127.0.0.1\" is loopback)") from None
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise FlexOfferError("port", f"a TCP port 0..65535 (0: any free one), got {self.port!r}")
        for name in ("tokens", "certificate", "key", "client_ca"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise FlexOfferError(name, "a file's path")
        if (self.certificate is None) != (self.key is None):
            missing = "key" if self.key is None else "certificate"
            raise FlexOfferError(missing, "HTTPS needs both certificate and key (PEM files)")
        if self.client_ca is not None and self.certificate is None:
            raise FlexOfferError("client_ca", "client certificates need HTTPS: give certificate and key too")

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> "WebConfig":
        for key in table:
            if key not in WEB_KEYS:
                raise FlexOfferError(str(key), f"unknown web setting (known: {', '.join(WEB_KEYS)})")
        return cls(**dict(table))
