"""The Grafana cockpit's panels and their PromQL, with Grafana's variables filled in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

COCKPIT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "chaos-cockpit.json"
#: What Grafana would put in for the demo: every environment, and a rate range of four 1 s
#: scrapes (Grafana's $__rate_interval is at least four scrape intervals).
VARIABLES = {"environment": ".*", "__rate_interval": "4s", "__interval": "1s",
             "__range": "5m"}


def dashboard() -> dict[str, Any]:
    """The cockpit as JSON."""
    data: dict[str, Any] = json.loads(COCKPIT.read_text(encoding="utf-8"))
    return data


def fill(expr: str) -> str:
    """``expr`` with ``$name``, ``${name}`` and ``[[name]]`` variables replaced."""
    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def queries() -> list[tuple[str, str]]:
    """(panel title, filled PromQL) of every target of every panel."""
    return [(panel["title"], fill(target["expr"])) for panel in dashboard()["panels"]
            for target in panel.get("targets", [])]
