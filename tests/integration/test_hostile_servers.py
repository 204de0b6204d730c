"""Findings 3 and 5 of the hostile-input probe (issue 16), on the servers VME starts: the private
ejabberd's loopback HTTP API changed any account's password for anyone on the machine, without
authentication (its port is in server.json)."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import connect_plain_client, disconnect_all
from vmenergy.runtime.servers import register_accounts

pytestmark = pytest.mark.integration


def api_call(info, command: str, body: dict, auth: str = "") -> int:
    req = urllib.request.Request(f"http://{info.host}:{info.extra['api_port']}/api/{command}",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_the_ejabberd_account_api_refuses_callers_without_the_api_password(fresh_xmpp_server):
    info = fresh_xmpp_server("ejabberd")
    register_accounts(info, [(f"victim{i}", f"victim-pw-{i}") for i in range(3)])  # through the API
    for auth in ("", "victim0@localhost:victim-pw-0", f"vme-api-admin@{info.domain}:guess"):
        status = api_call(info, "change_password", {"user": "victim1", "host": info.domain, "newpass": "owned"},
                          auth)
        assert status in (401, 403), (auth, status)
        assert api_call(info, "register", {"user": "mallory", "host": info.domain, "password": "x"}, auth) in (401, 403)
    victim = await connect_plain_client(info, "victim1", "victim-pw-1", register=False)
    await disconnect_all([victim])
    assert stat.S_IMODE(os.stat(Path(info.run_dir) / "api-admin.secret").st_mode) == 0o600
