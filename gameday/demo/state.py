"""The demo stack's state folder: ``state.json`` (PIDs and ports), the token, logs and data.

``state.json`` is rewritten after every process start, so a runner that crashes half-way
through ``up`` still leaves a record that ``down`` can stop by PID. Each process is recorded
with its kernel start time too: a PID reused by an unrelated process is never signalled.
Each process also writes its own PID file before it starts its program, which covers the
moment between a process starting and ``state.json`` naming it.

Layout::

    <state>/state.json        parts, PIDs, ports, settings (this module)
    <state>/token             proxy admin token, mode 0600
    <state>/environment.yaml  the demo's environment file
    <state>/prometheus.yml    Prometheus configuration; <state>/prometheus/ its TSDB
    <state>/prefect/          PREFECT_HOME (its database is in PostgreSQL)
    <state>/postgres/         the PostgreSQL cluster, owned by the postgres user (kept)
    <state>/postgres.password role gameday's password, mode 0600 (kept with the cluster)
    <state>/redis/            Redis's working folder (nothing is persisted)
    <state>/logs/<part>.log   each part's output
    <state>/pids/<part>.pid   each part's PID, written by the part itself
    <state>/traces/           spans of the services and proxies, a file per process (kept by
                              ``down`` as evidence; ``up`` trims it, see ``trim_traces``)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gameday.demo.parts import AUTH_TIMEOUT, PROXIES
from gameday.errors import DemoError
from gameday.paths import state_dir
from gameday.tracing.export import DEFAULT_FOLDER_MB
from gameday.tracing.read import PATTERN as TRACE_FILES

STATE_FILE = "state.json"
TOKEN_FILE = "token"
ENVIRONMENT_FILE = "environment.yaml"
PID_DIR = "pids"
TRACE_DIR = "traces"
#: Trace files older than this are removed by the next ``up``.
TRACE_MAX_AGE = 24 * 3600.0
#: Environment variable naming the state folder; ``--state`` wins over it.
#: Environment variable the demo's environment file reads the proxy admin token from.
TOKEN_VARIABLE = "GAMEDAY_DEMO_TOKEN"


def default_state_dir() -> Path:
    """``demo/`` in the kit's state folder (``$GAMEDAY_STATE``, else ``./.gameday``)."""
    return state_dir() / "demo"


class Part(BaseModel):
    """One running process of the stack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="part name, e.g. user-service, auth-proxy, prometheus")
    pid: int = Field(description="process ID; also its process group (own session)")
    start_ticks: int | None = Field(None, description="kernel start time, guards PID reuse")
    ports: dict[str, int] = Field(description="role → port, e.g. http, listen, admin")
    url: str = Field(description="where to reach it")
    log: str = Field(description="file with its output")


class DemoSettings(BaseModel):
    """How the stack's services are configured; ``chaosctl demo set`` changes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth_timeout: float = Field(AUTH_TIMEOUT, gt=0, description="user-service's per-attempt "
                                "timeout of its auth-service calls, seconds")


class StackState(BaseModel):
    """What ``chaosctl demo up`` started, as recorded in ``state.json``."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    state_dir: str = Field(description="absolute path of the state folder")
    created: float = Field(description="unix time the stack was started")
    prefect: bool = Field(description="whether a Prefect server is part of the stack")
    parts: list[Part] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what up wants the user to know")
    traces: str | None = Field(None, description="folder the services and proxies write their "
                                                 "spans to (their GAMEDAY_TRACE_DIR), if any")
    # A default, so a state.json written before there were settings still loads.
    settings: DemoSettings = Field(default_factory=DemoSettings)

    def part(self, name: str) -> Part:
        """The part called ``name``."""
        for part in self.parts:
            if part.name == name:
                return part
        raise DemoError(f"the demo stack in {self.state_dir} has no part {name!r}")

    def url(self, name: str) -> str:
        """Base URL of the part called ``name``."""
        return self.part(name).url

    @property
    def folder(self) -> Path:
        """The state folder."""
        return Path(self.state_dir)

    @property
    def prometheus_url(self) -> str:
        """Prometheus, e.g. ``http://127.0.0.1:41234``."""
        return self.url("prometheus")

    @property
    def user_service_url(self) -> str:
        """The user-service (its front door, not behind a proxy)."""
        return self.url("user-service")

    @property
    def loadgen_url(self) -> str:
        """The load generator's control and metrics API."""
        return self.url("loadgen")

    @property
    def prefect_api_url(self) -> str | None:
        """The Prefect API (``…/api``), or None when the stack runs without Prefect."""
        return f"{self.url('prefect')}/api" if self.prefect else None

    @property
    def pushgateway_url(self) -> str | None:
        """The Pushgateway for run metrics (None for a stack recorded before it had one)."""
        found = [part.url for part in self.parts if part.name == "pushgateway"]
        return found[0] if found else None

    @property
    def alertmanager_url(self) -> str | None:
        """The demo's Alertmanager (None for a stack recorded before it had one)."""
        found = [part.url for part in self.parts if part.name == "alertmanager"]
        return found[0] if found else None

    @property
    def proxy_admin_urls(self) -> dict[str, str]:
        """Admin API of each fault proxy, by the dependency it stands in front of."""
        return {dependency: f"http://127.0.0.1:{self.part(spec.part).ports['admin']}"
                for dependency, spec in PROXIES.items()}

    @property
    def environment_file(self) -> Path:
        """The demo's environment file."""
        return self.folder / ENVIRONMENT_FILE

    def token(self) -> str:
        """The proxies' admin token."""
        return read_token(self.folder)


def trim_traces(folder: Path, now: float | None = None,
                max_bytes: int | None = None) -> list[Path]:
    """Remove the trace files of earlier stacks that are older than a day, then the oldest
    while the rest take more than half the folder's cap; the files removed.

    The folder is evidence of past game days, so ``down`` keeps it; but it is capped (the
    processes stop writing once it is full, ``GAMEDAY_TRACE_DIR_MAX_MB``), and a new stack
    starting in a full folder would record nothing. A day covers a game day and its
    postmortem; half the cap leaves the new stack at least as much room as the old ones had.
    """
    if max_bytes is None:
        cap_mb = float(os.environ.get("GAMEDAY_TRACE_DIR_MAX_MB") or DEFAULT_FOLDER_MB)
        max_bytes = int(cap_mb * 1024 * 1024)
    now = time.time() if now is None else now
    files = []
    for path in folder.glob(TRACE_FILES):
        with contextlib.suppress(OSError):
            info = path.stat()
            files.append((info.st_mtime, info.st_size, path))
    files.sort(key=lambda item: item[0], reverse=True)  # newest first
    removed: list[Path] = []
    kept = 0
    for mtime, size, path in files:
        kept += size
        if now - mtime > TRACE_MAX_AGE or kept > max_bytes // 2:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def state_path(folder: Path) -> Path:
    """Where ``state.json`` lives in ``folder``."""
    return folder / STATE_FILE


def load_state(folder: Path) -> StackState | None:
    """The recorded stack in ``folder``, or None when nothing is recorded."""
    path = state_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    try:
        return StackState.model_validate_json(text)
    except ValidationError as exc:
        raise DemoError(f"{path} is damaged ({exc.error_count()} problems); stop its processes "
                        "by hand and delete the file") from exc


def save_state(state: StackState) -> None:
    """Write ``state.json`` atomically (a reader never sees half a file)."""
    path = state_path(state.folder)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)


def write_token(folder: Path, token: str) -> Path:
    """Store ``token`` readable by the owner only."""
    path = folder / TOKEN_FILE
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)
    return path


def read_token(folder: Path) -> str:
    """The proxies' admin token of the stack in ``folder``."""
    path = folder / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DemoError(f"no demo token in {folder} ({exc.strerror}); is the stack up?") from exc


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock, so two ``up``/``down`` never work on one stack at once.

    The kernel drops the lock when its holder dies, so a crashed runner never blocks the next.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DemoError(f"another 'chaosctl demo' command is working on {folder}; "
                            "wait for it to finish") from exc
        yield
    finally:
        os.close(fd)


def demo_env(folder: Path | None = None) -> dict[str, str]:
    """Environment variables a client of the running demo stack needs.

    ``GAMEDAY_DEMO_TOKEN`` (the proxies' admin token, which the environment file references)
    and, when the stack runs a Prefect server, ``PREFECT_API_URL``.
    """
    folder = folder or default_state_dir()
    state = load_state(folder)
    if state is None:
        raise DemoError(f"no demo stack recorded in {folder}; run 'chaosctl demo up' first")
    env = {TOKEN_VARIABLE: read_token(folder)}
    if state.prefect_api_url:
        env["PREFECT_API_URL"] = state.prefect_api_url
    return env
