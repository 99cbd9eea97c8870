"""The demo's Alertmanager (Debian's ``prometheus-alertmanager``): configuration and command
line.

It listens on loopback only, with clustering off (``--cluster.listen-address=`` empty: one
instance, no gossip port), its silences and notification log in the stack's folder. Every
alert goes to the demo's pager. Grouping is fast — a second to wait, two between updates —
because the demo scrapes and evaluates every second and a game day's steps last seconds: a
notification, or one a silence held back, shows within moments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gameday.demo.programs import program

#: The notifications the pager received, in the stack's folder (``gameday.demo.pager``).
PAGES_FILE = "pages.jsonl"


def binary() -> str:
    """Path of the Alertmanager binary, or a ``DemoError`` saying how to install it."""
    return program("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")


def config(pager_url: str) -> dict[str, Any]:
    """The configuration: one route, to the pager's webhook, resolved alerts included."""
    return {
        "route": {"receiver": "pager", "group_by": ["alertname", "environment"],
                  "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        "receivers": [{"name": "pager", "webhook_configs": [
            {"url": f"{pager_url}/notify", "send_resolved": True}]}],
    }


def write_config(path: Path, pager_url: str) -> None:
    """Write the configuration to ``path``."""
    text = yaml.safe_dump(config(pager_url), sort_keys=False)
    path.write_text("# Written by 'chaosctl demo up'; rewritten on every start.\n" + text,
                    encoding="utf-8")


def argv(config_file: Path, storage: Path, port: int) -> list[str]:
    """Command line of an Alertmanager on 127.0.0.1:``port`` alone (no cluster)."""
    return [binary(), f"--config.file={config_file}", f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            "--log.level=warn"]
