"""Where the kit keeps its state: journals, locks, the demo stack, rendered reports."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """``$GAMEDAY_STATE``, else ``.gameday/`` in the working directory (a checkout)."""
    return Path(os.environ.get("GAMEDAY_STATE") or Path.cwd() / ".gameday")


def run_dir(run: str) -> Path:
    """The folder of one run: its journal and anything else it records."""
    return state_dir() / "runs" / run


def journal_path(run: str) -> Path:
    """The journal of one run."""
    return run_dir(run) / "journal.jsonl"


def lock_path(environment: str) -> Path:
    """The lock file that keeps one game day per environment."""
    return state_dir() / "locks" / f"{environment}.lock"


def reports_dir() -> Path:
    """Where postmortems are rendered: ``$GAMEDAY_REPORTS`` or ``reports/out``."""
    return Path(os.environ.get("GAMEDAY_REPORTS") or Path.cwd() / "reports" / "out")
