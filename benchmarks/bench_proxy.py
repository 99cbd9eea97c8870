"""The gameday proxy side by side with nginx direct and HAProxy, on loopback (``make bench-proxy``).

Layout on a two-core machine: the proxy under test (gameday, then HAProxy, each one process
with one thread) pinned to core 0, nginx (one worker) and wrk pinned to core 1, identically
for both proxies. Measured:

* ``direct_rps``, ``proxy_rps``, ``haproxy_rps``: wrk, 1 thread, 64 connections, small body;
  the gameday proxy holds ten rules that match no request, as a proxy in a game day does;
* ``overhead_p50_ms``/``overhead_p99_ms`` (gameday) and ``haproxy_overhead_p50_ms``: wrk at
  **one** connection, percentile through the proxy minus the same percentile direct;
* ``latency_error_p50_ms``/``latency_error_p99_ms``: with a 100 ms latency rule, the client's
  round trip through the proxy minus 100 ms minus the unfaulted round trip through the proxy
  (its median, for both: the p99 figure includes the unfaulted spread);
* ``abort_ratio_observed`` over at least 5000 requests under an abort rule with p = 0.2, and
  ``abort_ratio_in_ci``: whether it lies inside the 99 % binomial interval around 0.2;
* ``ttl_lateness_ms``: with no data-plane traffic, when the rule left the admin list minus its
  ``expires_at`` (worst of 5, admin list polled every 2 ms);
* ``release_after_delete_ms``: a request held by a blackhole rule, then the rule deleted: from
  sending the ``DELETE`` until the client sees its connection closed (median of 5);
* ``rss_mb_1000_idle``: the proxy's resident memory holding 1000 idle keep-alive connections;
* ``traced_*``, ``all_faulted_*``: a second proxy with tracing on, every request carrying a
  ``traceparent`` (1 % sampled), against HAProxy and nginx under the same requests; then a
  zero-latency rule on every request, so every request is faulted and recorded
  (:mod:`benchmarks.proxy_traced`).

Everything binds 127.0.0.1 on free ports, configs go to a temporary folder, every process
started is stopped by PID. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import proxy_traced
from benchmarks.proxy_tools import (
    IDLE_RULES,
    LABELS,
    LOAD_CORE,
    PROXY_CORE,
    TOKEN,
    WRK_SECONDS,
    admin,
    log,
    put_rules,
    started,
    wrk,
)
from gameday import procs
from gameday.injector.proxy.server import raise_fd_limit

BODY = "x" * 100
Z99 = 2.5758  # two-sided 99 % normal quantile


# -- processes ------------------------------------------------------------------------------------


def nginx_config(folder: Path, port: int) -> Path:
    """One nginx worker answering a small body."""
    conf = folder / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{BODY}"; }}
    }}
}}
""")
    return conf


def haproxy_config(folder: Path, port: int, upstream: int) -> Path:
    """HAProxy with one thread, keep-alive both sides, as the gameday proxy runs."""
    conf = folder / "haproxy.cfg"
    conf.write_text(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option http-keep-alive
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    default_backend nginx
backend nginx
    server nginx 127.0.0.1:{upstream}
""")
    return conf


# -- wrk ------------------------------------------------------------------------------------------

# -- the measurements -----------------------------------------------------------------------------


def ttl_lateness(admin_port: int, trials: int = 5) -> list[float]:
    """Milliseconds between each rule's expiry and its leaving the list, no data traffic."""
    results = []
    with admin(admin_port) as client:
        for _ in range(trials):
            rule = client.post("/rules", json={"fault": {"kind": "latency", "ms": 1},
                                               "labels": LABELS, "ttl": 0.5}).json()
            while True:
                if not client.get("/rules").json()["rules"]:
                    gone = time.time()
                    break
                time.sleep(0.002)
            results.append((gone - rule["expires_at"]) * 1000)
    return results


def release_after_delete(port: int, admin_port: int, trials: int = 5) -> list[float]:
    """Milliseconds from deleting a blackhole rule until the request it held sees the close."""
    results = []
    with admin(admin_port) as client:
        for _ in range(trials):
            rule = client.post("/rules", json={"fault": {"kind": "blackhole"}, "labels": LABELS,
                                               "ttl": 60}).json()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                time.sleep(0.2)  # the request is held by now
                started = time.perf_counter()
                client.delete(f"/rules/{rule['id']}").raise_for_status()
                closed = sock.recv(65536) == b""
                elapsed = (time.perf_counter() - started) * 1000
            results.append(elapsed if closed else math.nan)
    return results


def rss_with_idle(port: int, pid: int, count: int = 1000) -> float:
    """Resident MB of ``pid`` while ``count`` keep-alive connections sit idle on it."""
    sockets = []
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            data = b""
            while BODY.encode() not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed during the RSS test")
                data += chunk
            sockets.append(sock)
        time.sleep(1.0)
        return rss_mb(pid)
    finally:
        for sock in sockets:
            sock.close()


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (NaN when its status has none)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def binomial_interval(p: float, n: int, z: float = Z99) -> tuple[float, float]:
    """The interval around ``p`` that a ratio of ``n`` trials falls in with the given z."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def main() -> int:
    """Run every measurement; print the JSON line last."""
    missing = [tool for tool in ("nginx", "haproxy", "wrk", "taskset")
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        log(f"missing: {', '.join(missing)} (make bench-proxy installs them)")
        return 2
    if (os.cpu_count() or 1) < 2:
        log("note: fewer than two cores; pinning shares one core")
    raise_fd_limit()  # 1000 idle connections on this side too
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        nginx_port, proxy_port, admin_port, haproxy_port = (procs.free_port() for _ in range(4))
        proxy_argv = [sys.executable, "-m", "gameday", "proxy",
                      "--listen", f"127.0.0.1:{proxy_port}",
                      "--upstream", f"http://127.0.0.1:{nginx_port}",
                      "--admin", f"127.0.0.1:{admin_port}", "--seed", "1", "--max-ttl", "600s"]
        nginx_argv = [nginx_bin, "-p", str(folder), "-c", str(nginx_config(folder, nginx_port))]
        haproxy_argv = [haproxy_bin, "-db", "-f",
                        str(haproxy_config(folder, haproxy_port, nginx_port))]
        direct = f"http://127.0.0.1:{nginx_port}/"
        through = f"http://127.0.0.1:{proxy_port}/"
        via_haproxy = f"http://127.0.0.1:{haproxy_port}/"
        with started(nginx_argv, nginx_port, folder / "nginx.out", LOAD_CORE):
            log("direct: nginx")
            wrk(direct, 64, 2)
            results["direct"] = wrk(direct, 64, WRK_SECONDS)
            results["direct_1"] = wrk(direct, 1, 5, latency=True)
            with started(haproxy_argv, haproxy_port, folder / "haproxy.out", PROXY_CORE):
                log("haproxy")
                wrk(via_haproxy, 64, 2)
                results["haproxy"] = wrk(via_haproxy, 64, WRK_SECONDS)
                results["haproxy_1"] = wrk(via_haproxy, 1, 5, latency=True)
            with started(proxy_argv, admin_port, folder / "proxy.out", PROXY_CORE,
                         env={"GAMEDAY_PROXY_TOKEN": TOKEN}) as proxy_pid:
                procs.wait_until(lambda: procs.port_open(proxy_port), 10, what="proxy")
                # As in a game day: rules are loaded, and none of them matches this traffic
                # (each is still checked against every request).
                log("gameday proxy, 10 rules that match no request")
                put_rules(admin_port, *IDLE_RULES)
                wrk(through, 64, 2)
                results["proxy"] = wrk(through, 64, WRK_SECONDS)
                results["proxy_1"] = wrk(through, 1, 5, latency=True)
                log("gameday proxy, 100 ms latency rule")
                put_rules(admin_port, {"fault": {"kind": "latency", "ms": 100},
                                       "labels": LABELS, "ttl": 600})
                results["latency_100"] = wrk(through, 10, 10, latency=True)
                log("gameday proxy, abort rule p=0.2")
                put_rules(admin_port, {"fault": {"kind": "abort", "status": 503,
                                                 "probability": 0.2},
                                       "labels": LABELS, "ttl": 600})
                results["abort"] = wrk(through, 16, 3)
                put_rules(admin_port)
                log("TTL lateness with no traffic")
                results["ttl"] = ttl_lateness(admin_port)
                log("release of a held request when its rule is deleted")
                results["release"] = release_after_delete(proxy_port, admin_port)
                log("RSS with 1000 idle connections")
                results["rss_mb"] = rss_with_idle(proxy_port, proxy_pid)
            log("with tracing: nginx direct and HAProxy under the traceparent script")
            results["traced_baselines"] = proxy_traced.baselines(
                folder, direct, via_haproxy, haproxy_argv, haproxy_port)
            results["traced"] = proxy_traced.traced_proxy(folder, nginx_port)
    log(json.dumps(results, indent=1))
    return report(results)


def traced_figures(t: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The traced proxy against nginx and HAProxy under the same traceparent load."""
    haproxy = base["haproxy"]["rps"]
    return {
        "traced_proxy_rps": round(t["proxy"]["rps"], 1),
        "traced_haproxy_rps": round(haproxy, 1),
        "traced_throughput_vs_haproxy": round(t["proxy"]["rps"] / haproxy, 3),
        "traced_overhead_p50_ms": round(t["proxy_1"]["p50"] - base["direct_1"]["p50"], 3),
        "all_faulted_rps": round(t["faulted"]["rps"], 1),
        "all_faulted_vs_haproxy": round(t["faulted"]["rps"] / haproxy, 3),
        "all_faulted_requests": int(t["faulted_requests"]),
        "all_faulted_spans_written": int(t["faulted_spans"]),
        "spans_dropped": int(t["spans_dropped"]),
    }


def report(r: dict[str, Any]) -> int:
    """Print the figures; the JSON object last."""
    abort_n = int(r["abort"]["requests"])
    ratio = r["abort"]["non2xx"] / abort_n if abort_n else float("nan")
    low, high = binomial_interval(0.2, abort_n) if abort_n else (math.nan, math.nan)
    unfaulted = r["proxy_1"]["p50"]
    figures = {
        "proxy_rps": round(r["proxy"]["rps"], 1),
        "haproxy_rps": round(r["haproxy"]["rps"], 1),
        "direct_rps": round(r["direct"]["rps"], 1),
        "throughput_vs_haproxy": round(r["proxy"]["rps"] / r["haproxy"]["rps"], 3),
        "overhead_p50_ms": round(r["proxy_1"]["p50"] - r["direct_1"]["p50"], 3),
        "overhead_p99_ms": round(r["proxy_1"]["p99"] - r["direct_1"]["p99"], 3),
        "haproxy_overhead_p50_ms": round(r["haproxy_1"]["p50"] - r["direct_1"]["p50"], 3),
        "latency_error_p50_ms": round(r["latency_100"]["p50"] - 100 - unfaulted, 3),
        "latency_error_p99_ms": round(r["latency_100"]["p99"] - 100 - unfaulted, 3),
        "abort_ratio_observed": round(ratio, 4),
        "abort_ratio_in_ci": bool(abort_n >= 5000 and low <= ratio <= high),
        "ttl_lateness_ms": round(max(r["ttl"]), 3),
        "release_after_delete_ms": round(statistics.median(r["release"]), 3),
        "rss_mb_1000_idle": round(r["rss_mb"], 1),
        **traced_figures(r["traced"], r["traced_baselines"]),
    }
    log(f"abort: {abort_n} requests, 99% interval around 0.2: [{low:.4f}, {high:.4f}]")
    log(f"ttl lateness per trial (ms): {[round(x, 2) for x in r['ttl']]}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
