"""Real PostgreSQL and Redis for the demo services' tests, started the way the stack starts them.

Both use ``gameday.demo.postgres`` and ``gameday.demo.redis_server``, so these tests run the
kit's own initdb, server settings and seeding. Each lives in a fresh folder that the
``postgres`` user can enter (a pytest folder is mode 0700) and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gameday import procs
from gameday.demo import postgres as pg
from gameday.demo import redis_server as redis_part

#: Profiles the test database holds: ids "1".."200".
TEST_USERS = 200


@dataclass(frozen=True)
class RunningPostgres:
    """A running demo cluster."""

    cluster: pg.Cluster
    pid: int

    @property
    def port(self) -> int:
        """Its loopback port."""
        return self.cluster.port

    @property
    def password(self) -> str:
        """Role ``gameday``'s password."""
        return self.cluster.password

    def dsn(self, database: str) -> str:
        """A URL for ``database`` without the password (give it as ``PGPASSWORD``)."""
        return self.cluster.dsn(database)


@dataclass(frozen=True)
class RunningRedis:
    """A running demo Redis."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def enterable_folder() -> Iterator[Path]:
    """A fresh folder the ``postgres`` user can enter, removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="gameday-demo-test-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server_folder() -> Iterator[Path]:
    """A folder for a module's PostgreSQL and Redis."""
    with enterable_folder() as folder:
        yield folder


@pytest.fixture
def state_folder() -> Iterator[Path]:
    """A demo state folder where the cluster stays inside, as in a checkout."""
    with enterable_folder() as folder:
        yield folder


@pytest.fixture(scope="module")
def postgres(server_folder: Path) -> Iterator[RunningPostgres]:
    """The demo's PostgreSQL with ``profiles`` seeded with ``TEST_USERS`` profiles."""
    cluster = pg.init(server_folder)
    assert not cluster.moved, cluster.moved
    cluster = dataclasses.replace(cluster, port=procs.free_port())
    log = server_folder / "postgres.log"
    process = procs.start(pg.server_argv(cluster), log=log)
    try:
        deadline = time.monotonic() + 60
        while not pg.ready(cluster):
            assert procs.alive(process.pid), log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        pg.prepare(cluster, users=TEST_USERS)
        yield RunningPostgres(cluster, process.pid)
    finally:
        procs.stop(process.pid)


@pytest.fixture(scope="module")
def redis_server(server_folder: Path) -> Iterator[RunningRedis]:
    """The demo's Redis (maxmemory, LRU, pinned to one core)."""
    port = procs.free_port()
    data = server_folder / "redis"
    data.mkdir()
    process = procs.start(redis_part.argv(port, data), log=server_folder / "redis.log")
    try:
        procs.wait_until(lambda: procs.port_open(port), 30, what="redis-server")
        yield RunningRedis(port, process.pid)
    finally:
        procs.stop(process.pid)
