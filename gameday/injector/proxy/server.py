"""Wiring of the proxy process: listeners, rule store, timers, signals, event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import secrets
import signal
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gameday.errors import ConfigError, InjectorError
from gameday.injector.proxy.admin import AdminAPI
from gameday.injector.proxy.dataplane import DataPlane
from gameday.injector.proxy.http1 import MAX_HEAD
from gameday.injector.proxy.limits import Limits
from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.store import RuleStore, log_event
from gameday.injector.rules import TARGET_PATTERN


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the proxy process needs; ``token=None`` means no admin auth (loopback only)."""

    listen: tuple[str, int]
    upstream: tuple[str, int]
    admin: tuple[str, int]
    max_ttl: float = 3600.0
    target: str = ""
    token: str | None = None
    seed: int | None = None
    limits: Limits = field(default_factory=Limits)

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


async def serve(config: ProxyConfig, stop: asyncio.Event | None = None) -> None:
    """Run the proxy until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    loop = asyncio.get_running_loop()
    seed = config.seed if config.seed is not None else secrets.randbits(32)
    metrics = ProxyMetrics()
    store = RuleStore(loop, metrics)
    plane = DataPlane(loop, config.upstream, store, metrics, random.Random(seed), config.limits)
    upstream = f"http://{config.upstream[0]}:{config.upstream[1]}"
    admin = AdminAPI(store, metrics, token=config.token, max_ttl=config.max_ttl,
                     target=config.target, upstream=upstream)
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
    log_event("listening", listen=f"{config.listen[0]}:{listen_port}",
              admin=f"{config.admin[0]}:{admin_port}", upstream=upstream, target=config.target,
              max_ttl=config.max_ttl, seed=seed, auth=bool(config.token),
              loop=type(loop).__module__.split(".")[0])

    async def sweep() -> None:
        while True:
            await asyncio.sleep(plane.sweep_every)
            plane.sweep()

    sweeper = loop.create_task(sweep())
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        data_server.close()
        admin_server.close()
        store.close()
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


def run(config: ProxyConfig) -> None:
    """Run the proxy in this process (uvloop when installed) until a signal stops it."""
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(serve(config))
        return
    uvloop.run(serve(config))
