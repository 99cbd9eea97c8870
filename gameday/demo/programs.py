"""Finding the Debian programs the demo runs (Prometheus, the Pushgateway, Redis, exporters)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gameday.errors import DemoError


def program(*names: str, package: str) -> str:
    """The first of ``names`` on PATH or in ``/usr/bin`` (where Debian puts them, also when
    PATH lacks it), or a ``DemoError`` naming the ``package`` to install."""
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                       else None)
        if found is not None:
            return found
    raise DemoError(f"{names[0]} is not installed: run scripts/install-debs.sh {package} "
                    "(or 'make install')")
