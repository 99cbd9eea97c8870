"""Guard queries as the benchmark counts and loads them: a counting sampler, 50 guards at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from gameday.guards import GuardQuery, Prometheus, Sample, guard_query
from gameday.models import Environment, Guard, SignalTemplate, Target


class CountingSampler:
    """A ``Sampler`` that counts the samples a hold takes (each: the guard's query, and its
    freshness query when the answer has a value)."""

    def __init__(self, inner: Prometheus) -> None:
        self.inner = inner
        self.calls = 0

    async def sample(self, guard: GuardQuery) -> Sample:
        """One sample of ``guard``, counted."""
        self.calls += 1
        return await self.inner.sample(guard)


async def fifty_guards(prom: Prometheus, environment: Environment,
                       templates: Mapping[str, SignalTemplate], target: Target) -> float:
    """Slowest of ten rounds of 50 guards sampled in parallel (the catalog's templates)."""
    guards: list[GuardQuery] = []
    names = sorted(templates)
    for index in range(50):
        name = names[index % len(names)]
        never = Guard.model_validate({"query": templates[name].query, "op": ">",
                                      "threshold": 1e12})
        guards.append(guard_query(f"{name}-{index}", never, target,
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
