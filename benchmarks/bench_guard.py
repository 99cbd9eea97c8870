"""How fast guards notice a fault and the kit removes it, timed from the client's side.

On the demo stack (no Prefect): apply a latency rule through the proxy driver that breaks a
stated guard, hold with a 1 s guard interval, revert on the breach; repeat. The load
generator's per-request samples give the times: fault onset is the start of the first request
it saw slowed, clean the start of the first request it saw normal again (each the first of a
run, so one stray request under a busy CPU does not count). Every trip is journaled as a game
day would be. The last line printed is one JSON object.

    make bench-guard                       # starts and stops its own demo stack
    .venv/bin/python benchmarks/bench_guard.py --state .gameday/demo --trips 12
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gameday.demo.stack import UpOptions, down, up
from gameday.demo.state import TOKEN_VARIABLE, StackState, load_state, read_token
from gameday.drivers.proxy import ProxyDriver
from gameday.faults import LatencyFault
from gameday.guards import GuardQuery, Prometheus, guard_query, hold, judge, stale_bound
from gameday.journal import (
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    HoldEndedEvent,
    Journal,
)
from gameday.load import load_default, load_one
from gameday.models import Environment, Guard, SignalTemplate, Target
from gameday.records import FaultSpec, Labels

FAULT_MS = 300.0  # under user-service's 500 ms profile-store timeout: slow, not failing
TARGET = Target(service="user-service", dependency="profile-store")
GUARD_NAME = "latency_p95_ms"
GUARD = Guard.model_validate({"op": ">", "threshold": 200, "for": "1s"})
RUN_LENGTH = 3  # consecutive requests that make an onset (slowed) or a clean (normal)


@dataclass(frozen=True)
class Trip:
    """One fault → detect → revert cycle, in epoch seconds."""

    applied_at: float
    breached_at: float
    reverted_at: float
    onset: float
    clean: float
    state: str

    def __str__(self) -> str:
        return (f"onset->detect {self.breached_at - self.onset:.2f}s  detect->revert "
                f"{self.reverted_at - self.breached_at:.3f}s  onset->clean "
                f"{self.clean - self.onset:.2f}s  ({self.state})")


def main() -> int:
    """Run the benchmark; print progress, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=12, help="fault cycles (at least 10)")
    parser.add_argument("--state", type=Path, help="use the running demo stack in this folder")
    args = parser.parse_args()
    folder = args.state or Path(tempfile.mkdtemp(prefix="bench-guard-"))
    started_stack = args.state is None
    if started_stack:
        print(f"starting the demo stack (no Prefect) in {folder}", flush=True)
        state = up(UpOptions(folder, prefect=False, timeout=120.0))
    else:
        found = load_state(folder)
        if found is None:
            raise SystemExit(f"no demo stack recorded in {folder}: run 'chaosctl demo up' first")
        state = found
    os.environ[TOKEN_VARIABLE] = read_token(folder)
    try:
        result = asyncio.run(bench(state, max(10, args.trips)))
    finally:
        if started_stack:
            down(folder)
    print(json.dumps(result), flush=True)
    return 0 if result["faults_left"] == 0 else 1


async def bench(state: StackState, trips: int) -> dict[str, Any]:
    """Measure ``trips`` cycles and one round of 50 guards."""
    environment = load_one(Environment, state.environment_file)
    catalog = load_default()
    window = environment.prometheus.window
    guard = guard_query(GUARD_NAME, GUARD, TARGET, window, catalog.signals)
    interval = environment.guard_interval
    stale = stale_bound(environment.prometheus.scrape_interval)
    endpoint = environment.endpoint_for(TARGET)
    assert endpoint is not None, "the demo environment has no endpoint for profile-store"
    print(f"guard {GUARD_NAME}: {guard.query}  {GUARD.op} {GUARD.threshold:g} "
          f"for {GUARD.for_:g}s", flush=True)
    print(f"fault: latency {FAULT_MS:g}ms on {TARGET.service} -> {TARGET.dependency}, "
          f"guard interval {interval:g}s", flush=True)
    run = f"bench-{int(time.time())}"
    journal_path = state.folder / f"{run}.jsonl"
    async with httpx.AsyncClient(base_url=state.loadgen_url, trust_env=False,
                                 timeout=5) as load:
        with Prometheus.from_settings(environment.prometheus, interval) as prom, \
                ProxyDriver.from_endpoint(endpoint) as driver, Journal(journal_path) as journal:
            await settle(prom, guard, stale, timeout=120)
            normal_ms = await typical_ms(load)
            slow_ms = normal_ms + FAULT_MS / 2
            print(f"normal request {normal_ms:.1f}ms; slowed: >= {slow_ms:.0f}ms", flush=True)
            cycle = await fifty_guards(prom, environment, catalog.signals)
            print(f"50 guards: slowest round {cycle:.3f}s", flush=True)
            done: list[Trip] = []
            for number in range(1, trips + 1):
                await settle(prom, guard, stale, timeout=60)
                trip = await one_trip(number, run, guard, prom, driver, journal, load,
                                      interval, stale, slow_ms)
                done.append(trip)
                print(f"trip {number:2d}: {trip}", flush=True)
            left = len(driver.active())
    print(f"journal: {journal_path}", flush=True)
    return {
        "scrape_interval_s": environment.prometheus.scrape_interval,
        "guard_interval_s": interval,
        "guard_expr": guard.query,
        "guard_for_s": GUARD.for_,
        "guard": f"{GUARD_NAME} {GUARD.op} {GUARD.threshold:g} for {GUARD.for_:g}s",
        "fault": f"latency {FAULT_MS:g}ms",
        "trips": len(done),
        "onset_to_detect_s": spread([t.breached_at - t.onset for t in done]),
        "detect_to_revert_s": spread([t.reverted_at - t.breached_at for t in done]),
        "onset_to_clean_s": spread([t.clean - t.onset for t in done]),
        "guards_50_cycle_s": round(cycle, 3),
        "faults_left": left,
    }


async def one_trip(number: int, run: str, guard: GuardQuery, prom: Prometheus,
                   driver: ProxyDriver, journal: Journal, load: httpx.AsyncClient,
                   interval: float, stale: float, slow_ms: float) -> Trip:
    """Apply the fault mid-hold, revert on the breach, then read the client's samples."""
    labels = Labels(run=run, scenario="bench-guard", environment="demo", step=number)
    spec = FaultSpec(fault=LatencyFault(ms=FAULT_MS), target=TARGET, labels=labels)
    ttl = 30.0
    watching = asyncio.create_task(hold(60, [guard], interval, sampler=prom, stale_after=stale,
                                        record=journal.guard_recorder(number)))
    # Onset lands anywhere between two guard evaluations.
    await asyncio.sleep(random.uniform(0.5, 0.5 + interval))
    journal.write(FaultIntentEvent(driver=driver.kind, endpoint=driver.admin_url, labels=labels,
                                   fault=spec.fault.summary(), expires_at=time.time() + ttl))
    applied_at = time.time()
    handle = await asyncio.to_thread(driver.apply, spec, ttl)
    journal.write(FaultAppliedEvent(handle=handle))
    try:
        result = await watching
    finally:
        # Revert at once, on the loop: nothing else needs it now.
        driver.revert(handle)
        reverted_at = time.time()
        journal.write(FaultRevertedEvent(driver=driver.kind, endpoint=driver.admin_url,
                                         labels=labels, handle=handle))
    journal.write(HoldEndedEvent(severity=number, result=result))
    if result.breached_at is None or result.verdict is None:
        raise SystemExit(f"trip {number}: the guard never stopped the hold: {result.summary}")
    onset, clean = await client_view(load, applied_at, reverted_at, slow_ms)
    return Trip(applied_at, result.breached_at, reverted_at, onset, clean, result.verdict.state)


async def client_view(load: httpx.AsyncClient, applied_at: float, reverted_at: float,
                      slow_ms: float) -> tuple[float, float]:
    """Start of the first slowed request, and of the first normal one after the fault."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        answer = await load.get("/samples", params={"since": applied_at - 1.0})
        samples = sorted(answer.json()["samples"], key=lambda s: s["t"])
        slowed = [s["ms"] >= slow_ms or s["code"] != "200" for s in samples]
        onset = first_run(samples, slowed, True, after=applied_at - 1.0)
        if onset is None:
            continue
        clean = first_run(samples, slowed, False, after=onset)
        if clean is not None and clean >= reverted_at - 1.0:
            return onset, clean
    raise SystemExit(f"the load generator saw no clear onset and clean around {applied_at:.3f}")


def first_run(samples: list[dict[str, Any]], slowed: list[bool], want: bool,
              after: float) -> float | None:
    """Start time of the first request that begins ``RUN_LENGTH`` in a row with ``want``."""
    for index in range(len(samples) - RUN_LENGTH + 1):
        if samples[index]["t"] < after:
            continue
        if all(slowed[index + k] == want for k in range(RUN_LENGTH)):
            return float(samples[index]["t"])
    return None


async def settle(prom: Prometheus, guard: GuardQuery, stale: float, timeout: float) -> None:
    """Wait until the guard has been met on three samples in a row (the window is clear)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        sample = await prom.sample(guard)
        verdict = judge(guard.name, guard.guard, [sample], stale_after=stale)
        streak = streak + 1 if verdict.clear else 0
        if streak >= 3:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the guard did not settle within {timeout:g}s: {verdict.summary}")


async def typical_ms(load: httpx.AsyncClient) -> float:
    """Median client-side duration of the last few seconds of requests."""
    answer = await load.get("/samples", params={"since": time.time() - 5})
    times = [float(s["ms"]) for s in answer.json()["samples"] if s["code"] == "200"]
    if len(times) < 10:
        raise SystemExit("the load generator is not sending requests")
    return statistics.median(times)


async def fifty_guards(prom: Prometheus, environment: Environment,
                       templates: Mapping[str, SignalTemplate]) -> float:
    """Slowest of ten rounds of 50 guards sampled in parallel (the catalog's templates)."""
    guards: list[GuardQuery] = []
    names = sorted(templates)
    for index in range(50):
        name = names[index % len(names)]
        never = Guard.model_validate({"query": templates[name].query, "op": ">",
                                      "threshold": 1e12})
        guards.append(guard_query(f"{name}-{index}", never, TARGET,
                                  environment.prometheus.window, templates))
    slowest = 0.0
    for _ in range(10):
        began = time.perf_counter()
        samples = await asyncio.gather(*(prom.sample(g) for g in guards))
        slowest = max(slowest, time.perf_counter() - began)
        failed = [s.error for s in samples if s.error]
        if failed:
            raise SystemExit(f"{len(failed)} of 50 guard queries failed: {failed[0]}")
        await asyncio.sleep(max(0.0, environment.guard_interval - slowest))
    return slowest


def spread(values: list[float]) -> dict[str, float]:
    """Median and max, rounded to milliseconds."""
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


if __name__ == "__main__":
    sys.exit(main())
