"""Scenario files: parsed once into a checked, typed model; turned into a plan for a run.

A scenario is TOML (see docs/scenarios.md). :func:`check_file` finds every problem in one (or
in an agent node config) with its key path and line (what ``vmenergy check`` prints);
:func:`load_scenario` gives the :class:`Scenario` or raises :class:`ScenarioError` holding all of
them; :func:`make_plan` turns the scenario into the :class:`Plan` the swarm processes read.

Modules: :mod:`.locate` (line of a key in TOML text), :mod:`.problems` (what is wrong, where),
:mod:`.tables` (a dataclass as a table's schema), :mod:`.configs` (market and aggregator tables
checked by the agents' code), :mod:`.model` (the scenario's tables and the rules between them),
:mod:`.node` (agent node configs), :mod:`.check` (a file of either kind), :mod:`.plan` (the plan
of a run).
"""

from .check import check_file, check_text, load_scenario
from .model import Aggregator, Market, ProsumerGroup, Scenario, ScenarioTable, ServerTable
from .node import Node
from .plan import AgentSpec, Plan, make_plan, vary_offer
from .problems import Problem, ScenarioError

__all__ = [
    "Scenario", "ScenarioTable", "ServerTable", "Market", "Aggregator", "ProsumerGroup", "Node",
    "Problem", "ScenarioError", "check_file", "check_text", "load_scenario",
    "AgentSpec", "Plan", "make_plan", "vary_offer",
]
