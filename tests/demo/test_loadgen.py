"""The load generator on uvicorn: its open model and its control routes."""

from __future__ import annotations

import asyncio

import httpx
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gameday.demo.load import LoadGenerator, load_app
from tests.demo.servers import eventually, serving


def test_load_leaves_on_schedule_while_answers_lag() -> None:
    """Open model: against a 1 s target, 0.5 s at 40 req/s still sends about 20 requests;
    /rate reads and sets the rate; /samples and /metrics show the answers."""

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] != "/ready":
                await asyncio.sleep(1.0)
            await JSONResponse({})(scope, receive, send)

    async def main() -> None:
        async with serving(slow) as target, httpx.AsyncClient(trust_env=False) as client:
            generator = LoadGenerator(target, rate=40)
            async with serving(load_app(generator)) as url:
                await eventually(lambda: generator.outstanding > 0)
                await asyncio.sleep(0.5)
                assert 12 <= generator.outstanding <= 24
                await asyncio.sleep(1.2)
                assert (await client.get(f"{url}/rate")).json() == {"rate": 40}
                assert (await client.put(f"{url}/rate", json={"rate": 0})).json() == {"rate": 0}
                assert (await client.put(f"{url}/rate", json={"rate": -1})).status_code == 400
                assert (await client.put(f"{url}/rate", content=b"x")).status_code == 400
                await eventually(lambda: generator.outstanding == 0)
                samples = (await client.get(f"{url}/samples?since=0")).json()["samples"]
                assert (await client.get(f"{url}/samples?limit=2")).json()["samples"] == \
                    samples[-2:]
                assert (await client.get(f"{url}/samples?since=x")).status_code == 400
                metrics = (await client.get(f"{url}/metrics")).text
        assert len(samples) >= 15
        assert all(s["code"] == "200" and s["ms"] >= 1000 for s in samples)
        assert samples == sorted(samples, key=lambda s: s["t"])
        assert "loadgen_request_duration_seconds_bucket" in metrics
        assert generator.users == 20_000

    asyncio.run(main())
