"""Real upstreams for the TCP mode's tests: the echo upstream, redis-server and PostgreSQL.

Each starts on a free loopback port in a folder of its own and is stopped by PID. Redis and
PostgreSQL come from Debian's packages (``make install`` installs them); a test that needs one
that is missing is skipped, naming the package. PostgreSQL refuses to run as root: as root it
runs as the ``postgres`` user (``runuser``), with its data in a folder under ``/tmp`` that
user owns (a pytest folder under ``/root`` is not reachable for it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gameday import procs
from tests.injector.conftest import ROOT, Proxy, start_proxy

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Server:
    """A running upstream: its PID, port and log."""

    pid: int
    port: int
    log: Path

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``--upstream`` takes it in TCP mode."""
        return f"127.0.0.1:{self.port}"


def start_tcp_proxy(upstream: Server, log: Path, *, args: tuple[str, ...] = (),
                    seed: int = 7) -> Proxy:
    """``chaosctl proxy --mode tcp`` in front of ``upstream`` (token ``TOKEN``)."""
    return start_proxy(upstream.address, log, seed=seed, args=("--mode", "tcp", *args))


def start_echo(folder: Path) -> Server:
    """The echo upstream (``tests/injector/echo_upstream.py``)."""
    port = procs.free_port()
    log = folder / "echo.log"
    process = procs.start([sys.executable, "-m", "tests.injector.echo_upstream", str(port)],
                          log=log, cwd=ROOT)
    try:
        procs.wait_until(lambda: procs.port_open(port), 30, what="echo upstream")
    except TimeoutError:
        procs.stop(process.pid)
        raise
    return Server(process.pid, port, log)


@contextmanager
def echo_and_proxy(folder: Path, *, args: tuple[str, ...] = (),
                   seed: int = 7) -> Iterator[tuple[Server, Proxy]]:
    """The echo upstream and a TCP proxy in front of it, both stopped at the end."""
    echo = start_echo(folder)
    try:
        proxy = start_tcp_proxy(echo, folder / "proxy.log", args=args, seed=seed)
        try:
            yield echo, proxy
        finally:
            procs.stop(proxy.pid)
    finally:
        procs.stop(echo.pid)


def need(*tools: str, package: str) -> None:
    """Skip the test unless every tool is installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None and not Path(tool).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install {package}, or "
                    "make install)")


@contextmanager
def redis_server(folder: Path) -> Iterator[Server]:
    """A redis-server on loopback with no persistence, in ``folder``."""
    need("redis-server", "redis-cli", package="redis-server")
    port = procs.free_port()
    log = folder / "redis.log"
    process = procs.start(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                           "--save", "", "--appendonly", "no", "--dir", str(folder),
                           "--protected-mode", "no"], log=log)
    try:
        procs.wait_until(lambda: procs.port_open(port), 30, what="redis-server")
        yield Server(process.pid, port, log)
    finally:
        procs.stop(process.pid)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[Server]:
    """A PostgreSQL 15 on loopback (trust auth, user ``postgres``), data in a fresh folder."""
    need(str(PG_BIN / "initdb"), str(PG_BIN / "postgres"), "psql", package="postgresql")
    folder = Path(tempfile.mkdtemp(prefix="gameday-tcp-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data = folder / "data"
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        port = procs.free_port()
        log = folder / "postgres.log"
        process = procs.start(_as_postgres([
            str(PG_BIN / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={port}", "-c", f"unix_socket_directories={folder}", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200"]), log=log)
        try:
            procs.wait_until(lambda: procs.port_open(port), 60, what="postgres")
            # Accepting TCP is not yet accepting logins: wait for a query to answer.
            deadline = time.monotonic() + 60
            while psql(port, "select 1", check=False).returncode != 0:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield Server(process.pid, port, log)
        finally:
            procs.stop(process.pid)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def psql(port: int, *commands: str, check: bool = True,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``commands`` (one ``-c`` each) with psql against 127.0.0.1:``port`` (unaligned,
    tuples only, no TLS)."""
    argv = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X", "-At",
            "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        argv += ["-c", command]
    return subprocess.run(argv,
                          capture_output=True, text=True, check=check, timeout=timeout,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "disable"})


def redis_cli(port: int, *command: str, stdin: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one redis-cli command against 127.0.0.1:``port`` (``stdin``: its last argument,
    with ``-x``, for values too long for a command line)."""
    flags = ["-x"] if stdin is not None else []
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *flags, *command],
                          input=stdin, capture_output=True, text=True, timeout=timeout)
