"""Debian's Prometheus exporters for the demo's PostgreSQL and Redis.

They read the servers directly, not through the fault proxies, so a fault on the cache or
the database shows in the services' metrics without blinding the exporters.
"""

from __future__ import annotations

from gameday.demo.programs import program

POSTGRES = "prometheus-postgres-exporter"
REDIS = "prometheus-redis-exporter"


def binary(name: str) -> str:
    """The exporter's command, or a ``DemoError`` saying how to install it."""
    return program(name, package=name)


def postgres_argv(port: int) -> list[str]:
    """postgres_exporter on 127.0.0.1:``port``; its DSN comes from ``DATA_SOURCE_NAME``."""
    return [binary(POSTGRES), f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]


def redis_argv(port: int, redis_port: int) -> list[str]:
    """redis_exporter on 127.0.0.1:``port``, reading the Redis on ``redis_port``."""
    return [binary(REDIS), f"--web.listen-address=127.0.0.1:{port}",
            f"--redis.addr=redis://127.0.0.1:{redis_port}", "--log-format=txt"]
