"""A test run stopped with SIGTERM still tears its fixtures down (tests/conftest.py), so the
servers they start do not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

INNER = '''
import pathlib, time, pytest

OUT = pathlib.Path(r"{out}")

@pytest.fixture
def server():
    yield
    (OUT / "torn-down").write_text("yes")

def test_runs_until_stopped(server):
    (OUT / "running").write_text("yes")
    while True:
        time.sleep(0.05)
'''


def test_sigterm_runs_the_fixtures_teardown(tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    (case / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (case / "test_inner.py").write_text(INNER.format(out=tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(case)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while not (tmp_path / "running").exists():  # an event: the test body has started
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode())  # type: ignore[union-attr]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "torn-down").exists(), out
    assert "KeyboardInterrupt" in out or "stopped by signal" in out, out
