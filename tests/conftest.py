"""Shared fixtures. Conformance vectors come from the project's shared folder when it is next to
the checkout (the authoritative copy), else from the copy in tests/vectors (a clean CI clone)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
LOCAL_VECTORS = ROOT / "tests" / "vectors"
SHARED_VECTORS = ROOT.parent / "shared" / "vectors"
EXAMPLES = ROOT / "scenarios" / "examples"

settings.register_profile(
    "default", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config) -> None:
    """A run stopped with SIGTERM (``timeout``, ``kill``, a CI runner's cancel) ends like Ctrl-C:
    the fixtures' teardowns run, so the private Prosody and ejabberd servers they started stop
    too instead of outliving the run (the default action of SIGTERM skips every teardown)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def vectors_dir() -> Path:
    env = os.environ.get("VME_VECTORS")
    if env:
        return Path(env)
    return SHARED_VECTORS if SHARED_VECTORS.is_dir() else LOCAL_VECTORS


@pytest.fixture(scope="session")
def vectors() -> Path:
    return vectors_dir()
