"""Redis for the demo: the profile cache, small enough that it really evicts.

``maxmemory`` is below what the load generator's key space needs (20 000 profiles), with
``allkeys-lru``, so a steady share of reads miss and fall back to PostgreSQL, and the evictions
show in redis_exporter's ``redis_evicted_keys_total``. Nothing is persisted: the cache starts
empty with every stack. The server is pinned to one core (the last), so a ``cpu`` fault pinned
to that core competes with Redis and nothing else.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

from gameday.demo.programs import program

#: Memory Redis may use, its own overhead (about 1 MB) included: room for about half the
#: profiles, so about half the reads hit.
MAXMEMORY = "3700kb"
#: Lifetimes of warmed keys (at most user-service's own), spread so they do not all expire at
#: one moment.
WARM_TTL = (1800, 3600)


def binary() -> str:
    """The ``redis-server`` command, or a ``DemoError`` saying how to install it."""
    return program("redis-server", package="redis-server")


def core() -> int:
    """The core Redis is pinned to: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def argv(port: int, data_dir: Path) -> list[str]:
    """Command line of a Redis on 127.0.0.1:``port``, pinned to :func:`core`."""
    taskset = shutil.which("taskset")
    pin = [taskset, "-c", str(core())] if taskset else []
    return [*pin, binary(), "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(data_dir), "--save", "", "--appendonly", "no",
            "--maxmemory", MAXMEMORY, "--maxmemory-policy", "allkeys-lru",
            "--daemonize", "no", "--loglevel", "warning"]


def warm(port: int, profiles: Iterable[tuple[str, str, str, str]], seed: int = 0) -> None:
    """Fill the cache with ``profiles`` as user-service writes them, so the stack starts at
    its steady hit ratio (and evicting) rather than cold for the first many minutes."""
    import redis  # the demo extra

    from gameday.demo.cache import encode, key_of
    from gameday.demo.database import Profile

    rng = random.Random(seed)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    try:
        with client.pipeline(transaction=False) as pipe:
            for count, row in enumerate(profiles, 1):
                profile = Profile(*row)
                pipe.set(key_of(profile.id), encode(profile), ex=rng.randint(*WARM_TTL))
                if count % 1000 == 0:
                    pipe.execute()
            pipe.execute()
    finally:
        client.close()
