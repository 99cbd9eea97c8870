"""The demo's Pushgateway, where game days push their run metrics (``chaos_run_*``).

Debian's ``prometheus-pushgateway`` persists to ``/var/lib/prometheus`` by default; the demo
turns persistence off, so a stack starts with no groups of earlier runs.
"""

from __future__ import annotations

from gameday.demo.programs import program


def binary() -> str:
    """Path of the Pushgateway binary, or a ``DemoError`` saying how to install it."""
    return program("prometheus-pushgateway", "pushgateway", package="prometheus-pushgateway")


def argv(port: int) -> list[str]:
    """Command line of a Pushgateway on 127.0.0.1:``port`` that keeps nothing on disk."""
    return [binary(), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
            "--log.level=warn"]
