"""The demo's Pushgateway, where game days push their run metrics (``chaos_run_*``).

Debian's ``prometheus-pushgateway`` persists to ``/var/lib/prometheus`` by default; the demo
turns persistence off, so a stack starts with no groups of earlier runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gameday.errors import DemoError

_DEBIAN_BINARY = Path("/usr/bin/prometheus-pushgateway")


def binary() -> str:
    """Path of the Pushgateway binary, or a ``DemoError`` saying how to install it."""
    found = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway") or (
        str(_DEBIAN_BINARY) if _DEBIAN_BINARY.exists() else None)
    if found is None:
        raise DemoError("the Pushgateway is not installed: run scripts/install-debs.sh "
                        "prometheus-pushgateway (or 'make install')")
    return found


def argv(port: int) -> list[str]:
    """Command line of a Pushgateway on 127.0.0.1:``port`` that keeps nothing on disk."""
    return [binary(), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
            "--log.level=warn"]
