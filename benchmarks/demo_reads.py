"""What the benchmark reads off the demo stack: the load generator's samples, the proxies' rules."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from benchmarks.guard_timing import first_run
from gameday.demo.state import StackState


async def client_view(load: httpx.AsyncClient, applied_at: float, gone_at: float,
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
        if clean is not None and clean >= gone_at - 1.0:
            return onset, clean
    raise SystemExit(f"the load generator saw no clear onset and clean around {applied_at:.3f}")


async def typical_ms(load: httpx.AsyncClient) -> float:
    """Median client-side duration of the last few seconds of requests."""
    answer = await load.get("/samples", params={"since": time.time() - 5})
    times = [float(s["ms"]) for s in answer.json()["samples"] if s["code"] == "200"]
    if len(times) < 10:
        raise SystemExit("the load generator is not sending requests")
    return statistics.median(times)


async def faults_left(state: StackState, token: str) -> int:
    """Rules still in place on either proxy of the demo, whoever put them there."""
    left = 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                 trust_env=False, timeout=5) as client:
        for admin in state.proxy_admin_urls.values():
            answer = await client.get(f"{admin}/rules")
            answer.raise_for_status()
            left += len(answer.json()["rules"])
    return left
