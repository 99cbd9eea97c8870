"""What the proxy benchmarks share: pinned processes, wrk runs, the admin API of the proxy."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gameday import procs

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789"
LABELS = {"run": "bench", "scenario": "bench", "environment": "bench", "step": 1}
PROXY_CORE, LOAD_CORE = "0", "1"
WRK_SECONDS = 10


def log(message: str) -> None:
    """Progress on stderr, so stdout ends with the JSON line."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def started(argv: list[str], ready_port: int, log_file: Path, core: str,
            env: dict[str, str] | None = None) -> Iterator[int]:
    """Run ``argv`` pinned to ``core`` until the block ends; yields its PID."""
    process = procs.start(["taskset", "-c", core, *argv], log=log_file, env=env, cwd=ROOT)
    try:
        procs.wait_until(lambda: procs.port_open(ready_port), 30, what=argv[0])
        yield process.pid
    except TimeoutError:
        raise SystemExit(f"{argv[0]} did not start:\n{log_file.read_text()[-2000:]}") from None
    finally:
        procs.stop(process.pid)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, seconds: int, latency: bool = False,
        script: Path | None = None) -> dict[str, float]:
    """Run wrk pinned to the load core; requests/s, counts and latency percentiles in ms.
    ``script``: a wrk Lua script (one that sets each request's headers, for instance)."""
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--timeout", "10s", *(["-s", str(script)] if script else []), url]
    if latency:
        argv.insert(-1, "--latency")
    text = subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=seconds + 60).stdout
    out: dict[str, float] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(match.group(1)) if match else 0.0
    match = re.search(r"(\d+) requests in", text)
    out["requests"] = float(match.group(1)) if match else 0.0
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = float(match.group(1)) if match else 0.0
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text,
                                       re.MULTILINE):
        out[f"p{pct}"] = float(value) * _UNITS[unit]
    return out


def admin(port: int) -> httpx.Client:
    """A client for the gameday proxy's admin API."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}",
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


#: Ten rules of a game day that no benchmark request matches: other paths, methods, headers.
IDLE_RULES = tuple(
    {"fault": {"kind": "latency", "ms": 100 + i,
               "match": ({"path_prefix": f"/never/{i}"} if i % 3 == 0
                         else {"methods": ["POST"]} if i % 3 == 1
                         else {"headers": {"x-game-day": f"step-{i}"}})},
     "labels": {**LABELS, "step": i + 1}, "ttl": 600}
    for i in range(10))


def put_rules(port: int, *rules: dict[str, Any]) -> None:
    """Replace the proxy's rules."""
    with admin(port) as client:
        client.put("/rules", json={"rules": list(rules)}).raise_for_status()
