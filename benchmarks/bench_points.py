"""What a fault point costs a call that it does not fault: calls per second of an empty function.

Three variants of ``def empty(): pass``, sync (and the same three for ``async def``):

* ``bare``: the function itself;
* ``no_rules``: wrapped with ``@fault_point("bench.point")`` in a process that configured no
  points and has no ``GAMEDAY_FAULT_RULES`` (``point_rules()`` is None);
* ``ten_rules``: wrapped with a point bound to ``PointRules(rules_file=...)`` on a real rules
  file that the transport driver wrote: ten rules (errors) for ten other points. The file is
  read for real: its watcher runs, each call compares the clock with the next look and every
  :data:`~gameday.injector.points.RECHECK` one call ``stat``\\ s the file. Before timing, one
  of the ten points is called and must raise, so the rules are live.

Each variant runs ``--calls`` calls per repeat, ``--repeats`` times, the variants interleaved
within each repeat so that a busy moment of the machine hits them alike, with the garbage
collector off while timing (``time.perf_counter``); the figure is the best repeat. The
overhead is the wrapped variant's time per call less the bare one's. ``target_ns`` is the
budget for that overhead with ten rules. ``--breakdown`` adds what each layer of the wrapped
call costs (``breakdown_ns``). One JSON line::

    make bench-points
    .venv/bin/python -m benchmarks.bench_points --calls 20000 --repeats 3   # trying it out
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gameday.drivers.transport import TransportDriver
from gameday.faults import ErrorFault
from gameday.injector.points import (
    RULES_VARIABLE,
    PointRules,
    fault_point,
    point_rules,
    reset_points,
)
from gameday.models import Target
from gameday.records import FaultSpec, Labels

TARGET_NS = 2000
POINT = "bench.point"
OTHERS = [f"other.point{index}" for index in range(10)]
LABELS = Labels(run="bench-points", scenario="bench", environment="bench", step=1)


def empty() -> None:
    pass


async def aempty() -> None:
    pass


def write_rules(path: Path) -> None:
    """Ten rules for ten other points, written by the transport driver as a game day would."""
    driver = TransportDriver(path)
    for other in OTHERS:
        spec = FaultSpec(fault=ErrorFault(error="timeout"), labels=LABELS,
                         target=Target(service="bench", dependency="cache", point=other))
        driver.apply(spec, ttl=3600)


def live(rules: PointRules) -> None:
    """Raise unless the file holds the ten rules, none for POINT, each acting at its point."""
    held = [rule for rule in rules.source.rules() if rule.points]
    if len(held) != len(OTHERS) or rules.for_point(POINT):
        raise SystemExit(f"the rules file holds {len(held)} point rules, "
                         f"{len(rules.for_point(POINT))} for {POINT}")
    try:
        fault_point(OTHERS[3], rules=rules).check()
    except TimeoutError:
        return
    raise SystemExit(f"the rule for {OTHERS[3]} did not act: the file was not read")


def sync_loop(call: Callable[[], Any], calls: int) -> float:
    """Seconds for ``calls`` calls of ``call``."""
    loop = range(calls)
    started = time.perf_counter()
    for _ in loop:
        call()
    return time.perf_counter() - started


def async_loop(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    """Seconds for ``calls`` awaited calls of ``call``, in one coroutine."""
    async def run() -> float:
        loop = range(calls)
        started = time.perf_counter()
        for _ in loop:
            await call()
        return time.perf_counter() - started

    return asyncio.run(run())


def best_ns(variants: dict[str, Callable[[], float]], repeats: int, calls: int
            ) -> dict[str, float]:
    """Each variant's best time per call in ns, over ``repeats`` interleaved rounds."""
    best = dict.fromkeys(variants, math.inf)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, run in variants.items():
                best[name] = min(best[name], run())
    finally:
        if enabled:
            gc.enable()
    return {name: seconds / calls * 1e9 for name, seconds in best.items()}


def breakdown(rules: PointRules, calls: int, repeats: int) -> dict[str, float]:
    """What each layer of a wrapped call costs, per call in ns (the bare loop subtracted)."""
    point = fault_point(POINT, rules=rules)
    unbound = fault_point(POINT)

    @functools.wraps(empty)
    def passthrough(*args: Any, **kwargs: Any) -> Any:
        return empty(*args, **kwargs)

    looks = {
        "loop_and_empty_call": lambda: sync_loop(empty, calls),
        "passthrough_wrapper": lambda: sync_loop(passthrough, calls),
        "point_rules": lambda: sync_loop(point_rules, calls),
        "no_rules_question": lambda: sync_loop(unbound._rules, calls),
        "monotonic": lambda: sync_loop(time.monotonic, calls),
        "for_point": lambda: sync_loop(lambda: rules.for_point(POINT), calls),
        "ten_rules_question": lambda: sync_loop(point._rules, calls),
    }
    found = best_ns(looks, repeats, calls)
    bare = found.pop("loop_and_empty_call")
    # A call of a zero-argument callable costs about what empty() does: every figure but
    # the wrapper's is the callable's cost beyond one such call.
    return {"loop_and_empty_call": round(bare, 1),
            **{name: round(value - bare, 1) for name, value in found.items()}}


def measure(calls: int, repeats: int, with_breakdown: bool) -> dict[str, Any]:
    os.environ.pop(RULES_VARIABLE, None)
    reset_points()
    if point_rules() is not None:
        raise SystemExit("this process has fault point rules; the no-rules case needs none")
    no_rules, ano_rules = fault_point(POINT)(empty), fault_point(POINT)(aempty)
    with tempfile.TemporaryDirectory(prefix="bench-points-") as folder:
        path = Path(folder) / "rules.json"
        write_rules(path)
        rules = PointRules(rules_file=path, target="bench/cache")
        try:
            live(rules)
            ten, aten = (fault_point(POINT, rules=rules)(empty),
                         fault_point(POINT, rules=rules)(aempty))
            sync = best_ns({"bare": lambda: sync_loop(empty, calls),
                            "no_rules": lambda: sync_loop(no_rules, calls),
                            "ten_rules": lambda: sync_loop(ten, calls)}, repeats, calls)
            asynchronous = best_ns({"bare": lambda: async_loop(aempty, calls),
                                    "no_rules": lambda: async_loop(ano_rules, calls),
                                    "ten_rules": lambda: async_loop(aten, calls)},
                                   repeats, calls)
            extra = {"breakdown_ns": breakdown(rules, calls, repeats)} if with_breakdown else {}
            if rules.source.last_error is not None or len(rules.source.rules()) != len(OTHERS):
                raise SystemExit(f"the rules file changed under the benchmark: "
                                 f"{rules.source.last_error}")
        finally:
            rules.close()
    result: dict[str, Any] = {"bench": "points", "calls": calls, "repeats": repeats}
    for prefix, figures in (("", sync), ("async_", asynchronous)):
        for name, ns in figures.items():
            result[f"{prefix}calls_per_s_{name}"] = round(1e9 / ns)
        for name in ("no_rules", "ten_rules"):
            result[f"{prefix}overhead_ns_{name}"] = round(figures[name] - figures["bare"], 1)
    result.update({"target_ns": TARGET_NS,
                   "target_met": result["overhead_ns_ten_rules"] <= TARGET_NS,
                   "python": platform.python_version(), **extra})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; the best counts")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each layer of the wrapped call")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats must be at least 1")
    print(json.dumps(measure(args.calls, args.repeats, args.breakdown)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
