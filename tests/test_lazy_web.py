"""SPADE's web interface per agent is built when used, not with every agent
(vmenergy/runtime/xmpp_tuning.py LazyWebApp; bench/RESULTS.md "Scale ladder, round 4")."""

from __future__ import annotations

import pytest
from spade.web import WebApp

from vmenergy.agents import ProsumerAgent
from vmenergy.runtime.xmpp_tuning import LazyWebApp, install_lazy_web, uninstall_lazy_web


@pytest.fixture
def lazy_web():
    installed = install_lazy_web()
    yield
    if installed:
        uninstall_lazy_web()


def test_an_agent_built_after_the_install_has_no_web_app_until_it_is_used(lazy_web, tmp_path):
    agent = ProsumerAgent("p@localhost", "pw", aggregator="agg@localhost", store_path=tmp_path / "p.sqlite")
    assert isinstance(agent.web, LazyWebApp) and not agent.web.built()
    assert agent.web.is_started() is False  # what SPADE's stop asks: answered without building it
    assert not agent.web.built()
    # used, it is SPADE's own, for this agent
    assert agent.web.agent is agent and agent.web.built()
    assert agent.web.menu_entries == {} and agent.web.is_started() is False
    agent.web.runner = "a runner"  # set as the console (agents/web) does once it serves the app
    assert agent.web._app.runner == "a runner" and agent.web.is_started() is True


def test_the_install_is_idempotent_and_undone_by_the_uninstall(tmp_path):
    was_installed = uninstall_lazy_web()  # a test before may have tuned this process
    try:
        assert install_lazy_web() is True
        assert install_lazy_web() is False
        assert uninstall_lazy_web() is True and uninstall_lazy_web() is False
        agent = ProsumerAgent("p@localhost", "pw", aggregator="agg@localhost", store_path=tmp_path / "p.sqlite")
        assert type(agent.web) is WebApp
    finally:
        if was_installed:
            install_lazy_web()
