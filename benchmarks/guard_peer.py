"""Chaos Toolkit as the guard benchmark's peer: its own venv, and one ``chaos run`` per trip.

The pinned versions in ``peers/chaostoolkit/requirements.txt`` go into a venv under the kit's
state folder, never into the project's: the peer is measured, not depended on. The venv is
reused while it was installed from the same requirements file (by its SHA-256).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PEER = Path(__file__).resolve().parent / "peers" / "chaostoolkit"
EXPERIMENT = PEER / "experiment.json"
REQUIREMENTS = PEER / "requirements.txt"
STAMP = ".requirements-sha256"
#: A trip whose safeguard never trips ends after the experiment's 60 s hold.
RUN_TIMEOUT = 90.0


def ensure_venv(folder: Path) -> Path:
    """The ``chaos`` command of a venv in ``folder`` holding exactly the pinned versions."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    chaos = folder / "bin" / "chaos"
    stamp = folder / STAMP
    if chaos.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return chaos
    print(f"installing Chaos Toolkit ({REQUIREMENTS.name}) into {folder}", flush=True)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    log = folder / "install.log"
    with log.open("wb") as out:
        installed = subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)], stdout=out, stderr=subprocess.STDOUT, check=False)
    if installed.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise SystemExit("installing Chaos Toolkit failed:\n  " + "\n  ".join(tail))
    # Written last: an interrupted install is redone next time.
    stamp.write_text(digest + "\n")
    return chaos


@dataclass(frozen=True)
class PeerSettings:
    """What the experiment reads from its ``CTK_*`` variables, but the per-trip ones."""

    chaos: Path
    prometheus_url: str
    admin_url: str
    token: str
    fault_ms: float


@dataclass(frozen=True)
class PeerRun:
    """One finished ``chaos run``: when it was started, with which delay, how it ended."""

    rule_id: str
    started_at: float
    onset_delay: float
    exit_code: int
    #: The run's status in its journal: "interrupted" when the safeguard stopped it.
    status: str
    folder: Path


async def run_peer(settings: PeerSettings, folder: Path, rule_id: str, run: str,
                   onset_delay: float) -> PeerRun:
    """Run the experiment once in ``folder``, PUTting ``rule_id`` after ``onset_delay`` s."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {
        "CTK_PROM_URL": settings.prometheus_url,
        "CTK_ADMIN_URL": settings.admin_url,
        "CTK_PROXY_AUTH": f"Bearer {settings.token}",
        "CTK_RULE_ID": rule_id,
        "CTK_RUN": run,
        "CTK_FAULT_MS": f"{settings.fault_ms:.0f}",
        "CTK_ONSET_DELAY": f"{onset_delay:.3f}",
    }
    # The journal, log and settings stay in the trip's folder; no version check over the
    # network (it would only add a variable delay before the run begins).
    argv = [str(settings.chaos), "--no-version-check", "--settings", str(folder / "settings.yaml"),
            "--log-file", str(folder / "chaostoolkit.log"), "run", "--journal-path",
            str(folder / "journal.json"), "--rollback-strategy=always", str(EXPERIMENT)]
    with (folder / "output.log").open("wb") as out:
        started_at = time.time()
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = await asyncio.wait_for(process.wait(), RUN_TIMEOUT)
        finally:
            if process.returncode is None:
                # Its own session, so this reaches the run and nothing else; SIGTERM lets it
                # play its rollback.
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    return PeerRun(rule_id=rule_id, started_at=started_at, onset_delay=onset_delay,
                   exit_code=code, status=journal_status(folder / "journal.json"), folder=folder)


def journal_status(path: Path) -> str:
    """The ``status`` a Chaos Toolkit journal ends with, or why there is none."""
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("status", "no status"))
    except (OSError, ValueError, AttributeError):
        return "no journal"
