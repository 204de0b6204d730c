"""Server configs generated from the commented templates in the project's ``xmpp-server/``.

The templates (``$name`` placeholders) say why each setting is there; the facts behind them are
in the project's STACK-NOTES. Kind modules call ``templates.render`` through the module so a
diagnostic (bench/bench_agents.py ``--prosody-nagle``) or a test can replace it.
"""

from __future__ import annotations

import string
from pathlib import Path

from .info import ServerError

TEMPLATES = Path(__file__).resolve().parents[3] / "xmpp-server"


def render(template: str, dest: Path, values: dict[str, object]) -> Path:
    """Fill a template from xmpp-server/ (``$name`` placeholders) and write it to ``dest``."""
    src = TEMPLATES / template
    try:
        text = src.read_text()
    except OSError as exc:
        raise ServerError(f"cannot read config template {src}: {exc.strerror or exc}") from None
    dest.write_text(string.Template(text).substitute({k: str(v) for k, v in values.items()}))
    return dest
