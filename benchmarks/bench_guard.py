"""How fast guards stop a fault, gameday and Chaos Toolkit side by side, timed from outside.

On the demo stack (no Prefect), trips alternate between the two tools. Each applies the same
150 ms latency rule on user-service → auth-service (every request checks its token there, so
every request is slowed; the database sits behind a cache, which would leave most requests
untouched and no clear onset to time), judged by the same PromQL
(``latency_p95_ms > 100``): gameday holds with its guard (``for 1s``, each new scrape judged
as soon as Prometheus has it) and reverts on the breach; Chaos Toolkit runs
``peers/chaostoolkit/experiment.json`` with ``--rollback-strategy=always``. Every trip puts
the fault's onset at a uniformly random point of user-service's scrape cycle, placed on
Prometheus' own scrape timestamps.

Both are measured the same way: onset is the start of the first request the load generator
saw slowed, "gone" the first answer of a 50 ms poller of the proxy's ``GET /rules`` that no
longer lists the rule, clean the start of the first normal request again. gameday's trips
are journaled as a game day's would be. A progress line per trip, then one JSON object:

* ``onset_to_detect_s``, ``detect_to_revert_s``, ``onset_to_clean_s`` (onset → rule gone):
  gameday's median, p90 and max; ``peer_onset_to_clean_s`` the same for Chaos Toolkit, and
  ``ratio_vs_peer`` the two medians' ratio. ``client_clean_s``/``peer_client_clean_s``: onset →
  first normal request (a request the fault held when its rule went is released at once, so
  this can end a little before the rule is gone);
* ``where_time_goes_s``: gameday's onset → gone cut at the first breaching scrape, the scrape
  it breached on and the verdict (see ``Cut``);
* ``onset_phase_ks``: how far each tool's onset phases are from uniform (Kolmogorov-Smirnov
  distance; with 20 trips, above about 0.29 means they were not spread over the cycle);
* ``peer_start_s``: median seconds from starting ``chaos run`` to the poller seeing its rule,
  less the pause it was given (the CLI's start-up, which each trip's delay allows for);
* ``guards_50_cycle_s``: the slowest of ten rounds of 50 guards sampled in parallel;
* ``guard_query_rate_hz``: polls per guard per second during holds (each poll is the guard's
  query and its freshness query);
* ``faults_left``: rules on either proxy after the run, whoever put them there (must be 0).

    make bench-guard                       # starts and stops its own demo stack
    .venv/bin/python -m benchmarks.bench_guard --state .gameday/demo --trips 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.demo_reads import client_view, faults_left, typical_ms
from benchmarks.guard_peer import PeerSettings, ensure_venv, run_peer
from benchmarks.guard_queries import CountingSampler, fifty_guards
from benchmarks.guard_timing import (
    onset_time,
    phase,
    ratio,
    spread,
    uniformity,
)
from benchmarks.rule_poller import RulePoller
from gameday.demo.stack import UpOptions, down, up
from gameday.demo.state import TOKEN_VARIABLE, StackState, load_state, read_token
from gameday.drivers.proxy import ProxyDriver
from gameday.faults import LatencyFault
from gameday.guards import GuardQuery, Prometheus, guard_query, hold, judge, stale_bound
from gameday.guards.rules import Sample, Verdict
from gameday.journal import (
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    HoldEndedEvent,
    Journal,
)
from gameday.load import load_default, load_one
from gameday.models import Environment, Guard, Target
from gameday.paths import state_dir
from gameday.records import FaultSpec, Labels

FAULT_MS = 150.0  # under user-service's 200 ms auth timeout: slow, not failing
TARGET = Target(service="user-service", dependency="auth-service")
GUARD_NAME = "latency_p95_ms"
GUARD = Guard.model_validate({"op": ">", "threshold": 100, "for": "1s"})
MIN_TRIPS = 20
TTL = 30.0
#: How long gameday's hold runs before the onset, so its guard is polling when the fault lands.
HOLD_LEAD = 1.5
#: The shortest pause before the peer's PUT, so its safeguard is probing when the fault lands.
PEER_MIN_PAUSE = 0.5
#: First guess at the seconds from starting ``chaos run`` to its PUT, before one was measured.
PEER_START_GUESS = 1.5
#: Tries of one trip that its guard stopped before the fault began.
RETRIES = 3


@dataclass(frozen=True)
class Cut:
    """Where one gameday trip's onset → gone went, in seconds.

    ``to_first_breaching_scrape``: the fault's own delay, the rate window filling until p95
    crosses the threshold, and the wait for the next scrape; ``for_``: from the breaching
    streak's first scrape to the one it breached on; ``evaluation_lag``: from that scrape's
    timestamp to the verdict (the scrape's own duration, ingestion, the poll and its two
    queries); ``revert``: from the verdict to the poller's first answer without the rule.
    """

    to_first_breaching_scrape: float
    for_: float
    evaluation_lag: float
    revert: float


@dataclass(frozen=True)
class Trip:
    """One fault of one tool, in epoch seconds."""

    tool: str
    onset: float  # start of the first slowed request
    gone: float  # the poller's first answer without the rule
    clean: float  # start of the first normal request after the fault
    phase: float  # the onset's place in the scrape cycle, 0..1
    detected: float | None = None  # gameday: the stopping verdict
    reverted: float | None = None  # gameday: the DELETE returned
    cut: Cut | None = None  # gameday: where onset → gone went
    note: str = ""

    def __str__(self) -> str:
        shown = f"{self.tool:12s} "
        if self.detected is not None and self.reverted is not None:
            shown += (f"onset->detect {self.detected - self.onset:.2f}s  detect->revert "
                      f"{self.reverted - self.detected:.3f}s  ")
        return (shown + f"onset->clean {self.gone - self.onset:.2f}s  client clean "
                f"{self.clean - self.onset:.2f}s  phase {self.phase:.2f}  ({self.note})")


@dataclass
class Bench:
    """What every trip uses: the stack's clients, the guard, and running tallies."""

    run: str
    folder: Path
    guard: GuardQuery
    scrape: float
    interval: float
    stale: float
    prom: Prometheus
    driver: ProxyDriver
    journal: Journal
    load: httpx.AsyncClient
    poller: RulePoller
    peer: PeerSettings
    slow_ms: float = 0.0
    sampler: CountingSampler = field(init=False)
    guard_seconds: float = 0.0
    peer_starts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sampler = CountingSampler(self.prom)


def main() -> int:
    """Run the benchmark; print progress, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=MIN_TRIPS,
                        help=f"fault trips per tool (at least {MIN_TRIPS})")
    parser.add_argument("--state", type=Path, help="use the running demo stack in this folder")
    # For trying the benchmark itself out; the JSON line's "trips" says how many were run.
    parser.add_argument("--allow-few", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trips < (2 if args.allow_few else MIN_TRIPS):
        parser.error(f"--trips must be at least {MIN_TRIPS}: fewer make a p90 and max of noise")
    chaos = ensure_venv(state_dir() / "bench" / "ctk-venv")
    folder = args.state or Path(tempfile.mkdtemp(prefix="bench-guard-"))
    started_stack = args.state is None
    if started_stack:
        # Enterable by the postgres user, so the stack's cluster stays in this folder instead
        # of one in /var/tmp that would outlive it.
        folder.chmod(0o711)
        print(f"starting the demo stack (no Prefect) in {folder}", flush=True)
        state = up(UpOptions(folder, prefect=False, timeout=120.0))
    else:
        found = load_state(folder)
        if found is None:
            raise SystemExit(f"no demo stack recorded in {folder}: run 'chaosctl demo up' first")
        state = found
    os.environ[TOKEN_VARIABLE] = read_token(folder)
    try:
        result = asyncio.run(bench(state, chaos, args.trips))
    finally:
        if started_stack:
            down(folder)
    print(json.dumps(result), flush=True)
    return 0 if result["faults_left"] == 0 else 1


async def bench(state: StackState, chaos: Path, trips: int) -> dict[str, Any]:
    """``trips`` trips of each tool, alternating, and one round of 50 guards."""
    environment = load_one(Environment, state.environment_file)
    catalog = load_default()
    guard = guard_query(GUARD_NAME, GUARD, TARGET, environment.prometheus.window,
                        catalog.signals)
    scrape = environment.prometheus.scrape_interval
    endpoint = environment.endpoint_for(TARGET)
    assert endpoint is not None and endpoint.admin_url, "the demo has no auth-proxy"
    token = state.token()
    run = f"bench-{int(time.time())}"
    folder = state.folder / run
    folder.mkdir()
    peer = PeerSettings(chaos=chaos, prometheus_url=state.prometheus_url,
                        admin_url=endpoint.admin_url, token=token, fault_ms=FAULT_MS)
    print(f"guard {GUARD_NAME}: {guard.query}  {GUARD.op} {GUARD.threshold:g} "
          f"for {GUARD.for_:g}s; fault: latency {FAULT_MS:g}ms on {TARGET.service} -> "
          f"{TARGET.dependency}; scrape {scrape:g}s, guard interval "
          f"{environment.guard_interval:g}s", flush=True)
    async with httpx.AsyncClient(base_url=state.loadgen_url, trust_env=False,
                                 timeout=5) as load:
        with Prometheus.from_settings(environment.prometheus, environment.guard_interval) as prom, \
                ProxyDriver.from_endpoint(endpoint) as driver, \
                Journal(folder / "journal.jsonl") as journal, \
                RulePoller(endpoint.admin_url, token) as poller:
            b = Bench(run=run, folder=folder, guard=guard, scrape=scrape,
                      interval=environment.guard_interval, stale=stale_bound(scrape),
                      prom=prom, driver=driver, journal=journal, load=load, poller=poller,
                      peer=peer)
            await settle(b, timeout=120)
            normal_ms = await typical_ms(load)
            b.slow_ms = normal_ms + FAULT_MS / 2
            print(f"normal request {normal_ms:.1f}ms; slowed: >= {b.slow_ms:.0f}ms", flush=True)
            cycle = await fifty_guards(prom, environment, catalog.signals, TARGET)
            print(f"50 guards: slowest round {cycle:.3f}s", flush=True)
            done: list[Trip] = []
            for number in range(1, trips + 1):
                for one in (gameday_trip, peer_trip):
                    done.append(await trip_again(b, number, one))
            left = await faults_left(state, token)
            print(f"journal and peer runs: {folder}", flush=True)
    ours = [t for t in done if t.tool == "gameday"]
    theirs = [t for t in done if t.tool != "gameday"]
    clean = spread([t.gone - t.onset for t in ours])
    peer_clean = spread([t.gone - t.onset for t in theirs])
    return {
        "scrape_interval_s": scrape,
        "guard_interval_s": b.interval,
        "guard_expr": guard.query,
        "guard": f"{GUARD_NAME} {GUARD.op} {GUARD.threshold:g} for {GUARD.for_:g}s",
        "fault": f"latency {FAULT_MS:g}ms",
        "peer": "chaostoolkit 1.19.0, safeguards probe every 1s, --rollback-strategy=always",
        "trips": len(ours),
        "onset_to_detect_s": spread([t.detected - t.onset for t in ours if t.detected]),
        "where_time_goes_s": where_time_goes(ours),
        "detect_to_revert_s": spread([t.reverted - t.detected for t in ours
                                      if t.reverted and t.detected]),
        "onset_to_clean_s": clean,
        "client_clean_s": spread([t.clean - t.onset for t in ours]),
        "peer_onset_to_clean_s": peer_clean,
        "peer_client_clean_s": spread([t.clean - t.onset for t in theirs]),
        "ratio_vs_peer": ratio(clean["median"], peer_clean["median"]),
        "onset_phase_ks": {"gameday": round(uniformity([t.phase for t in ours]), 3),
                           "peer": round(uniformity([t.phase for t in theirs]), 3)},
        "peer_start_s": round(statistics.median(b.peer_starts), 3),
        "guards_50_cycle_s": round(cycle, 3),
        "guard_query_rate_hz": round(b.sampler.calls / b.guard_seconds, 2),
        "faults_left": left,
    }


async def trip_again(b: Bench, number: int,
                     one: Callable[[Bench, int], Awaitable[Trip | str]]) -> Trip:
    """One trip of one tool; again (a few times) when it stopped before its fault began."""
    for _ in range(RETRIES):
        await settle(b, timeout=60)
        trip = await one(b, number)
        if isinstance(trip, Trip):
            print(f"trip {number:2d} {trip}", flush=True)
            return trip
        print(f"trip {number:2d} again: {trip}", flush=True)
    raise SystemExit(f"trip {number}: stopped before its fault {RETRIES} times")


async def gameday_trip(b: Bench, number: int) -> Trip | str:
    """Hold, apply the fault at a random point of the scrape cycle, revert on the breach."""
    labels = Labels(run=b.run, scenario="bench-guard", environment="demo", step=number)
    spec = FaultSpec(fault=LatencyFault(ms=FAULT_MS), target=TARGET, labels=labels)
    last = await last_scrape(b)
    at = onset_time(last, b.scrape, time.time() + HOLD_LEAD, random.random() * b.scrape)
    judged: list[tuple[Sample, Verdict]] = []
    journal_it = b.journal.guard_recorder(number)

    def record(guard: GuardQuery, sample: Sample, verdict: Verdict) -> None:
        judged.append((sample, verdict))
        journal_it(guard, sample, verdict)

    watching = asyncio.create_task(hold(60, [b.guard], b.interval, sampler=b.sampler,
                                        stale_after=b.stale, record=record,
                                        scrape_interval=b.scrape))
    await asyncio.sleep(max(0.0, at - time.time()))
    if watching.done():
        # Stopped before the fault (a noisy neighbour slowed the service): not a trip.
        return f"the guard stopped before the onset: {watching.result().summary}"
    b.journal.write(FaultIntentEvent(driver=b.driver.kind, endpoint=b.driver.admin_url,
                                     labels=labels, fault=spec.fault.summary(),
                                     expires_at=time.time() + TTL))
    applied_at = time.time()
    handle = await asyncio.to_thread(b.driver.apply, spec, TTL)
    b.journal.write(FaultAppliedEvent(handle=handle))
    try:
        result = await watching
    finally:
        # Revert at once, on the loop: nothing else needs it now.
        b.driver.revert(handle)
        reverted_at = time.time()
        b.journal.write(FaultRevertedEvent(driver=b.driver.kind, endpoint=b.driver.admin_url,
                                           labels=labels, handle=handle))
    b.journal.write(HoldEndedEvent(severity=number, result=result))
    b.guard_seconds += result.ended - result.started
    if result.breached_at is None or result.verdict is None:
        raise SystemExit(f"trip {number}: the guard never stopped the hold: {result.summary}")
    gone = await b.poller.wait_gone(handle.id, timeout=10)
    onset, clean = await client_view(b.load, applied_at, gone, b.slow_ms)
    first, breach = streak_scrapes(judged)
    cut = None if first is None or breach is None else Cut(
        first - onset, breach - first, result.breached_at - breach, gone - result.breached_at)
    return Trip("gameday", onset, gone, clean, phase(onset, last, b.scrape),
                detected=result.breached_at, reverted=reverted_at, note=result.verdict.state,
                cut=cut)


def streak_scrapes(judged: list[tuple[Sample, Verdict]]) -> tuple[float | None, float | None]:
    """Scrape timestamps of the first and last sample of the streak that ended the hold."""
    streak: list[float | None] = []
    for sample, verdict in reversed(judged):
        if not (verdict.state == "breached" or verdict.pending):
            break
        streak.append(sample.sample_time)
    return (streak[-1], streak[0]) if streak else (None, None)


def where_time_goes(trips: list[Trip]) -> dict[str, dict[str, float]]:
    """gameday's onset → gone cut into its parts (see ``Cut``): median, p90 and max of each."""
    cuts = [t.cut for t in trips if t.cut is not None]
    return {name.rstrip("_"): spread([getattr(c, name) for c in cuts])
            for name in Cut.__dataclass_fields__}


async def peer_trip(b: Bench, number: int) -> Trip | str:
    """One ``chaos run`` whose PUT lands at a random point of the scrape cycle."""
    rule_id = f"{b.run}-ctk-{number}"
    # The delay is counted from the process start, so the CLI's own start-up is taken off
    # (estimated from earlier trips). Its variation only shifts a uniform point of the cycle,
    # which leaves it uniform; the trip's phase is taken from the client-side onset anyway.
    start = statistics.median(b.peer_starts) if b.peer_starts else PEER_START_GUESS
    last = await last_scrape(b)
    at = onset_time(last, b.scrape, time.time() + start + PEER_MIN_PAUSE,
                    random.random() * b.scrape)
    delay = at - time.time() - start
    ran = await run_peer(b.peer, b.folder / "ctk" / f"trip-{number:02d}", rule_id,
                         f"{b.run}-ctk", delay)
    seen = b.poller.appeared(rule_id)
    if seen is None:
        # Its safeguard stopped the run before the PUT (or the run failed: see its log).
        return f"the peer never PUT its rule (exit {ran.exit_code}, see {ran.folder})"
    gone = await b.poller.wait_gone(rule_id, timeout=10)
    b.peer_starts.append(seen[1] - ran.started_at - ran.onset_delay)
    onset, clean = await client_view(b.load, seen[0], gone, b.slow_ms)
    return Trip("chaostoolkit", onset, gone, clean, phase(onset, last, b.scrape),
                note=f"{ran.status}, PUT {b.peer_starts[-1]:.2f}s after start-up")


async def last_scrape(b: Bench) -> float:
    """Prometheus' timestamp of the target's newest scrape (the guard's freshness query)."""
    assert b.guard.freshness is not None, "the guard reads no series"
    found = await b.prom.value(b.guard.freshness)
    if found is None:
        raise SystemExit(f"no scrape of the guard's inputs: {b.guard.freshness}")
    return found


async def settle(b: Bench, timeout: float) -> None:
    """Wait until the proxy lists no rule and the guard is clear on three samples in a row."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        sample = await b.prom.sample(b.guard)
        verdict = judge(b.guard.name, b.guard.guard, [sample], stale_after=b.stale)
        streak = streak + 1 if verdict.clear and not b.poller.listed() else 0
        if streak >= 3:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the guard did not settle within {timeout:g}s: {verdict.summary}; "
                     f"rules on the proxy: {sorted(b.poller.listed()) or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
