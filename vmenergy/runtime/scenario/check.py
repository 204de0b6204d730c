"""Checking a file: a scenario, or an agent node config (a file with an ``[agent]`` table).

:func:`check_file` is what ``vmenergy check`` runs: the checked model (None if the file has
errors) and every problem, each with its line. :func:`load_scenario` is what runners call: the
scenario, or a :class:`ScenarioError` holding every problem, raised before anything is started
or created.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Optional, Union

from .locate import KeyLines
from .model import Scenario, read_scenario
from .node import Node, read_node
from .problems import Problem, Problems, ScenarioError

__all__ = ["check_file", "check_text", "load_scenario"]

_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)|\(at end of document\)")


def check_file(path: Path | str) -> tuple[Optional[Union[Scenario, Node]], list[Problem]]:
    """Check a scenario or node config file: its model (None if it has errors) and every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem("(file)", f"cannot read: {getattr(exc, 'strerror', None) or exc}")]
    return check_text(text, base_dir=path.resolve().parent, source=str(path))


def check_text(text: str, *, base_dir: Path, source: str = "") -> tuple[Optional[Union[Scenario, Node]], list[Problem]]:
    """Check the text of a scenario or node config; relative paths are resolved against ``base_dir``."""
    try:
        data = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError; also an integer of 5,000 digits
        if not isinstance(exc, tomllib.TOMLDecodeError):
            return None, [Problem("(toml)", f"not valid TOML: {type(exc).__name__}: {str(exc)[:200]}", None)]
        m = _TOML_POSITION.search(str(exc))
        line = int(m.group(1)) if m and m.group(1) else (text.count("\n") + 1 if m else None)
        reason = _TOML_POSITION.sub("", str(exc)).strip()
        return None, [Problem("(toml)", f"not valid TOML: {reason}", line)]
    problems = Problems(KeyLines(text))
    if "agent" in data and "scenario" not in data:
        return read_node(data, problems), problems.items
    return read_scenario(data, problems, base_dir=Path(base_dir), source=source), problems.items


def load_scenario(path: Path | str) -> Scenario:
    """The checked scenario of a file; raises :class:`ScenarioError` with every problem."""
    scenario, problems = check_file(path)
    if not isinstance(scenario, Scenario):
        if not any(not p.warning for p in problems):  # a valid node config is not a scenario
            problems = [Problem("agent", "this is an agent node config (run it with vmenergy agent), "
                                         "not a scenario")] + problems
        raise ScenarioError.of(problems)
    return scenario
