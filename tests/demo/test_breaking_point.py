"""The catalog's breaking-point scenario on the demo: the search finds user-service's 200 ms
auth timeout, and after the timeout is lowered the weekly suite reports a regression.

One test, two real game days on the session stack: the first with ``chaosctl start``, the
second as the ``weekly-resilience`` flow (the suite holds only this scenario), so the
regression is asserted where people read it: the postmortem and the suite's summary.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.journal import Event, read_journal
from gameday.search_events import ProbeEndedEvent, SearchEndedEvent, SearchStartedEvent
from tests.demo_stack import DemoStack
from tests.flows.conftest import Bench, dump, repo_scenarios

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "auth-latency-breaking-point"
#: user-service's per-attempt auth timeout (the demo's default) and the scenario's jitter.
TIMEOUT_MS, JITTER_MS = 200.0, 5.0
#: The auth call's p99 before any fault, in ms.
AUTH_P99 = ('1000 * histogram_quantile(0.99, sum by (le) (rate('
            'service_downstream_latency_seconds_bucket{service="user-service",'
            'dependency="auth-service"}[30s])))')


@pytest.fixture
def search_bench(demo_stack: DemoStack, tmp_path: Path) -> Iterator[Bench]:
    """A catalog holding the repo's breaking-point scenario alone, its history in tmp."""
    # Shorter ladder dwells (still several guard windows); the probes keep their own floor.
    repo_scenarios(tmp_path, "user-service.yaml", (SCENARIO,), "6s")
    demo_stack.clear_faults()
    demo_stack.wait_calm()
    yield Bench(demo_stack, tmp_path)
    demo_stack.clear_faults()


def _search(events: list[Event]) -> tuple[SearchStartedEvent, SearchEndedEvent,
                                          list[ProbeEndedEvent]]:
    started = [e for e in events if isinstance(e, SearchStartedEvent)]
    ended = [e for e in events if isinstance(e, SearchEndedEvent)]
    assert len(started) == 1 and len(ended) == 1, dump(events)
    return started[0], ended[0], [e for e in events if isinstance(e, ProbeEndedEvent)]


def _weekly(bench: Bench, history: Path) -> dict[str, object]:
    """The weekly-resilience flow in a process of its own: its summary line and rows."""
    code = ("import asyncio, json, sys\n"
            "from flows.weekly import weekly_resilience\n"
            "done = asyncio.run(weekly_resilience(environment=sys.argv[1]))\n"
            "print('SUMMARY ' + json.dumps({'text': done.summary, 'results': "
            "[r.model_dump() for r in done.results]}))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(bench.stack.env_file)],
                          env={**bench.env(), "GAMEDAY_PROJECT": str(REPO),
                               "GAMEDAY_HISTORY": str(history)}, cwd=REPO,
                          capture_output=True, text=True, timeout=420)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary: dict[str, object] = json.loads(lines[-1].removeprefix("SUMMARY "))
    return summary


def test_the_search_brackets_the_auth_timeout_and_a_lower_timeout_is_a_regression(
        search_bench: Bench) -> None:
    """At 200 ms the bracket overlaps [200 − jitter − the auth call's p99, 200] and is no
    wider than the 10 ms asked; with the timeout lowered to 120 ms the next run's bracket is
    wholly below it: a regression, in its postmortem and in the weekly suite's summary."""
    stack = search_bench.stack
    history = search_bench.root / "history"
    p99 = stack.query(AUTH_P99)
    assert p99 is not None and not math.isnan(p99), "no auth call latency before the run"
    code, out = search_bench.run(SCENARIO, timeout=420, GAMEDAY_HISTORY=str(history))
    assert code == 4, out
    (events,) = search_bench.journals().values()
    started, ended, probes = _search(events)
    assert (started.held, started.broken, started.field) == (120.0, 250.0, "ms"), started
    # ceil(log2(130 / 10)) + 2 probes at most, each held at least the guards' floor.
    assert started.budget == 6 and 1 <= len(probes) <= 6, dump(events)
    assert started.dwell >= started.dwell_floor >= 8.0, started
    assert all(p.result is None or p.result.dwell >= started.dwell_floor for p in probes)
    assert all(120.0 <= p.value <= 250.0 for p in probes), probes
    low, high = TIMEOUT_MS - JITTER_MS - p99, TIMEOUT_MS
    assert ended.held <= high and ended.broken >= low, (ended, p99)
    assert ended.broken - ended.held <= 10.0, ended
    first = (search_bench.root / "reports").glob("*/postmortem.md")
    (postmortem,) = list(first)
    text = postmortem.read_text()
    assert "## Breaking point" in text and f"holds at {ended.held:.4g} ms" in text, text

    stack.set_auth_timeout(120.0)
    try:
        stack.wait_calm()
        summary = _weekly(search_bench, history)
    finally:
        stack.set_auth_timeout(TIMEOUT_MS)
    rows = summary["results"]
    assert isinstance(rows, list) and len(rows) == 1, summary
    row = rows[0]
    assert row["outcome"] == "aborted" and row["regression"] is True, summary
    assert "fell from" in str(row["trend"]) and "regression" in str(summary["text"]), summary
    second = Path(str(row["postmortem"]))
    second = second if second.is_absolute() else search_bench.root / second
    assert "fell from" in second.read_text(), second.read_text()
    runs = [p.parent.name for p in (search_bench.state / "runs").glob("*/journal.jsonl")]
    assert len(runs) == 2
    later = read_journal(search_bench.state / "runs" / str(row["run"]) / "journal.jsonl")
    _, lowered, _ = _search(later)
    assert lowered.broken <= ended.held, (lowered, ended)
