"""The proxy's TCP mode side by side with direct and HAProxy, on PostgreSQL and Redis (``make
bench-tcp``).

Layout on a two-core machine, as ``bench-proxy``: the proxy under test (gameday in TCP mode,
then HAProxy in TCP mode, each one process with one thread) pinned to core 0; PostgreSQL,
redis-server, pgbench and redis-benchmark pinned to core 1, identically for both proxies.
Measured:

* ``pgbench_tps_*``: ``pgbench -i -s 10`` once, then ``pgbench -S -c 8 -j 2 -T 10`` direct,
  through gameday, through HAProxy (tps without the initial connection time);
* ``redis_rps_*``: ``redis-benchmark -t get,set -c 50 -n 200000 -d 64`` (no pipelining), the
  mean of its GET and SET requests per second, each way;
* ``latency_error_p50_ms``/``latency_error_p99_ms``: with a 100 ms downstream latency rule,
  Redis PING round trips through gameday (10 connections, a few seconds) minus 100 ms minus
  the median unfaulted round trip through gameday;
* ``rss_mb_1000_idle``: gameday's resident memory holding 1000 idle Redis connections.

The throughput figures are the best of :data:`ROUNDS` interleaved rounds (direct, HAProxy,
gameday, then again), so a burst of other load on the machine does not decide a ratio; every
round's figure is logged on stderr. The gameday proxy holds no rule while it is measured for
throughput: its bytes take the path of a connection no rule acts on.

Targets (the issue's): ``pgbench_vs_haproxy`` ≥ 0.75, ``redis_vs_haproxy`` ≥ 0.5,
``latency_error_p50_ms`` ≤ 2, ``rss_mb_1000_idle`` ≤ 150; ``targets_met`` says whether all
held. Everything binds 127.0.0.1 on free ports, in a temporary folder; every process started
is stopped by PID. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_proxy import rss_mb
from benchmarks.proxy_tools import LOAD_CORE, PROXY_CORE, log, started
from gameday import procs
from gameday.injector.proxy.server import raise_fd_limit

TOKEN = "bench-token-0123456789"
LABELS = {"run": "bench", "scenario": "bench", "environment": "bench", "step": 1}
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_ENV = {"PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}
PGBENCH_SECONDS = 10
#: Rounds over the three targets; each figure is the best of its rounds.
ROUNDS = 2
LATENCY_MS = 100
TARGETS = {"pgbench_vs_haproxy": 0.75, "redis_vs_haproxy": 0.5}


# -- servers --------------------------------------------------------------------------------------


def as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses root: run it as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres(folder: Path) -> Iterator[int]:
    """A PostgreSQL on core 1 with a ``bench`` database; yields its port."""
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                                "-U", "postgres", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    port = procs.free_port()
    argv = as_postgres([str(PG_BIN / "postgres"), "-D", str(data),
                        "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
                        "-c", f"unix_socket_directories={folder}", "-c", "fsync=off",
                        "-c", "synchronous_commit=off", "-c", "shared_buffers=128MB",
                        "-c", "max_connections=100"])
    with started(argv, port, folder / "postgres.out", LOAD_CORE):
        deadline = time.monotonic() + 60
        while psql(port, "select 1").returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("postgres does not answer queries")
            time.sleep(0.2)
        psql(port, "create database bench")
        yield port


def psql(port: int, sql: str) -> subprocess.CompletedProcess[str]:
    """``sql`` through psql, as user postgres."""
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X",
                           "-At", "-c", sql], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **PG_ENV})


def haproxy_config(folder: Path, pg: tuple[int, int], redis: tuple[int, int]) -> Path:
    """HAProxy in TCP mode with one thread: a frontend per upstream, (listen, upstream)."""
    conf = folder / "haproxy.cfg"
    conf.write_text(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
listen pg
    bind 127.0.0.1:{pg[0]}
    server pg 127.0.0.1:{pg[1]}
listen redis
    bind 127.0.0.1:{redis[0]}
    server redis 127.0.0.1:{redis[1]}
""")
    return conf


@contextmanager
def gameday_proxy(folder: Path, name: str, upstream: int) -> Iterator[tuple[int, int, int]]:
    """``chaosctl proxy --mode tcp`` on core 0 in front of ``upstream``: (port, admin, pid)."""
    port, admin = procs.free_port(), procs.free_port()
    argv = [sys.executable, "-m", "gameday", "proxy", "--mode", "tcp",
            "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}",
            "--admin", f"127.0.0.1:{admin}", "--seed", "1", "--max-ttl", "600s"]
    with started(argv, admin, folder / f"gameday-{name}.out", PROXY_CORE,
                 env={"GAMEDAY_PROXY_TOKEN": TOKEN}) as pid:
        procs.wait_until(lambda: procs.port_open(port), 10, what="proxy")
        yield port, admin, pid


def put_rules(admin: int, *rules: dict[str, Any]) -> None:
    """Replace the gameday proxy's rules."""
    with httpx.Client(base_url=f"http://127.0.0.1:{admin}", timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        client.put("/rules", json={"rules": list(rules)}).raise_for_status()


# -- load -----------------------------------------------------------------------------------------


def pgbench(port: int, *args: str, timeout: float = 300) -> str:
    """pgbench on the load core against 127.0.0.1:``port``; its output."""
    argv = ["taskset", "-c", LOAD_CORE, "pgbench", "-h", "127.0.0.1", "-p", str(port),
            "-U", "postgres", *args, "bench"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **PG_ENV})
    if result.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def pgbench_tps(port: int) -> float:
    """Select-only tps: 8 clients, 2 threads, ten seconds."""
    out = pgbench(port, "-S", "-c", "8", "-j", "2", "-T", str(PGBENCH_SECONDS))
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if not match:
        raise SystemExit(f"no tps in pgbench's output:\n{out[-2000:]}")
    return float(match.group(1))


def redis_rps(port: int) -> dict[str, float]:
    """redis-benchmark GET and SET requests per second (50 clients, 200000 requests, 64 B)."""
    argv = ["taskset", "-c", LOAD_CORE, "redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
            "-t", "get,set", "-c", "50", "-n", "200000", "-d", "64", "--csv"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
    found = {}
    for line in out.splitlines():
        cells = [cell.strip('"') for cell in line.split(",")]
        if cells and cells[0] in ("GET", "SET"):
            found[cells[0].lower()] = float(cells[1])
    if set(found) != {"get", "set"}:
        raise SystemExit(f"no GET/SET figures in redis-benchmark's output:\n{out[-2000:]}")
    found["mean"] = (found["get"] + found["set"]) / 2
    return found


def ping_round_trips(port: int, seconds: float, connections: int = 10) -> list[float]:
    """Milliseconds of Redis PING round trips on ``connections`` sockets for ``seconds``."""
    found: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mine = []
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                start = time.perf_counter()
                sock.sendall(b"PING\r\n")
                if sock.recv(64) != b"+PONG\r\n":
                    raise RuntimeError("unexpected answer to PING")
                mine.append((time.perf_counter() - start) * 1000)
        with lock:
            found.extend(mine[1:])  # the first includes the rule meeting the connection

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def rss_with_idle(port: int, pid: int, count: int = 1000) -> float:
    """Resident MB of ``pid`` while ``count`` Redis connections through it sit idle."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"PING\r\n")
            if sock.recv(64) != b"+PONG\r\n":
                raise RuntimeError("unexpected answer to PING")
            sockets.append(sock)
        time.sleep(1.0)
        return rss_mb(pid)
    finally:
        for sock in sockets:
            sock.close()


# -- the run --------------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    """The tools the benchmark needs that are not installed."""
    tools = ["haproxy", "taskset", "pgbench", "psql", "redis-server", "redis-benchmark"]
    missing = [tool for tool in tools
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    missing += [str(PG_BIN / name) for name in ("initdb", "postgres")
                if not (PG_BIN / name).exists()]
    return missing


def main() -> int:
    """Run every measurement; print the JSON line last."""
    missing = missing_tools()
    if missing:
        log(f"missing: {', '.join(missing)} (make bench-tcp installs them)")
        return 2
    if (os.cpu_count() or 1) < 2:
        log("note: fewer than two cores; pinning shares one core")
    raise_fd_limit()  # 1000 idle connections on this side too
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    r: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tcp-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        pg_folder = folder / "pg"
        pg_folder.mkdir()
        redis_port = procs.free_port()
        redis_argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                      "--save", "", "--appendonly", "no", "--dir", str(folder),
                      "--protected-mode", "no", "--maxclients", "4096"]
        with postgres(pg_folder) as pg_port, \
                started(redis_argv, redis_port, folder / "redis.out", LOAD_CORE):
            log("pgbench -i -s 10")
            pgbench(pg_port, "-i", "-s", "10", "-q")
            hap_pg, hap_redis = procs.free_port(), procs.free_port()
            haproxy_argv = [haproxy_bin, "-db", "-f", str(
                haproxy_config(folder, (hap_pg, pg_port), (hap_redis, redis_port)))]
            with started(haproxy_argv, hap_redis, folder / "haproxy.out", PROXY_CORE), \
                    gameday_proxy(folder, "pg", pg_port) as (gd_pg, _, _), \
                    gameday_proxy(folder, "redis", redis_port) as (gd_redis, admin, pid):
                # Interleaved rounds, best of each: a burst of load from elsewhere on the
                # machine then costs one round of one target, not the comparison.
                ports = {"direct": (pg_port, redis_port), "haproxy": (hap_pg, hap_redis),
                         "proxy": (gd_pg, gd_redis)}
                for round_ in range(1, ROUNDS + 1):
                    for name, (pg, redis) in ports.items():
                        log(f"round {round_}: {name}: pgbench, redis-benchmark")
                        tps, rps = pgbench_tps(pg), redis_rps(redis)
                        r.setdefault(f"pg_{name}_rounds", []).append(tps)
                        r.setdefault(f"redis_{name}_rounds", []).append(rps)
                for name in ports:
                    r[f"pg_{name}"] = max(r[f"pg_{name}_rounds"])
                    r[f"redis_{name}"] = max(r[f"redis_{name}_rounds"],
                                             key=lambda found: found["mean"])
                log("gameday: Redis round trips, unfaulted then 100 ms downstream")
                r["rtt_unfaulted"] = ping_round_trips(gd_redis, 3)
                put_rules(admin, {"fault": {"kind": "latency", "ms": LATENCY_MS},
                                  "labels": LABELS, "ttl": 600})
                r["rtt_faulted"] = ping_round_trips(gd_redis, 5)
                put_rules(admin)
                log("RSS with 1000 idle connections")
                r["rss_mb"] = rss_with_idle(gd_redis, pid)
    log(json.dumps({k: v for k, v in r.items() if not k.startswith("rtt")}))
    return report(r)


def report(r: dict[str, Any]) -> int:
    """Print the figures; the JSON object last."""
    unfaulted = statistics.median(r["rtt_unfaulted"])
    errors = [value - LATENCY_MS - unfaulted for value in r["rtt_faulted"]]
    figures: dict[str, Any] = {
        "pgbench_tps_direct": round(r["pg_direct"], 1),
        "pgbench_tps_proxy": round(r["pg_proxy"], 1),
        "pgbench_tps_haproxy": round(r["pg_haproxy"], 1),
        "pgbench_vs_haproxy": round(r["pg_proxy"] / r["pg_haproxy"], 3),
        "redis_rps_direct": round(r["redis_direct"]["mean"], 1),
        "redis_rps_proxy": round(r["redis_proxy"]["mean"], 1),
        "redis_rps_haproxy": round(r["redis_haproxy"]["mean"], 1),
        "redis_vs_haproxy": round(r["redis_proxy"]["mean"] / r["redis_haproxy"]["mean"], 3),
        "redis_get_rps_proxy": round(r["redis_proxy"]["get"], 1),
        "redis_set_rps_proxy": round(r["redis_proxy"]["set"], 1),
        "latency_error_p50_ms": round(percentile(errors, 0.5), 3),
        "latency_error_p99_ms": round(percentile(errors, 0.99), 3),
        "latency_samples": len(errors),
        "unfaulted_rtt_p50_ms": round(unfaulted, 3),
        "rss_mb_1000_idle": round(r["rss_mb"], 1),
    }
    figures["targets_met"] = bool(
        figures["pgbench_vs_haproxy"] >= TARGETS["pgbench_vs_haproxy"]
        and figures["redis_vs_haproxy"] >= TARGETS["redis_vs_haproxy"]
        and figures["latency_error_p50_ms"] <= 2 and figures["rss_mb_1000_idle"] <= 150)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
