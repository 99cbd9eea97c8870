"""Wiring of the proxy process: listeners, rule store, timers, signals, event loop.

``host`` is shared by both modes: each mode's ``serve`` builds its data plane and hands it over
as a :class:`Plane`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import secrets
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from gameday import tracing
from gameday.errors import ConfigError, InjectorError
from gameday.injector.proxy.admin import AdminAPI
from gameday.injector.proxy.dataplane import DataPlane
from gameday.injector.proxy.http1 import MAX_HEAD
from gameday.injector.proxy.limits import Limits
from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.store import HttpRuleStore, RuleStore, log_event
from gameday.injector.rules import HTTP_RULES, TARGET_PATTERN, RuleFormat

if TYPE_CHECKING:
    from gameday.tracing.faults import FaultSpans


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the proxy process needs; ``token=None`` means no admin auth (loopback only).

    In ``tcp`` mode only ``limits.max_connections`` of the limits applies.
    """

    listen: tuple[str, int]
    upstream: tuple[str, int]
    admin: tuple[str, int]
    max_ttl: float = 3600.0
    target: str = ""
    token: str | None = None
    seed: int | None = None
    limits: Limits = field(default_factory=Limits)
    mode: Literal["http", "tcp"] = "http"

    def __post_init__(self) -> None:
        import re

        if not self.token and not is_loopback(self.admin[0]):
            raise ConfigError(f"--admin {self.admin[0]} is not a loopback address: set a token "
                              "(see --token-env) or bind the admin API to 127.0.0.1")
        if not self.max_ttl > 0:
            raise ConfigError("--max-ttl must be longer than 0s")
        if not re.match(TARGET_PATTERN, self.target):
            raise ConfigError(f"--target {self.target!r}: use letters, digits and ._/:-")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts; other names do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``; ``ConfigError`` naming ``option`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def parse_tcp_upstream(text: str) -> tuple[str, int]:
    """TCP mode's ``--upstream HOST:PORT`` → ``(host, port)``; a URL is a ``ConfigError``."""
    if "/" in text:
        raise ConfigError(f"--upstream {text!r}: expected HOST:PORT in TCP mode, e.g. "
                          "127.0.0.1:5432 (a URL is for HTTP mode)")
    return parse_address(text, "--upstream")


def parse_upstream(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` → ``(host, port)`` (port 80 when left out)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"--upstream {url!r}: expected http://HOST:PORT (plain HTTP/1.1)")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"--upstream {url!r}: give no path; requests keep their own")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ConfigError(f"--upstream {url!r}: invalid port") from exc
    return parts.hostname, port


@dataclass(frozen=True)
class Plane:
    """What a data plane hands the process wiring: its rules, metrics and listener."""

    store: RuleStore[Any]
    metrics: ProxyMetrics
    rules: RuleFormat[Any]
    #: How ``/health`` and the logs name the upstream.
    upstream: str
    #: A protocol object per accepted client connection.
    protocol: Callable[[], asyncio.BaseProtocol]
    close: Callable[[], None]
    #: Runs for as long as the proxy does (the idle sweep), if the plane has such work.
    background: Callable[[], Coroutine[Any, Any, None]] | None = None


def traced(injector: str, metrics: ProxyMetrics) -> FaultSpans | None:
    """Spans for this proxy's faulted traffic, when its environment names a trace destination
    (``GAMEDAY_TRACE_DIR``, ``OTEL_EXPORTER_OTLP_ENDPOINT``); None otherwise, importing nothing
    of OpenTelemetry."""
    if not tracing.wanted():
        return None
    from gameday.tracing.faults import proxy_spans

    spans = proxy_spans(injector, metrics.spans_dropped.inc)
    if spans is not None:
        log_event("tracing", injector=injector, sampler_ratio=spans.ratio)
    return spans


def seed_of(config: ProxyConfig) -> int:
    """The RNG seed: the configured one, or a fresh random one (logged at start)."""
    return config.seed if config.seed is not None else secrets.randbits(32)


async def serve(config: ProxyConfig, stop: asyncio.Event | None = None) -> None:
    """Run the HTTP proxy until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    loop = asyncio.get_running_loop()
    seed = seed_of(config)
    metrics = ProxyMetrics()
    store = HttpRuleStore(loop, metrics)
    plane = DataPlane(loop, config.upstream, store, metrics, random.Random(seed), config.limits,
                      traced("proxy", metrics))

    async def sweep() -> None:
        while True:
            await asyncio.sleep(plane.sweep_every)
            plane.sweep()

    await host(config, Plane(store, metrics, HTTP_RULES, plane.upstream_url, plane.protocol,
                             plane.close, sweep), seed, stop)


async def host(config: ProxyConfig, plane: Plane, seed: int,
               stop: asyncio.Event | None = None) -> None:
    """Serve ``plane`` on ``--listen`` and its admin API on ``--admin`` until ``stop``."""
    loop = asyncio.get_running_loop()
    admin = AdminAPI(plane.store, plane.metrics, rules=plane.rules, token=config.token,
                     max_ttl=config.max_ttl, target=config.target, upstream=plane.upstream)
    try:
        data_server = await loop.create_server(plane.protocol, *config.listen,
                                               backlog=min(4096, config.limits.max_connections),
                                               reuse_address=True)
        admin_server = await asyncio.start_server(admin.serve, *config.admin, limit=MAX_HEAD,
                                                  reuse_address=True)
    except OSError as exc:
        raise InjectorError(f"cannot listen: {exc}") from exc
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    listen_port = data_server.sockets[0].getsockname()[1]
    admin_port = admin_server.sockets[0].getsockname()[1]
    log_event("listening", mode=plane.rules.protocol,
              listen=f"{config.listen[0]}:{listen_port}",
              admin=f"{config.admin[0]}:{admin_port}", upstream=plane.upstream,
              target=config.target, max_ttl=config.max_ttl, seed=seed, auth=bool(config.token),
              loop=type(loop).__module__.split(".")[0])
    background = loop.create_task(plane.background()) if plane.background else None
    try:
        await stop.wait()
    finally:
        if background is not None:
            background.cancel()
        data_server.close()
        admin_server.close()
        plane.store.close()
        plane.close()
        log_event("stopped")


def raise_fd_limit(wanted: int = 65536) -> None:
    """Raise the open-file limit toward ``wanted``: each proxied connection needs two."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(config: ProxyConfig,
        serve_with: Callable[[ProxyConfig], Coroutine[Any, Any, None]] = serve) -> None:
    """Run the proxy in this process (uvloop when installed) until a signal stops it.

    ``serve_with`` is the mode's ``serve`` (HTTP's here, TCP's in ``gameday.injector.tcp``).
    """
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(serve_with(config))
        return
    uvloop.run(serve_with(config))
