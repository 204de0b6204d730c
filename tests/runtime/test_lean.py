"""A swarm process imports SPADE without its embedded server (vmenergy.runtime.lean).

Each test runs in a fresh interpreter: which modules a process has loaded is the thing tested,
and this test process has long imported SPADE (and pyjabber with it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_swarm_process_imports_spade_and_the_agents_without_pyjabber_and_its_database() -> None:
    got = _run(
        "import json, sys\n"
        "from vmenergy.runtime.lean import skip_embedded_server\n"
        "installed = skip_embedded_server()\n"
        "import spade\n"
        "from vmenergy.runtime import swarm\n"
        "from vmenergy.agents import ProsumerAgent\n"
        "print(json.dumps({'installed': installed,\n"
        "  'loaded': sorted(m for m in ('sqlalchemy', 'alembic', 'pyjabber.db') if m in sys.modules)}))\n")
    assert got == {"installed": True, "loaded": []}


def test_asking_for_the_embedded_server_in_a_lean_process_fails_naming_the_reason() -> None:
    got = _run(
        "import json\n"
        "from vmenergy.runtime.lean import EmbeddedServerNotLoaded, skip_embedded_server\n"
        "skip_embedded_server()\n"
        "import spade.container\n"
        "try:\n"
        "    spade.container.Server(spade.container.Parameters(host='localhost'))\n"
        "    print(json.dumps({'raised': None}))\n"
        "except EmbeddedServerNotLoaded as exc:\n"
        "    print(json.dumps({'raised': str(exc)}))\n")
    assert got["raised"] is not None and "embedded XMPP server" in got["raised"]


def test_the_real_pyjabber_stays_when_spade_was_imported_first() -> None:
    got = _run(
        "import json, sys\n"
        "import spade\n"
        "from vmenergy.runtime.lean import skip_embedded_server\n"
        "print(json.dumps({'installed': skip_embedded_server(),\n"
        "                  'server': sys.modules['pyjabber.server'].Server.__module__}))\n")
    assert got == {"installed": False, "server": "pyjabber.server"}


@pytest.mark.parametrize("module", ["pyjabber.server", "pyjabber.server_parameters"])
def test_the_stand_ins_cover_every_pyjabber_module_spade_container_names(module: str) -> None:
    import inspect

    import spade.container

    assert f"from {module} import" in inspect.getsource(spade.container)
