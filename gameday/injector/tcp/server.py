"""TCP mode's process: the data plane under the wiring both modes share."""

from __future__ import annotations

import asyncio
import random

from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.server import Plane, ProxyConfig, host, seed_of, traced
from gameday.injector.proxy.server import run as run_proxy
from gameday.injector.proxy.store import RuleStore
from gameday.injector.tcp.plane import TcpPlane
from gameday.injector.tcp.rules import TCP_RULES, TcpRule


async def serve(config: ProxyConfig, stop: asyncio.Event | None = None) -> None:
    """Run the TCP proxy until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    loop = asyncio.get_running_loop()
    seed = seed_of(config)
    metrics = ProxyMetrics(http=False)
    store: RuleStore[TcpRule] = RuleStore(loop, metrics)
    plane = TcpPlane(loop, config.upstream, store, metrics, random.Random(seed),
                     config.limits.max_connections, traced("proxy-tcp", metrics))
    upstream = f"{config.upstream[0]}:{config.upstream[1]}"
    await host(config, Plane(store, metrics, TCP_RULES, upstream, plane.protocol, plane.close),
               seed, stop)


def run(config: ProxyConfig) -> None:
    """Run the TCP proxy in this process (uvloop when installed) until a signal stops it."""
    run_proxy(config, serve)
