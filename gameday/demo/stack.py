"""The demo stack's engine: ``up``, ``status`` and ``down``.

``up`` refuses to touch a folder whose recorded stack still runs, picks free ports (or checks
the given ones), starts each part in its own session, records it in ``state.json`` at once,
waits until Prometheus scrapes every part and the Prefect API answers, then writes the
demo's environment file. If anything fails, what it started is stopped again by PID.
``down`` stops exactly the recorded processes, whoever started them and whatever became of
that runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gameday import procs
from gameday.demo import alertmanager, envfile, prometheus, redis_server
from gameday.demo import postgres as pg
from gameday.demo.alertmanager import PAGES_FILE
from gameday.demo.parts import (
    AUTH_TIMEOUT,
    HOST,
    PORT_NAMES,
    PartSpec,
    StackPlan,
    check_port_names,
    plan,
    proxy_available,
)
from gameday.demo.state import (
    ENVIRONMENT_FILE,
    PID_DIR,
    TOKEN_FILE,
    TRACE_DIR,
    DemoSettings,
    Part,
    StackState,
    demo_env,
    load_state,
    locked,
    save_state,
    state_path,
    trim_traces,
    write_token,
)
from gameday.errors import DemoError
from gameday.prefect_http import request

__all__ = ["PartStatus", "UpOptions", "demo_env", "down", "status", "up"]

#: Seconds a part gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 10.0
#: Runs a part's program after the part wrote its own PID file (``exec`` keeps the PID).
_WITH_PIDFILE = ["/bin/sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "sh"]


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` starts, and where."""

    folder: Path
    ports: dict[str, int] = field(default_factory=dict)
    prefect: bool = True
    rate: float = 20.0
    timeout: float = 60.0
    record_samples: bool = False
    tracing: bool = True  # the services and proxies write spans to <folder>/traces
    auth_timeout: float = AUTH_TIMEOUT  # user-service's per-attempt auth timeout, seconds


@dataclass(frozen=True)
class PartStatus:
    """Whether one recorded part runs and listens."""

    name: str
    pid: int
    url: str
    alive: bool
    listening: bool

    @property
    def up(self) -> bool:
        """Running and accepting connections on every port."""
        return self.alive and self.listening


# --- processes --------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself contain spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()


def is_running(part: Part) -> bool:
    """Whether the recorded process still runs, and is the one that was recorded."""
    if not procs.alive(part.pid):
        return False
    return part.start_ticks is None or procs.start_ticks(part.pid) == part.start_ticks


def boot_time() -> float:
    """Unix time the machine booted, as the kernel counts process start times from it."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _unrecorded(folder: Path, state: StackState | None) -> list[Part]:
    """Parts that wrote a PID file but are missing from ``state.json`` (``up`` was killed).

    A PID file's process counts only if it started within moments of the file being
    written, so a PID reused since then is left alone.
    """
    recorded = {part.pid for part in state.parts} if state else set()
    found = []
    for pidfile in sorted((folder / PID_DIR).glob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            written = pidfile.stat().st_mtime
        except (OSError, ValueError):
            continue
        ticks = procs.start_ticks(pid)
        if pid in recorded or ticks is None or not procs.alive(pid):
            continue
        started = boot_time() + ticks / os.sysconf("SC_CLK_TCK")
        if written - 30 <= started <= written + 1:
            found.append(Part(name=pidfile.stem, pid=pid, start_ticks=ticks, ports={},
                              url="", log=""))
    return found


def _session_members(part: Part) -> list[int]:
    """Live processes still in the part's own session (children that outlived their leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # fields[3] is the session ID, fields[2] the state, fields[19] the start time.
        if (fields and int(fields[3]) == part.pid and fields[2] != "Z"
                and (part.start_ticks is None or int(fields[19]) >= part.start_ticks)):
            members.append(int(entry.name))
    return members


def stop_part(part: Part) -> None:
    """Stop one recorded part by PID, and whatever is left of its session."""
    if is_running(part):
        procs.stop(part.pid, grace=STOP_GRACE)
    leftovers = _session_members(part)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 2.0
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.05)
            leftovers = [pid for pid in leftovers if procs.alive(pid)]
        if not leftovers:
            return


def _stop_all(parts: list[Part]) -> None:
    if parts:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(stop_part, parts))


# --- ports ------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise DemoError(f"cannot check port {port}: {exc}") from exc
    return True


def _ports(given: dict[str, int], needed: list[str]) -> dict[str, int]:
    check_port_names(given)
    for name, port in given.items():
        if not port_free(port):
            raise DemoError(f"port {port} for {name} is taken; free it, or pick another with "
                            f"--port {name}=PORT (or leave it out to get a free one)")
    ports = {name: port for name, port in given.items() if name in needed}
    for name in needed:
        while name not in ports:
            port = procs.free_port(HOST)
            if port not in ports.values() and port not in given.values():
                ports[name] = port
    return ports


# --- readiness --------------------------------------------------------------------------------


def tail(path: str, lines: int = 15) -> str:
    """The last ``lines`` of a part's log, indented, for an error message."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty log)"


def _not_ready(state: StackState, stack: StackPlan, deadline: float) -> list[str]:
    """What is not ready yet; empty when the whole stack is."""
    waiting = []
    expected = {target.job for target in stack.scrape_targets}
    try:
        health = prometheus.target_health(state.prometheus_url)
    except (httpx.HTTPError, ValueError, KeyError):
        waiting.append("prometheus is not answering yet")
    else:
        down = {job: health.get(job, "not yet listed") for job in expected
                if health.get(job) != "up"}
        waiting += [f"target {job}: {why}" for job, why in sorted(down.items())]
    waiting += _alerting_not_ready(state)
    if state.prefect:
        try:
            # A starting server may answer 503 (its database busy migrating): wait what it
            # asks, as Prefect's client would, within the time left.
            ok = request("GET", f"{state.prefect_api_url}/health", timeout=2.0,
                         budget=max(0.0, deadline - time.monotonic())).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            waiting.append("prefect API is not answering yet")
    return waiting


def _alerting_not_ready(state: StackState) -> list[str]:
    """What of the alert path (pager, Alertmanager, Prometheus sending to it) is not ready."""
    waiting = []
    for name, path in (("pager", "/health"), ("alertmanager", "/-/ready")):
        try:
            ok = httpx.get(state.url(name) + path, timeout=2.0, trust_env=False).is_success
        except httpx.HTTPError:
            ok = False
        if not ok:
            waiting.append(f"{name} is not answering yet")
    try:
        answer = httpx.get(f"{state.prometheus_url}/api/v1/alertmanagers", timeout=2.0,
                           trust_env=False)
        active = answer.json()["data"]["activeAlertmanagers"] if answer.is_success else []
    except (httpx.HTTPError, ValueError, KeyError):
        active = []
    if not active:
        waiting.append("prometheus has not found its alertmanager yet")
    return waiting


def _check_alive(state: StackState) -> None:
    for part in state.parts:
        if not is_running(part):
            raise DemoError(f"{part.name} exited while starting; the end of {part.log}:\n"
                            f"{tail(part.log)}")


def _wait_servers(state: StackState, cluster: pg.Cluster, redis_port: int,
                  deadline: float) -> None:
    """Wait until PostgreSQL takes logins and Redis listens, then create and seed the
    databases (the services and Prefect connect to them as they start) and warm the cache."""
    while not (procs.port_open(redis_port, HOST) and pg.ready(cluster)):
        _check_alive(state)
        if time.monotonic() > deadline:
            raise DemoError("PostgreSQL or Redis did not start in time "
                            f"(logs in {state.folder / 'logs'})")
        time.sleep(0.1)
    pg.prepare(cluster)
    redis_server.warm(redis_port, pg.seed_rows())


def _wait_ready(state: StackState, stack: StackPlan, deadline: float, timeout: float) -> None:
    while True:
        _check_alive(state)
        waiting = _not_ready(state, stack, deadline)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"the demo stack was not ready after {timeout:g}s: "
                            + "; ".join(waiting) + f" (logs in {state.folder / 'logs'})")
        time.sleep(0.25)


# --- up / status / down -----------------------------------------------------------------------


def _refuse_running(folder: Path) -> None:
    existing = load_state(folder)
    running = [part for part in existing.parts if is_running(part)] if existing else []
    running += _unrecorded(folder, existing)
    if running:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in running)
        raise DemoError(f"a demo stack is already running in {folder}: {names}. Use it, or stop "
                        f"it first with 'chaosctl demo down --state {folder}'")
    # Everything recorded is gone (a reboot, or processes killed by hand): start afresh.
    state_path(folder).unlink(missing_ok=True)
    shutil.rmtree(folder / PID_DIR, ignore_errors=True)


def start_part(folder: Path, spec: PartSpec, fresh_log: bool = True) -> Part:
    """Start one part of the stack in ``folder``; its record, for the caller to save at once."""
    log = folder / "logs" / f"{spec.name}.log"
    if fresh_log:
        log.write_bytes(b"")
    pidfile = folder / PID_DIR / f"{spec.name}.pid"
    process = procs.start([*_WITH_PIDFILE, str(pidfile), *spec.argv], log=log, env=spec.env,
                          cwd=folder)
    return Part(name=spec.name, pid=process.pid, start_ticks=procs.start_ticks(process.pid),
                ports=spec.ports, url=spec.url, log=str(log))


def _start(state: StackState, spec: PartSpec) -> None:
    """Start one part and record it at once."""
    state.parts.append(start_part(state.folder, spec))
    save_state(state)


def up(options: UpOptions) -> StackState:
    """Start the stack in ``options.folder`` and return what was started."""
    folder = options.folder.resolve()
    with locked(folder):
        _refuse_running(folder)
        proxy_available()
        rules = prometheus.rules_file()
        needed = [name for name in PORT_NAMES if options.prefect or name != "prefect"]
        ports = _ports(options.ports, needed)
        for stale in (ENVIRONMENT_FILE, "samples.jsonl", PAGES_FILE):
            (folder / stale).unlink(missing_ok=True)
        # Series of an earlier stack would blur this one's baselines.
        shutil.rmtree(folder / "prometheus", ignore_errors=True)
        for name in ("logs", PID_DIR):
            (folder / name).mkdir(exist_ok=True)
        traces = folder / TRACE_DIR if options.tracing else None
        if traces is not None:
            traces.mkdir(exist_ok=True)
            trim_traces(traces)
        cluster = dataclasses.replace(pg.init(folder), port=ports["postgres"])
        token = secrets.token_urlsafe(32)
        token_file = write_token(folder, token)
        (folder / "redis").mkdir(exist_ok=True)
        stack = plan(folder, ports, token, options.rate, options.prefect, cluster,
                     options.record_samples, traces, options.auth_timeout)
        prometheus.write_config(folder / "prometheus.yml", stack.scrape_targets, rules,
                                token_file, ports["alertmanager"])
        (folder / "alertmanager").mkdir(exist_ok=True)
        alertmanager.write_config(folder / "alertmanager.yml", f"http://{HOST}:{ports['pager']}")
        state = StackState(state_dir=str(folder), created=time.time(), prefect=options.prefect,
                           notes=[cluster.moved] if cluster.moved else [],
                           traces=str(traces) if traces is not None else None,
                           settings=DemoSettings(auth_timeout=options.auth_timeout))
        save_state(state)
        deadline = time.monotonic() + options.timeout
        try:
            for spec in stack.stage(0):
                _start(state, spec)
            _wait_servers(state, cluster, ports["redis"], deadline)
            for spec in stack.stage(1):
                _start(state, spec)
            _wait_ready(state, stack, deadline, options.timeout)
            envfile.write(state)
        except BaseException:
            # A part interrupted before it was recorded is found by its own PID file.
            time.sleep(0.1)
            _stop_all(state.parts + _unrecorded(folder, state))
            state_path(folder).unlink(missing_ok=True)
            shutil.rmtree(folder / PID_DIR, ignore_errors=True)
            (folder / TOKEN_FILE).unlink(missing_ok=True)
            raise
        return state


def status(folder: Path) -> list[PartStatus]:
    """Each recorded part, running or not; empty when no stack is recorded in ``folder``."""
    state = load_state(folder.resolve())
    if state is None:
        return []
    return [
        PartStatus(part.name, part.pid, part.url, (alive := is_running(part)),
                   alive and all(procs.port_open(port, HOST) for port in part.ports.values()))
        for part in state.parts
    ]


def down(folder: Path) -> list[Part]:
    """Stop every recorded part of the stack in ``folder`` by PID; returns those stopped."""
    folder = folder.resolve()
    with locked(folder):
        state = load_state(folder)
        parts = (state.parts if state else []) + _unrecorded(folder, state)
        _stop_all(parts)
        still = [part.name for part in parts if is_running(part)]
        if still:
            raise DemoError(f"could not stop {', '.join(still)}; state kept in "
                            f"{state_path(folder)}")
        for name in (ENVIRONMENT_FILE, TOKEN_FILE):
            (folder / name).unlink(missing_ok=True)
        state_path(folder).unlink(missing_ok=True)
        shutil.rmtree(folder / PID_DIR, ignore_errors=True)
        return parts
