"""An agent's work after its client has handled one read (vmenergy/agents/after_read.py): the hook
runs once per read, after everything the read brought was handled, also when handling raised."""

from __future__ import annotations

import pytest

from vmenergy.agents.after_read import after_each_read


class _Client:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        if data == b"bad":
            raise ValueError("bad")
        self.seen.append(data)


def test_the_hook_runs_after_each_read_is_handled_once_installed_once():
    c, calls = _Client(), []
    after_each_read(c, lambda: calls.append(list(c.seen)))
    after_each_read(c, lambda: calls.append("twice"))  # once per client
    c.data_received(b"<message/><r/>")
    c.data_received(b"<a/>")
    assert calls == [[b"<message/><r/>"], [b"<message/><r/>", b"<a/>"]]


def test_a_read_whose_handling_raised_still_runs_the_hook():
    c, calls = _Client(), []
    after_each_read(c, lambda: calls.append("hook"))
    with pytest.raises(ValueError):
        c.data_received(b"bad")
    assert calls == ["hook"]


def test_before_runs_ahead_of_each_read_and_the_hook_after_it():
    c, calls = _Client(), []
    after_each_read(c, lambda: calls.append(("after", len(c.seen))), before=lambda: calls.append(("before", len(c.seen))))
    c.data_received(b"<message/>")
    assert calls == [("before", 0), ("after", 1)]
