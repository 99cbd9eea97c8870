"""Around the kill benchmark's trials: its stage before them (the folder, catalog and
environments, ``make ui``), and after them what is left and the JSON line.

Everything lives in one fresh folder, which is ``$GAMEDAY_STATE`` for every process the bench
starts (so ``chaosctl ui up`` puts the demo stack in ``<folder>/demo``, its default state
folder, and runs, locks and stress records land beside it)::

    <folder>/catalog/              signals.yaml (the kit's) and scenarios/bench.yaml
    <folder>/bench-*/environment.yaml   one environment per driver (the state folder's
                                   ``<name>/environment.yaml``, which deployments list)
    <folder>/auth-rules.json       the transport driver's rules file
    <folder>/demo/                 the demo stack (``make ui``), its logs in demo/logs/
    <folder>/runs/, locks/, stress/, reports/, logs/
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.kill_probes import StressProbe
from gameday.demo.state import TOKEN_VARIABLE, StackState, load_state
from gameday.errors import InjectorError, JournalError
from gameday.injector.rules_file import load_rules_document
from gameday.journal import read_journal
from gameday.notes import FaultVanishedNote
from gameday.prefect_http import request
from gameday.procs import stop

REPO = Path(__file__).resolve().parents[1]
#: The lease's slack in the target: the proxy's timer, a worker's duty cycle, the probe.
TARGET_SLACK = 0.5
BUDGET_S = 1800.0
DEPLOYMENT = "game-day/game-day"
#: Faults the drivers apply: slow, never failing (user-service gives auth 200 ms).
FAULT_MS = 100
#: One step this long: the TTL (dwell + 10 s) is a hundred leases.
DWELL = "5m"
#: Guards that never stop a step: the bench kills runs, their guards must not.
LAX = {"op": ">", "threshold": 95, "for": "60s", "on_no_data": "ignore"}
USERS_ERRORS = ('100 * (sum(rate(service_requests_total{service="user-service", code=~"5.."}'
                '[{window}])) or vector(0)) / sum(rate(service_requests_total'
                '{service="user-service"}[{window}]))')


@dataclass(frozen=True)
class BenchDriver:
    """One driver under test: its environment, scenario and fault."""

    key: str  # proxy_http, proxy_tcp, transport, stress
    environment: str
    scenario: str
    target: dict[str, str]
    fault: dict[str, Any]

    def environment_file(self, folder: Path) -> Path:
        """Where its environment file is written."""
        return folder / self.environment / "environment.yaml"


DRIVERS = (
    BenchDriver("proxy_http", "bench-http", "bench-kill-http",
                {"service": "user-service", "dependency": "auth-service"},
                {"kind": "latency", "ms": FAULT_MS}),
    BenchDriver("proxy_tcp", "bench-tcp", "bench-kill-tcp",
                {"service": "user-service", "dependency": "redis"},
                {"kind": "latency", "ms": FAULT_MS, "direction": "downstream"}),
    BenchDriver("transport", "bench-transport", "bench-kill-transport",
                {"service": "user-service", "dependency": "auth-service"},
                {"kind": "latency", "ms": FAULT_MS}),
    BenchDriver("stress", "bench-stress", "bench-kill-stress", {"service": "redis"},
                {"kind": "cpu", "workers": 1, "load_percent": 50}),
)


def rules_file(folder: Path) -> Path:
    """The transport driver's rules file."""
    return folder / "auth-rules.json"


def bench_env(folder: Path) -> dict[str, str]:
    """The environment of every process the bench starts."""
    return {**os.environ, "GAMEDAY_STATE": str(folder),
            "GAMEDAY_CATALOG": str(folder / "catalog"),
            "GAMEDAY_REPORTS": str(folder / "reports"),
            # Prefect's own settings and profiles, apart from whoever else uses this machine.
            "PREFECT_HOME": str(folder / "prefect-home"),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "GAMEDAY_REQUESTER": "bench-kill",
            "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def scenario(driver: BenchDriver) -> dict[str, Any]:
    """The driver's scenario: one long step under guards that never trip."""
    guards: dict[str, Any] = {"error_rate_percent": LAX}
    if "dependency" not in driver.target:  # the cache's CPU: what must hold is its caller
        guards = {"user_service_error_rate_percent": {"query": USERS_ERRORS, "unit": "%", **LAX}}
    return {"name": driver.scenario, "owner": "bench-kill", "target": driver.target,
            "description": f"bench-kill: {driver.key} fault held {DWELL}, its run killed",
            "environments": [driver.environment], "fault": driver.fault,
            "steps": [{"dwell": DWELL}], "max_duration": "10m", "guards": guards,
            "rollback": {"recovery": {"timeout": "5s", "tolerance_percent": 100}}}


def environment(demo: dict[str, Any], driver: BenchDriver, folder: Path) -> dict[str, Any]:
    """The driver's environment: the demo's settings, only its own endpoint."""
    endpoints: list[dict[str, Any]] = demo["endpoints"]

    def proxy(dependency: str) -> dict[str, Any]:
        return next(e for e in endpoints
                    if e["driver"] == "proxy" and e.get("dependency") == dependency)

    if driver.key == "proxy_http":
        endpoint = proxy("auth-service")
    elif driver.key == "proxy_tcp":
        endpoint = proxy("redis")
    elif driver.key == "transport":
        endpoint = {"service": "user-service", "dependency": "auth-service",
                    "driver": "transport", "rules_file": str(rules_file(folder)),
                    "health_url": proxy("auth-service").get("health_url")}
    else:
        endpoint = next(e for e in endpoints if e["driver"] == "stress")
    kept = {k: v for k, v in demo.items() if k not in ("name", "endpoints", "allowed_targets")}
    return {"name": driver.environment, **kept, "allowed_targets": [driver.target["service"]],
            "endpoints": [{k: v for k, v in endpoint.items() if v is not None}]}


def write_environments(folder: Path, demo_file: Path, drivers: tuple[BenchDriver, ...]
                       ) -> list[Path]:
    """Each driver's environment file, from the demo's environment file; their paths."""
    demo = yaml.safe_load(demo_file.read_text())
    paths = []
    for driver in drivers:
        path = driver.environment_file(folder)
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(environment(demo, driver, folder), sort_keys=False))
        paths.append(path)
    return paths


def prepare_folder(folder: Path, drivers: tuple[BenchDriver, ...]) -> None:
    """The catalog, and the environments from the catalog's demo template (their ports are
    wrong until ``ui up`` has started the stack: they are written now so that the deployment
    ``ui up`` creates offers their names, and rewritten from the live stack before use)."""
    catalog = folder / "catalog"
    (catalog / "scenarios").mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "signals.yaml", catalog / "signals.yaml")
    (catalog / "scenarios" / "bench.yaml").write_text(
        yaml.safe_dump([scenario(d) for d in drivers], sort_keys=False))
    for name in ("logs", "reports"):
        (folder / name).mkdir()
    write_environments(folder, REPO / "catalog" / "environments" / "demo.yaml", drivers)


def run_logged(argv: list[str], log: Path, env: dict[str, str], timeout: float) -> int:
    """Run ``argv`` in its own session, output to ``log``; its exit code (stopped by PID if it
    overstays or we are interrupted)."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            stop(process.pid)
            process.wait(timeout=10)


def chaosctl(*args: str) -> list[str]:
    """A ``chaosctl`` command line on this interpreter."""
    return [sys.executable, "-m", "gameday", *args]


def tail(path: Path, lines: int = 12) -> str:
    """The last lines of a log, for error messages."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def ui_up(folder: Path, env: dict[str, str]) -> StackState:
    """``chaosctl ui up`` (what ``make ui`` runs) in the bench folder; the stack it started."""
    log = folder / "logs" / "ui-up.log"
    code = run_logged(chaosctl("ui", "up"), log, env, timeout=900)
    state = load_state(folder / "demo")
    if code != 0 or state is None or not state.prefect_api_url:
        raise SystemExit(f"chaosctl ui up failed ({code}), see {log}:\n{tail(log)}")
    return state


def ui_down(folder: Path, env: dict[str, str]) -> int:
    """``chaosctl ui down``: the worker and the stack, stopped by PID."""
    return run_logged(chaosctl("ui", "down"), folder / "logs" / "ui-down.log", env,
                      timeout=300)


def import_environments(paths: list[Path], folder: Path, env: dict[str, str]) -> None:
    """``chaosctl env import FILE`` for each file, side by side (deployment runs read blocks)."""
    logs = [folder / "logs" / f"import-{path.parent.name}.log" for path in paths]
    started = []
    try:
        for path, log in zip(paths, logs, strict=True):
            with log.open("ab") as out:
                started.append(subprocess.Popen(
                    chaosctl("env", "import", str(path)), cwd=REPO, env=env, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        codes = [process.wait(timeout=300) for process in started]
    finally:
        for process in started:
            if process.poll() is None:
                stop(process.pid)
    for code, log in zip(codes, logs, strict=True):
        if code != 0:
            raise SystemExit(f"chaosctl env import failed ({code}), see {log}:\n{tail(log)}")


@dataclass(frozen=True)
class Held:
    """What the probes saw between the fault's onset and the kill."""

    clean: int  # probes that met no fault
    lapsed: bool  # the fault had stopped acting by the kill


@dataclass(frozen=True)
class Trial:
    """One run, killed one way, in epoch seconds."""

    driver: str
    case: str
    number: int
    run: str
    pid: int  # the process signalled
    started: float
    applied: float  # the first probe that met the fault
    delay: float  # the kill's drawn delay after ``applied``
    killed: float  # just before the signal
    gone: float | None  # the first clean probe after it (None: still acting)
    #: Probes between ``applied`` and ``killed`` that met no fault, and whether the fault had
    #: stopped acting by the kill (its lease lapsed while the run was alive).
    held: Held
    exit_code: int | None = None  # sigstop: how the resumed run ended
    note: str = ""

    @property
    def orphan_s(self) -> float | None:
        """Seconds from the signal to the fault gone where it acts."""
        return None if self.gone is None else self.gone - self.killed

    def __str__(self) -> str:
        orphan = "never gone" if self.orphan_s is None else f"orphan {self.orphan_s:5.2f}s"
        return (f"{self.driver:10s} {self.case:13s} #{self.number}  applied after "
                f"{self.applied - self.started:5.1f}s  kill after {self.delay:5.2f}s  {orphan}"
                f"{'  LAPSED BEFORE THE KILL' if self.held.lapsed else ''}"
                f"{f'  {self.held.clean} clean probes' if self.held.clean else ''}  ({self.note})")


@dataclass(frozen=True)
class Leftovers:
    """Faults still acting after the trials: on the proxies, in the rules file, as workers."""

    proxy_rules: int
    transport_rules: int
    stress_workers: int
    #: Rules still written in the file whose lease lapsed: they inject nothing, and leave
    #: the file at their own expiry (a lapsed rule is kept so a waking run learns why).
    transport_lapsed: int

    @property
    def total(self) -> int:
        """Faults that still act."""
        return self.proxy_rules + self.transport_rules + self.stress_workers


def leftovers(state: StackState, folder: Path) -> Leftovers:
    """What is still in place, whoever put it there."""
    proxy = 0
    headers = {"Authorization": f"Bearer {state.token()}"}
    for admin in state.proxy_admin_urls.values():
        answer = httpx.get(f"{admin}/rules", headers=headers, trust_env=False, timeout=5)
        answer.raise_for_status()
        proxy += len(answer.json()["rules"])
    in_force = lapsed = 0
    if rules_file(folder).exists():
        try:
            document = load_rules_document(rules_file(folder))
        except InjectorError:
            in_force = 1  # a file we cannot read is never taken for a clean one
        else:
            now = time.time()
            in_force = sum(1 for rule in document.rules if document.deadline(rule) > now)
            lapsed = len(document.rules) - in_force
    workers = len(StressProbe("stress", folder=folder / "stress").live())
    return Leftovers(proxy, in_force, workers, lapsed)


@dataclass(frozen=True)
class Prefect:
    """The few Prefect REST calls the bench makes (retried as Prefect's client retries)."""

    api: str

    def create_run(self, deployment: str, parameters: dict[str, Any]) -> str:
        """A run of ``deployment`` (``flow/name``) with ``parameters``; its ID."""
        found = self._call("GET", f"/deployments/name/{deployment}")
        run = self._call("POST", f"/deployments/{found['id']}/create_flow_run",
                         json={"parameters": parameters})
        return str(run["id"])

    def state(self, run: str) -> str:
        """The run's state type, e.g. RUNNING or CRASHED."""
        found = self._call("GET", f"/flow_runs/{run}")
        return str((found.get("state") or {}).get("type", "?"))

    def cancel(self, run: str) -> None:
        """Ask for the run's cancellation, as the UI's Cancel button does."""
        self._call("POST", f"/flow_runs/{run}/set_state",
                   json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = request(method, f"{self.api.rstrip('/')}{path}", timeout=15.0, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None


def run_env(env: dict[str, str], state: StackState) -> dict[str, str]:
    """The bench's environment plus what a client of the stack needs (API, token)."""
    return {**env, "PREFECT_API_URL": str(state.prefect_api_url),
            TOKEN_VARIABLE: state.token()}


# --- after the trials: the records and the JSON line --------------------------------------


def spread(values: list[float]) -> dict[str, float | int | None]:
    """Median and max (seconds, 3 decimals) and how many."""
    if not values:
        return {"median_s": None, "max_s": None, "trials": 0}
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3),
            "trials": len(values)}


def spurious(folder: Path, trials: list[Trial]) -> tuple[set[str], int]:
    """Runs whose lease lapsed while they were alive, and journals that could not be read.

    Three witnesses: the probes (the fault stopped acting before the kill), the runs' journals
    (a ``fault_vanished`` note with ``lease_expired`` from a run that was not frozen then,
    which also catches a run that noticed its lapse and ended before its kill) and the proxies'
    logs (a ``lease_expired`` line before its run's kill).
    """
    killed = {t.run: t.killed for t in trials}
    frozen = {t.run for t in trials if t.case == "sigstop"}
    found = {t.run for t in trials if t.held.lapsed}
    unreadable = 0
    for path in sorted((folder / "runs").glob("*/journal.jsonl")):
        run = path.parent.name
        try:
            events = read_journal(path)
        except JournalError:
            unreadable += 1
            continue
        for event in events:
            if isinstance(event, FaultVanishedNote) and event.lease_expired and not (
                    run in frozen and event.at >= killed[run]):
                found.add(run)
    for log in sorted((folder / "demo" / "logs").glob("*-proxy.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"lease_expired"' not in line:
                continue
            try:
                entry = json.loads(line)
                run = str(entry["rule"]["labels"]["run"])
                at = float(entry["ts"])
            except (ValueError, KeyError, TypeError):
                continue
            if run in killed and at < killed[run]:
                found.add(run)
    return found, unreadable


@dataclass(frozen=True)
class Outcome:
    """Everything the JSON line is made of."""

    done: dict[str, list[Trial]]  # by driver
    failed: list[str]  # trials that measured nothing after every try, and why
    lease: float
    left: Leftovers
    folder: Path
    took: float


def summary(outcome: Outcome) -> dict[str, Any]:
    """The JSON line."""
    done = outcome.done
    trials = [t for runs in done.values() for t in runs]
    cases: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for case in dict.fromkeys(t.case for t in trials):
        cases[case] = {driver: spread([t.orphan_s for t in runs
                                       if t.case == case and t.orphan_s is not None])
                       for driver, runs in done.items()}
    orphans = [t.orphan_s for t in trials if t.orphan_s is not None]
    never_gone = sum(1 for t in trials if t.orphan_s is None)
    lapsed, unreadable = spurious(outcome.folder, trials)
    sigstop_exits = {driver: [t.exit_code for t in runs if t.case == "sigstop"]
                     for driver, runs in done.items() if any(t.case == "sigstop" for t in runs)}
    bad_exits = sum(1 for t in trials if t.case == "sigstop" and t.exit_code != 4)
    target = outcome.lease + TARGET_SLACK
    max_orphan = round(max(orphans), 3) if orphans else None
    left = outcome.left
    met = (max_orphan is not None and max_orphan <= target and never_gone == 0
           and left.total == 0 and not lapsed and bad_exits == 0 and not outcome.failed)
    return {
        "lease_s": outcome.lease,
        "trials": max((v["trials"] or 0 for c in cases.values() for v in c.values()), default=0),
        "cases": cases,
        "max_orphan_s": max_orphan,
        "target_s": target,
        "never_gone": never_gone,
        "faults_left": left.total,
        "faults_left_detail": {"proxy_rules": left.proxy_rules,
                               "transport_rules": left.transport_rules,
                               "stress_workers": left.stress_workers},
        "transport_lapsed_entries": left.transport_lapsed,
        "spurious_lapses": len(lapsed),
        "clean_probes_while_held": {driver: sum(t.held.clean for t in runs)
                                    for driver, runs in done.items()},
        "stress_on": "stress" in done,
        "sigstop_exits": sigstop_exits,
        "sigstop_bad_exits": bad_exits,
        "unreadable_journals": unreadable,
        "failed_trials": outcome.failed,
        "targets_met": met,
        "duration_s": round(outcome.took, 1),
        "within_budget": outcome.took <= BUDGET_S,
    }
