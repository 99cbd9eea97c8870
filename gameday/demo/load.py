"""The demo's load generator: an open model, measured from the client's side.

Requests leave on a fixed schedule (``rate`` per second) whether or not earlier ones returned,
as real users would keep arriving; a closed loop would slow down with the service and hide
the fault. Each request's start, duration and outcome is kept in a ring buffer served at
``/samples`` (and optionally appended to a JSONL file), so a benchmark can find the first
request that a fault slowed down and the first that was normal again.

Users are drawn uniformly from ``1..users``; the default key space is larger than the demo's
Redis may hold, so the cache evicts and misses keep reaching the database.

Routes: ``/metrics``, ``/health``, ``GET /samples?since=UNIX_TS&limit=N``, ``GET|PUT /rate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gameday.demo import traces
from gameday.demo.auth import issue_token
from gameday.demo.metrics import BUCKETS, metrics_route
from gameday.demo.web import error_response, json_response, plain_app

#: Requests outstanding at once before new ones are dropped (and counted as ``dropped``).
MAX_IN_FLIGHT = 2000
#: Samples kept for ``/samples`` (about 15 minutes at 20 requests per second).
SAMPLES_KEPT = 20_000
#: Users requests are spread over: more profiles than the demo's Redis has memory for.
USERS = 20_000


@functools.lru_cache(maxsize=USERS)
def _authorization(user: str) -> str:
    # Signed when first drawn, so a large key space costs nothing at start.
    return f"Bearer {issue_token(user)}"


class LoadGenerator:
    """Sends ``GET /users/{id}`` to ``target`` at ``rate`` requests per second."""

    def __init__(self, target: str, rate: float = 20.0, users: int = USERS,
                 timeout: float = 10.0, record: Path | None = None,
                 rng: random.Random | None = None) -> None:
        self.target = target.rstrip("/")
        self.rate = rate
        self.users = users
        self.timeout = timeout
        self.samples: deque[dict[str, Any]] = deque(maxlen=SAMPLES_KEPT)
        self._record: IO[str] | None = record.open("a", encoding="utf-8") if record else None
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "loadgen_requests", "Requests sent, by outcome: HTTP status, timeout, error, dropped.",
            ["code"], registry=self.registry)
        self.duration = Histogram(
            "loadgen_request_duration_seconds", "Client-side time until the answer arrived.",
            buckets=BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "loadgen_in_flight_requests", "Requests sent and not yet answered.",
            registry=self.registry)
        self.target_rate = Gauge(
            "loadgen_target_rate", "Requests per second the generator aims at.",
            registry=self.registry)
        self.target_rate.set_function(lambda: self.rate)
        self.client = httpx.AsyncClient(
            trust_env=False, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64))
        # Each request's client span is the root of its trace: the sampling decision is made
        # here (OTEL_TRACES_SAMPLER_ARG) and every service downstream follows it.
        traces.instrument_httpx(self.client)

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the target's ``/ready`` answers 200, so load starts on a working stack."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError), traces.untraced():
                if (await self.client.get(f"{self.target}/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        """Send requests on schedule until cancelled."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if self.rate <= 0:
                await asyncio.sleep(0.2)
                due = loop.time()
                continue
            due += 1.0 / self.rate
            now = loop.time()
            if due < now - 1.0:
                # The process was starved for over a second: start afresh instead of
                # firing the missed requests in one burst.
                due = now
            await asyncio.sleep(max(0.0, due - now))
            if len(self._tasks) >= MAX_IN_FLIGHT:
                self.requests.labels("dropped").inc()
                continue
            task = asyncio.create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self) -> None:
        user = str(self._rng.randint(1, self.users))
        wall = time.time()
        started = time.perf_counter()
        self.in_flight.inc()
        try:
            response = await self.client.get(f"{self.target}/users/{user}",
                                             headers={"authorization": _authorization(user)})
            code = str(response.status_code)
        except httpx.TimeoutException:
            code = "timeout"
        except httpx.HTTPError:
            code = "error"
        finally:
            self.in_flight.dec()
        elapsed = time.perf_counter() - started
        self.duration.observe(elapsed)
        self.requests.labels(code).inc()
        sample = {"t": round(wall, 6), "ms": round(elapsed * 1000, 3), "code": code}
        self.samples.append(sample)
        if self._record is not None:
            self._record.write(json.dumps(sample) + "\n")
            self._record.flush()

    @property
    def outstanding(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._tasks)

    def recent(self, since: float = 0.0, limit: int = SAMPLES_KEPT) -> list[dict[str, Any]]:
        """Samples of requests started after ``since`` (unix seconds), oldest first."""
        # The ring holds samples in the order requests finished; a slow request started
        # before a fast one that overtook it, so sort by start before cutting to ``limit``.
        found = sorted((s for s in self.samples if s["t"] > since), key=lambda s: s["t"])
        return found[-limit:] if limit > 0 else []

    async def close(self) -> None:
        """Stop sending, close connections and the record file."""
        for task in list(self._tasks):
            task.cancel()
        await self.client.aclose()
        if self._record is not None:
            self._record.close()


def load_app(generator: LoadGenerator) -> Starlette:
    """The load generator's control and metrics routes; load runs while the server does."""

    async def samples(request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "0"))
            limit = int(request.query_params.get("limit", str(SAMPLES_KEPT)))
        except ValueError:
            return error_response(400, "since and limit must be numbers")
        return json_response({"samples": generator.recent(since, limit)})

    async def rate(request: Request) -> Response:
        if request.method == "GET":
            return json_response({"rate": generator.rate})
        try:
            value = float((await request.json())["rate"])
        except (ValueError, KeyError, TypeError):
            return error_response(400, 'body must be {"rate": requests_per_second}')
        if not 0 <= value <= 1000:
            return error_response(400, "rate must be within 0..1000 requests per second")
        generator.rate = value
        return json_response({"rate": value})

    async def load() -> None:
        await generator.wait_ready()
        await generator.run()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runner = asyncio.create_task(load())
        try:
            yield
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await generator.close()

    return plain_app([metrics_route(generator.registry),
                      Route("/samples", samples, methods=["GET"]),
                      Route("/rate", rate, methods=["GET", "PUT"])], lifespan)
