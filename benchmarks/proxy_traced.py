"""The gameday proxy with tracing on, as ``make bench-proxy`` measures it.

Every request carries a W3C ``traceparent`` (a wrk Lua script cycles through 10 000 random
ones, one in a hundred sampled), so the proxy reads and judges each one; the proxy writes its
spans to a trace folder (``GAMEDAY_TRACE_DIR``) with ``OTEL_TRACES_SAMPLER_ARG=0.01``. HAProxy
and nginx direct are measured under the same script, so the client's extra work is the same
on both sides of each ratio. Two rule sets:

* ten rules that match no request (as in ``bench_proxy``): 1 % of requests are recorded, the
  sampled ones;
* one zero-latency rule that matches every request: every request is faulted, so every one
  is recorded; the spans found in the folder and the proxy's ``chaos_spans_dropped_total``
  are counted, so the figure is known to include recording them all.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks.proxy_tools import (
    IDLE_RULES,
    LABELS,
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

#: wrk's Lua: traceparents made once at start, one request in a hundred sampled.
TRACEPARENT_LUA = """
math.randomseed(42)
local hex = "0123456789abcdef"
local function id(n)
  local t = {}
  for i = 1, n do local r = math.random(1, 16); t[i] = hex:sub(r, r) end
  return table.concat(t)
end
local pool, size, at = {}, 10000, 0
for i = 1, size do
  local flags = (i % 100 == 0) and "01" or "00"
  pool[i] = "00-" .. id(32) .. "-" .. id(16) .. "-" .. flags
end
request = function()
  at = at % size + 1
  wrk.headers["traceparent"] = pool[at]
  return wrk.format(nil)
end
"""


def script(folder: Path) -> Path:
    path = folder / "traceparent.lua"
    path.write_text(TRACEPARENT_LUA)
    return path


def faulted_spans(traces: Path) -> int:
    """Faulted spans in the trace folder's files: each carries ``chaos.faulted`` once (the
    sampled spans of the idle-rule phase do not)."""
    return sum(len(re.findall(rb'"key":"chaos.faulted"', path.read_bytes()))
               for path in traces.glob("*.otlp.jsonl"))


def dropped(admin_port: int) -> float:
    with admin(admin_port) as client:
        text = client.get("/metrics").text
    match = re.search(r"^chaos_spans_dropped_total ([\d.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def injected(admin_port: int) -> float:
    with admin(admin_port) as client:
        text = client.get("/metrics").text
    return sum(float(value) for value in
               re.findall(r"^chaos_faults_injected_total\{[^}]*\} ([\d.e+]+)$", text,
                          re.MULTILINE))


def baselines(folder: Path, direct: str, via_haproxy: str,
              haproxy_argv: list[str], haproxy_port: int) -> dict[str, Any]:
    """nginx direct and HAProxy under the traceparent script (nginx already running)."""
    lua = script(folder)
    out: dict[str, Any] = {}
    out["direct_1"] = wrk(direct, 1, 5, latency=True, script=lua)
    with started(haproxy_argv, haproxy_port, folder / "haproxy-tp.out", PROXY_CORE):
        wrk(via_haproxy, 64, 2, script=lua)
        out["haproxy"] = wrk(via_haproxy, 64, WRK_SECONDS, script=lua)
    return out


def traced_proxy(folder: Path, nginx_port: int) -> dict[str, Any]:
    """The traced proxy: rps and one-connection latency with idle rules, then rps with every
    request faulted (and recorded)."""
    lua = script(folder)
    traces = folder / "traces"
    proxy_port, admin_port = procs.free_port(), procs.free_port()
    argv = [sys.executable, "-m", "gameday", "proxy", "--listen", f"127.0.0.1:{proxy_port}",
            "--upstream", f"http://127.0.0.1:{nginx_port}", "--admin", f"127.0.0.1:{admin_port}",
            "--seed", "1", "--max-ttl", "600s"]
    env = {"GAMEDAY_PROXY_TOKEN": TOKEN, "GAMEDAY_TRACE_DIR": str(traces),
           "OTEL_TRACES_SAMPLER_ARG": "0.01", "OTEL_SERVICE_NAME": "bench-proxy",
           "GAMEDAY_TRACE_DIR_MAX_MB": "2048"}
    through = f"http://127.0.0.1:{proxy_port}/"
    out: dict[str, Any] = {}
    with started(argv, admin_port, folder / "proxy-traced.out", PROXY_CORE, env=env):
        procs.wait_until(lambda: procs.port_open(proxy_port), 10, what="traced proxy")
        log("gameday proxy traced, traceparent on every request (1 % sampled), idle rules")
        put_rules(admin_port, *IDLE_RULES)
        wrk(through, 64, 2, script=lua)
        out["proxy"] = wrk(through, 64, WRK_SECONDS, script=lua)
        out["proxy_1"] = wrk(through, 1, 5, latency=True, script=lua)
        log("gameday proxy traced, a zero-latency rule on every request (all recorded)")
        put_rules(admin_port, {"fault": {"kind": "latency", "ms": 0}, "labels": LABELS,
                               "ttl": 600})
        before_faults = injected(admin_port)
        out["faulted"] = wrk(through, 64, WRK_SECONDS, script=lua)
        put_rules(admin_port)
        faulted = injected(admin_port) - before_faults
        # Spans reach the files within a second of ending; wait until all are in or dropped.
        def settled() -> bool:
            return faulted_spans(traces) + dropped(admin_port) >= faulted

        with contextlib.suppress(TimeoutError):  # what is missing then is reported
            procs.wait_until(settled, 30, interval=0.5, what="every faulted span written")
        out["faulted_requests"] = faulted
        out["faulted_spans"] = faulted_spans(traces)
        out["spans_dropped"] = dropped(admin_port)
    return out
