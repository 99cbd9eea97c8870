"""How long a leased fault outlives a run that was killed or frozen, timed where it acts.

On the demo with Prefect (``chaosctl ui up``, what ``make ui`` runs: the stack, blocks,
deployments, the reaper, a process worker), in a fresh state folder, each driver gets an
environment of its own with that one endpoint (so the four lock apart and run side by side)
and a scenario of one 5-minute step (its TTL, 310 s, is a hundred leases) under guards that
never trip:

* ``proxy_http``: latency 100 ms on user-service → auth-service at the auth-proxy;
* ``proxy_tcp``: latency 100 ms on the replies of user-service → redis at the cache-proxy
  (TCP mode);
* ``transport``: latency 100 ms in a transport rules file (``<folder>/auth-rules.json``);
* ``stress``: one CPU worker at 50 % on Redis's core.

Each trial starts a run, waits for the fault to act, and at a uniformly random moment 1–10 s
later kills it one way (``--cases``):

* ``sigkill``: SIGKILL of the ``chaosctl start`` process;
* ``sigkill_group``: SIGKILL of its whole process group;
* ``sigstop``: SIGSTOP of its process group, SIGCONT 20 s later; the run must then end by
  itself with exit code 4 ("fault vanished: lease expired"), counted in ``sigstop_exits``;
* ``flow_run``: SIGKILL of the flow-run process of a run of the ``game-day`` deployment,
  started by ``make ui``'s worker (the environment lock's holder is that process).

The orphan lifetime is from the signal to the fault being gone **where it acts** (see
``kill_probes``: a request through the proxy or the transport that is not faulted, the stress
workers' PIDs gone), probed every 50 ms: the start of the first clean probe sent after the
signal. The fault's applied moment is the first probe that met it (for the TCP proxy's timed
probe, the first of three slow PINGs in a row).

``spurious_lapses`` counts runs whose lease lapsed while they were alive: a trial whose fault
stopped acting before its signal, a journal's ``fault_vanished`` note with ``lease_expired``
in a run that was not frozen at the time (a frozen run's note, once it wakes, is expected),
and a proxy's ``lease_expired`` log line before its run's signal. The four drivers' trials run
at the same time, so every run renews its lease with the stress driver's CPU worker on (and
three other runs and the stack besides) on this machine.

A trial whose fault never acted (a preflight refused on a busy machine, say) is tried again,
up to three times. A progress line per trial (``trials.jsonl`` in the folder keeps them), then
one JSON line:

* ``lease_s`` (the environments' lease: 3 s, from the demo's 1 s guard interval), ``trials``
  (per case and driver), ``cases`` → case → driver → ``median_s``, ``max_s``, ``trials``;
* ``max_orphan_s`` over every case and driver, ``target_s`` (the lease + 0.5 s), and
  ``never_gone`` (trials whose fault still acted a minute after the signal);
* ``faults_left``: rules on every demo proxy, rules in force in the transport file and live
  stress workers after the last trial (``faults_left_detail``); must be 0, else the exit code
  is 1. ``transport_lapsed_entries``: lapsed rules still written in the file, which inject
  nothing and leave it at their own expiry;
* ``spurious_lapses`` (must be 0), ``clean_probes_while_held`` (per driver: probes that met no
  fault while the run was alive; the transport lets a request through when the file changes
  under it and its watcher is slow, which is not a lapse);
* ``sigstop_exits`` per driver and ``sigstop_bad_exits`` (those not 4), ``failed_trials``;
* ``targets_met`` (all of the above), ``duration_s`` and ``within_budget`` (30 minutes).

    make bench-kill
    .venv/bin/python -m benchmarks.bench_kill --trials 1 --allow-few --cases sigkill \\
        --drivers proxy_http                                   # trying it out
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.kill_probes import HttpProbe, Prober, StressProbe, TcpProbe, TransportProbe
from benchmarks.kill_stack import (
    DEPLOYMENT,
    DRIVERS,
    REPO,
    BenchDriver,
    Held,
    Outcome,
    Prefect,
    Trial,
    bench_env,
    chaosctl,
    import_environments,
    leftovers,
    prepare_folder,
    rules_file,
    run_env,
    run_logged,
    summary,
    tail,
    ui_down,
    ui_up,
    write_environments,
)
from gameday.demo.state import StackState
from gameday.errors import InjectorError
from gameday.injector.rules_file import load_rules_document
from gameday.load import load_one
from gameday.models import Environment
from gameday.procs import alive, stop
from gameday.protocol.lock import EnvironmentLock, Holder

CASES = ("sigkill", "sigkill_group", "sigstop", "flow_run")
MIN_TRIALS = 5
KILL_AFTER = (1.0, 10.0)
#: How long a SIGSTOPped run stays frozen.
FREEZE = 20.0
#: Seconds from a start to the fault acting: a deployment run may wait for its slot, which a
#: killed run holds until the reaper frees it (or its 60 s lease ends).
APPLY_TIMEOUT_FLOW_RUN = 240.0
APPLY_TIMEOUT_CLI = 120.0
#: Seconds to wait for the fault to go after the signal before giving up on the trial.
GONE_TIMEOUT = 60.0
#: Seconds a resumed run has to end by itself.
END_TIMEOUT = 180.0
#: Prefect's final state types.
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Tries of a trial whose fault never acted (a refused preflight on a loaded machine, say).
RETRIES = 3


class TrialFailed(Exception):
    """A trial that measured nothing: its fault never acted, or its run ended by itself."""


class LaneStuck(Exception):
    """The environment never became free again: the lane's remaining trials are skipped."""


@dataclass
class Bench:
    """What every trial shares: the folder, the stack, the processes started, the stop flag."""

    folder: Path
    state: StackState
    env: dict[str, str]
    prefect: Prefect
    lease: float
    began: float
    stop: threading.Event = field(default_factory=threading.Event)
    rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _flow_runs: set[str] = field(default_factory=set)

    @contextmanager
    def process(self, argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """A process in its own session and group, stopped by PID when done with."""
        with log.open("ab") as out:
            process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        with self._lock:
            self._processes[process.pid] = process
        try:
            yield process
        finally:
            _finish(process)
            with self._lock:
                self._processes.pop(process.pid, None)

    @contextmanager
    def flow_run(self, parameters: dict[str, Any]) -> Iterator[str]:
        """A run of the game-day deployment, cancelled if its trial fails (so it cannot apply
        its fault later) or the bench is interrupted."""
        run = self.prefect.create_run(DEPLOYMENT, parameters)
        with self._lock:
            self._flow_runs.add(run)
        try:
            yield run
        except BaseException:
            with suppress(Exception):  # best effort: ``settle`` waits for its lock anyway
                self.prefect.cancel(run)
            raise
        finally:
            with self._lock:
                self._flow_runs.discard(run)

    def say(self, line: str) -> None:
        """A progress line, with the minutes and seconds since the bench began."""
        took = int(time.monotonic() - self.began)
        print(f"[{took // 60:02d}:{took % 60:02d}] {line}", flush=True)

    def record(self, trial: Trial) -> None:
        """Show a trial, and keep it in ``trials.jsonl`` of the folder."""
        self.say(str(trial))
        with self._lock, (self.folder / "trials.jsonl").open("a") as out:
            out.write(json.dumps({**asdict(trial), "orphan_s": trial.orphan_s}) + "\n")

    def draw(self) -> float:
        """A kill delay, uniform in ``KILL_AFTER``."""
        with self._lock:
            return self.rng.uniform(*KILL_AFTER)

    def abandon(self) -> None:
        """Interrupted: stop our processes (thawed first), cancel our deployment runs."""
        self.stop.set()
        with self._lock:
            processes = list(self._processes.values())
            runs = list(self._flow_runs)
        for process in processes:
            _finish(process)
        for run in runs:
            try:
                self.prefect.cancel(run)
            except Exception as exc:  # the worker is stopped next by ui down anyway
                print(f"could not cancel flow run {run}: {exc}", flush=True)


def _finish(process: subprocess.Popen[bytes]) -> None:
    """Thaw a process group we may have stopped, stop what is left of it by PID, reap it."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGCONT)
    stop(process.pid)  # SIGTERM (a live run rolls back), then SIGKILL; the whole group
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"process {process.pid} did not end", flush=True)


@dataclass
class Lane:
    """One driver's trials, one after another on a thread of their own."""

    driver: BenchDriver
    prober: Prober
    environment_file: Path
    cases: tuple[str, ...]
    trials: int
    done: list[Trial] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def lock(self) -> EnvironmentLock:
        """The environment's lock (its holder is the run's process)."""
        return EnvironmentLock(self.driver.environment)


def main() -> int:
    """Run the benchmark; print progress, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=MIN_TRIALS,
                        help=f"trials per case and driver (at least {MIN_TRIALS})")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="only these ways of killing (for trying out)")
    parser.add_argument("--drivers", nargs="+", choices=[d.key for d in DRIVERS],
                        default=[d.key for d in DRIVERS], help="only these drivers")
    parser.add_argument("--seed", type=int, help="seed of the kill delays")
    # For trying the benchmark itself out; the JSON line's "trials" says how many were run.
    parser.add_argument("--allow-few", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trials < (1 if args.allow_few else MIN_TRIALS):
        parser.error(f"--trials must be at least {MIN_TRIALS}")
    began = time.monotonic()
    drivers = tuple(d for d in DRIVERS if d.key in args.drivers)
    cases = tuple(c for c in CASES if c in args.cases)
    folder = Path(tempfile.mkdtemp(prefix="bench-kill-"))
    # Enterable by the postgres user, so the stack's cluster stays in this folder instead of
    # one in /var/tmp that would outlive it.
    folder.chmod(0o711)
    env = bench_env(folder)
    # The lock files and stress records we read are where the runs write them.
    os.environ["GAMEDAY_STATE"] = str(folder)
    prepare_folder(folder, drivers)
    print(f"bench folder {folder}; chaosctl ui up (the demo stack with Prefect, deployments, "
          "reaper, worker) …", flush=True)
    bench: Bench | None = None
    try:
        state = ui_up(folder, env)
        paths = write_environments(folder, state.environment_file, drivers)
        env = run_env(env, state)
        import_environments(paths, folder, env)
        lease = load_one(Environment, paths[0]).fault_lease
        bench = Bench(folder, state, env, Prefect(str(state.prefect_api_url)), lease, began,
                      rng=random.Random(args.seed))
        print(f"stack up after {time.monotonic() - began:.0f}s; lease {lease:g}s; "
              f"{args.trials} trial(s) of {', '.join(cases)} per driver "
              f"({', '.join(d.key for d in drivers)}), drivers side by side", flush=True)
        lanes = [Lane(d, prober(d, state, folder), path, cases, args.trials)
                 for d, path in zip(drivers, paths, strict=True)]
        run_lanes(bench, lanes)
        left = leftovers(state, folder)
    except BaseException as exc:
        if bench is not None:
            bench.abandon()
        if not isinstance(exc, KeyboardInterrupt):
            raise
        print("interrupted: our runs stopped, deployment runs cancelled", flush=True)
        return 130
    finally:
        print("chaosctl ui down …", flush=True)
        if ui_down(folder, env) != 0:
            print(f"chaosctl ui down failed: see {folder / 'logs' / 'ui-down.log'}", flush=True)
    assert bench is not None
    result = summary(Outcome({lane.driver.key: lane.done for lane in lanes},
                             [f for lane in lanes for f in lane.failed], bench.lease, left,
                             folder, time.monotonic() - began))
    print(f"journals, logs and reports: {folder}", flush=True)
    print(json.dumps(result), flush=True)
    return 0 if left.total == 0 else 1


def prober(driver: BenchDriver, state: StackState, folder: Path) -> Prober:
    """Where ``driver``'s fault acts, as a probe."""
    if driver.key == "proxy_http":
        return HttpProbe(driver.key, url=f"{state.url('auth-proxy')}/health")
    if driver.key == "proxy_tcp":
        return TcpProbe(driver.key, address=state.url("cache-proxy"))
    if driver.key == "transport":
        return TransportProbe(driver.key, url=f"{state.url('auth-service')}/health",
                              rules_file=rules_file(folder),
                              target="/".join(driver.target.values()))
    return StressProbe(driver.key, folder=folder / "stress")


def run_lanes(bench: Bench, lanes: list[Lane]) -> None:
    """Every lane on a thread of its own, all at once; probes run throughout."""
    with ExitStack() as probes:
        for lane in lanes:
            probes.enter_context(lane.prober)
        threads = [threading.Thread(target=run_lane, args=(bench, lane), daemon=True,
                                    name=f"lane-{lane.driver.key}") for lane in lanes]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():  # a timed join, so Ctrl-C reaches this thread
                    thread.join(timeout=0.5)
        except BaseException:
            bench.abandon()
            for thread in threads:  # their waits end on the stop flag; what they hold is let go
                thread.join(timeout=30)
            raise


def run_lane(bench: Bench, lane: Lane) -> None:
    """The lane's trials, its cases interleaved: trial 1 of each case, then trial 2 …"""
    for number in range(1, lane.trials + 1):
        for case in lane.cases:
            if bench.stop.is_set():
                return
            for attempt in range(1, RETRIES + 1):
                try:
                    trial = one_trial(bench, lane, case, number, attempt)
                except TrialFailed as exc:
                    if bench.stop.is_set():
                        return
                    bench.say(f"{lane.driver.key:10s} {case:13s} #{number}  try {attempt} "
                              f"failed: {exc}")
                    if attempt == RETRIES:
                        lane.failed.append(f"{lane.driver.key} {case} #{number}: {exc}")
                    continue
                except LaneStuck as exc:
                    lane.failed.append(f"{lane.driver.key}: {exc}")
                    bench.say(f"{lane.driver.key:10s} stuck, no more trials: {exc}")
                    return
                except Exception as exc:  # one lane's accident must not end the others
                    lane.failed.append(f"{lane.driver.key} {case} #{number}: "
                                       f"{type(exc).__name__}: {exc}")
                    bench.say(f"{lane.driver.key:10s} {case:13s} #{number}  error: "
                              f"{type(exc).__name__}: {exc}")
                    break
                if bench.stop.is_set():
                    return  # cut short by the interruption: not a trial
                lane.done.append(trial)
                bench.record(trial)
                break


def one_trial(bench: Bench, lane: Lane, case: str, number: int, attempt: int) -> Trial:
    """Start a run, wait for its fault to act, kill it at a random moment, time the orphan."""
    settle(bench, lane)
    name = f"{lane.driver.key}-{case}-{number}" + (f"-try{attempt}" if attempt > 1 else "")
    if case == "flow_run":
        with bench.flow_run({"scenario": lane.driver.scenario,
                             "environment": lane.driver.environment}) as flow_run:
            return killed_flow_run(bench, lane, number, flow_run)
    log = bench.folder / "logs" / f"{name}.log"
    argv = chaosctl("start", lane.driver.scenario, "--env", str(lane.environment_file))
    with bench.process(argv, log) as process:
        return killed_cli_run(bench, lane, case, number, process, log)


def killed_cli_run(bench: Bench, lane: Lane, case: str, number: int,
                   process: subprocess.Popen[bytes], log: Path) -> Trial:
    """A ``chaosctl start`` run killed (or frozen) by ``case``."""
    started = time.time()
    applied = lane.prober.applied(started, APPLY_TIMEOUT_CLI, bench.stop,
                                  ended=lambda: process.poll() is not None)
    if applied is None:
        raise TrialFailed(f"no fault acted (exit {process.poll()}); {log}:\n{tail(log)}")
    holder = lock_holder(bench, lane, lambda h: h.pid == process.pid)
    delay = bench.draw()
    wait_until(bench, applied + delay)
    if process.poll() is not None:
        raise TrialFailed(f"the run ended by itself ({process.returncode}) before its kill; "
                          f"{log}:\n{tail(log)}")
    killed = time.time()
    if case == "sigkill":
        os.kill(process.pid, signal.SIGKILL)
    elif case == "sigkill_group":
        os.killpg(process.pid, signal.SIGKILL)
    else:
        os.killpg(process.pid, signal.SIGSTOP)
    exit_code: int | None = None
    try:
        gone = lane.prober.gone(killed, FREEZE if case == "sigstop" else GONE_TIMEOUT,
                                bench.stop)
        held = held_until(bench, lane, holder.run, applied, killed)
    finally:
        if case == "sigstop":
            wait_until(bench, killed + FREEZE)
            os.killpg(process.pid, signal.SIGCONT)
    if case == "sigstop":
        try:
            exit_code = process.wait(timeout=END_TIMEOUT)
        except subprocess.TimeoutExpired:
            exit_code = None  # stopped by PID as the trial ends
    note = f"pid {process.pid}, run {holder.run[:8]}"
    if case == "sigstop":
        note += f", exit {exit_code}"
    if gone is None:
        note += f"; {sweep(bench, lane)}"
    return Trial(lane.driver.key, case, number, holder.run, process.pid, started, applied,
                 delay, killed, gone, held, exit_code, note)


def killed_flow_run(bench: Bench, lane: Lane, number: int, flow_run: str) -> Trial:
    """A deployment run whose flow-run process (the lock's holder) is SIGKILLed."""
    started = time.time()
    timeout = APPLY_TIMEOUT_FLOW_RUN
    applied = lane.prober.applied(started, timeout, bench.stop,
                                  ended=Throttled(lambda: bench.prefect.state(flow_run) in FINAL))
    if applied is None:
        raise TrialFailed(f"flow run {flow_run}: no fault acted "
                          f"({bench.prefect.state(flow_run)}); see the worker's log, "
                          f"{bench.folder / 'demo' / 'logs' / 'worker.log'}")
    holder = lock_holder(bench, lane, lambda h: h.run == flow_run)
    delay = bench.draw()
    wait_until(bench, applied + delay)
    if not alive(holder.pid):
        raise TrialFailed(f"flow run {flow_run} ended by itself before its kill "
                          f"({bench.prefect.state(flow_run)})")
    killed = time.time()
    os.kill(holder.pid, signal.SIGKILL)
    gone = lane.prober.gone(killed, GONE_TIMEOUT, bench.stop)
    held = held_until(bench, lane, flow_run, applied, killed)
    note = f"flow-run pid {holder.pid}, run {flow_run[:8]}"
    if gone is None:
        note += f"; {sweep(bench, lane)}"
    return Trial(lane.driver.key, "flow_run", number, flow_run, holder.pid, started, applied,
                 delay, killed, gone, held, None, note)


def held_until(bench: Bench, lane: Lane, run: str, applied: float, killed: float) -> Held:
    """Whether the run's fault still acted when it was killed (read once it is gone).

    A lapse is final, so the last probe before the kill tells, except for the transport: its
    reader lets a request through unfaulted when the file changes under it and the watcher is
    slow to read it (every renewal rewrites the file), so a clean probe there is not yet a
    lapse. The file tells instead: a lapsed run's deadline stays in it, never moved later.
    """
    clean = lane.prober.clean_between(applied, killed)
    if lane.driver.key == "transport":
        with suppress(OSError, InjectorError):
            deadline = load_rules_document(rules_file(bench.folder)).leases.get(run)
            if deadline is not None:
                return Held(clean, deadline < killed)
    return Held(clean, lane.prober.last_before(killed) is False)


@dataclass
class Throttled:
    """A check asked at most every ``every`` seconds; the last answer in between."""

    check: Callable[[], bool]
    every: float = 2.0
    _asked: float = 0.0
    _answer: bool = False

    def __call__(self) -> bool:
        if time.monotonic() - self._asked >= self.every:
            self._asked = time.monotonic()
            try:
                self._answer = self.check()
            except Exception:  # the API busy: ask again later
                self._answer = False
        return self._answer


def lock_holder(bench: Bench, lane: Lane, mine: Any) -> Holder:
    """The environment lock's holder once it is the trial's run (``mine(holder)``)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not bench.stop.is_set():
        holder = lane.lock.holder()
        if holder is not None and mine(holder):
            return holder
        bench.stop.wait(0.05)
    raise TrialFailed(f"the fault acts but {lane.driver.environment}'s lock holder is "
                      f"{lane.lock.holder()}, not the trial's run")


def settle(bench: Bench, lane: Lane) -> None:
    """Wait until the environment is free (no live holder) and the fault does not act."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not bench.stop.is_set():
        holder = lane.lock.holder()
        if (holder is None or not alive(holder.pid)) and \
                lane.prober.gone(time.time(), 5, bench.stop) is not None:
            return
        bench.stop.wait(0.2)
    if bench.stop.is_set():
        raise TrialFailed("interrupted")
    raise LaneStuck(f"{lane.driver.environment} did not settle within 300s (holder "
                    f"{lane.lock.holder()}, fault acting: {lane.prober.acting()})")


def sweep(bench: Bench, lane: Lane) -> str:
    """A fault the lease did not end: ``chaosctl stop`` reverts what is left (by label)."""
    log = bench.folder / "logs" / f"stop-{lane.driver.environment}.log"
    code = run_logged(chaosctl("stop", "--env", str(lane.environment_file), "--force"), log,
                      bench.env, timeout=120)
    return f"still acting {GONE_TIMEOUT:g}s after; chaosctl stop exited {code}"


def wait_until(bench: Bench, moment: float) -> None:
    """Sleep until the epoch second ``moment`` (interruptible)."""
    while (left := moment - time.time()) > 0:
        if bench.stop.wait(min(left, 0.5)):
            raise TrialFailed("interrupted")


if __name__ == "__main__":
    sys.exit(main())
