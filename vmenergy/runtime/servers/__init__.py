"""XMPP servers for VME: private ones on loopback (start, stop, inspect, register accounts) and
external ones that someone else runs (record, probe, take passwords from an accounts file).

VME agents are ordinary XMPP clients, so every run, test and demo needs a server. A private
server is one of three kinds, started in a run directory of its own, so runs never share state
and a crashed run leaves nothing behind but its directory:

- ``prosody`` (Debian ``prosody``): the default; starts in a fraction of a second.
- ``ejabberd`` (Debian ``ejabberd``): the server for large deployments and clusters.
- ``embedded``: SPADE's pyjabber in a child Python process, for machines with neither package;
  it has known defects, which :func:`start_server` logs and returns in ``ServerInfo.limitations``.

Every private kind listens on 127.0.0.1 only, with STARTTLS and a self-signed certificate made
with openssl (clients verify it by using the certificate as their CA file), and allows in-band
registration without throttling (SPADE agents register themselves with ``auto_register``).
``run_dir/server.json`` records what a client needs (:class:`ServerInfo`).

An ``external`` server (a standing Prosody or ejabberd, as a city-scale study uses) is never
started or stopped by VME: :func:`prepare_server` probes it, records it in the run directory and
gives each agent its password (generated for in-band registration, or from an accounts file).

Modules: ``info`` (the record and the error), ``process`` (spawn, wait, kill), ``probe``
(does it answer XMPP, does its certificate verify), ``certs``, ``templates`` (configs from
``xmpp-server/``), one module per private kind (``prosody``, ``ejabberd``, ``embedded``),
``lifecycle`` (start/stop/status of any kind), ``accounts``, ``external`` and ``provision``.
"""

from __future__ import annotations

from .accounts import check_user, new_password, preset_contacts, read_accounts_file, register_accounts
from .certs import make_certificate
from .embedded import LIMITATIONS as EMBEDDED_LIMITATIONS
from .external import external_server, record_external
from .info import (
    CERT_FILE, EXTERNAL, HOST, INFO_FILE, KEY_FILE, KINDS, LOG_FILE, ServerError, ServerInfo, ServerStatus,
    read_info,
)
from .lifecycle import available_kinds, check_kind, server_exit_code, server_status, start_server, stop_server
from .probe import Reachability, check_reachable, xmpp_probe
from .process import free_port, log_tail
from .provision import REGISTER, RunServer, ServerSpec, ServerTableError, prepare_server

__all__ = [
    "CERT_FILE", "EMBEDDED_LIMITATIONS", "EXTERNAL", "HOST", "INFO_FILE", "KEY_FILE", "KINDS", "LOG_FILE",
    "REGISTER", "Reachability", "RunServer", "ServerError", "ServerInfo", "ServerSpec", "ServerStatus",
    "ServerTableError", "available_kinds", "check_kind", "check_reachable", "check_user", "external_server",
    "free_port", "log_tail", "make_certificate", "new_password", "prepare_server", "preset_contacts", "read_accounts_file",
    "read_info", "record_external", "register_accounts", "server_exit_code", "server_status", "start_server", "stop_server",
    "xmpp_probe",
]
