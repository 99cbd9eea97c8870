"""The runbooks in docs/runbooks: one shape for all, and every query and command they quote works.

A runbook is read at the worst moment; a query with a typo or a ``chaosctl`` line the CLI
refuses costs minutes then. So each PromQL block runs against the demo's real Prometheus and
each ``chaosctl`` line goes through the CLI's own parser.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.cli import build_parser
from tests.demo_stack import DemoStack

REPO = Path(__file__).resolve().parents[1]
RUNBOOKS = sorted((REPO / "docs" / "runbooks").glob("*.md"))
#: Every runbook has these headings, in this order and no others, so on-call finds the same
#: section in the same place whichever service is on fire.
HEADINGS = [
    "## Symptoms",
    "## Dashboards and queries",
    "## Stop a game day by hand",
    "## Revert a fault without the kit",
    "### Proxy admin API (`proxy`)",
    "### httpx transport rules file (`transport`)",
    "### Chaos Mesh (`chaos_mesh`)",
    "### ConfigMap (`configmap`)",
    "### Local stress workers (`stress`)",
    "## Check recovery",
]
#: Realistic values for the placeholders runbooks write, as a reader would fill them in.
PLACEHOLDERS = {
    "<run>": "dd75cb99-5491-4f6d-be28-69658ee3e683",
    "<rule-id>": "r-1f2e",
    "<admin-port>": "18101",
    "<loadgen-port>": "18090",
    "<pushgateway-port>": "9091",
    "<rules-file>": "/var/lib/gameday/rules.json",
    "<name>": "gameday-dd75cb99-s1-network-1a2b3c",
    "<pid>": "4242",
}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")
_CHAOSCTL = re.compile(r"(?:^|\$\()\s*(chaosctl\b[^)\n]*)")


@dataclass(frozen=True)
class Quote:
    """One query or command a runbook quotes, and where."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def fill(text: str) -> str:
    """``text`` with every known placeholder replaced by its realistic value."""
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def blocks(path: Path, language: str) -> list[tuple[int, str]]:
    """The fenced blocks of ``language`` in ``path``: the line their body starts on, the body."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start(2)) + 1, match.group(2))
            for match in _FENCE.finditer(text) if match.group(1) == language]


def queries(path: Path) -> list[Quote]:
    """Each ``promql`` block of ``path``, as one query."""
    return [Quote(path.name, line, " ".join(body.split())) for line, body in blocks(path, "promql")]


def commands(path: Path) -> list[Quote]:
    """Each ``chaosctl …`` command in the ``sh`` blocks of ``path`` (also inside ``$(…)``)."""
    found = []
    for start, body in blocks(path, "sh"):
        # Backslash-continued lines are one command.
        logical, first = "", start
        for offset, raw in enumerate(body.splitlines()):
            if not logical:
                first = start + offset
            logical += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
            if raw.endswith("\\"):
                continue
            found += [Quote(path.name, first, m.group(1).strip())
                      for m in _CHAOSCTL.finditer(logical)]
            logical = ""
    return found


ALL_QUERIES = [q for path in RUNBOOKS for q in queries(path)]
ALL_COMMANDS = [c for path in RUNBOOKS for c in commands(path)]


def test_the_demo_services_have_runbooks() -> None:
    """Each service and dependency the catalog targets, and the proxies and loadgen, has one."""
    names = {path.stem for path in RUNBOOKS}
    targets = set()
    for path in (REPO / "catalog" / "scenarios").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in data if isinstance(data, list) else [data]:
            targets |= {scenario["target"]["service"], scenario["target"].get("dependency")}
    assert targets - {None} | {"fault-proxies", "loadgen"} <= names


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_has_the_fixed_headings(path: Path) -> None:
    """The runbook's headings are exactly the fixed ones, in order, under one title."""
    lines = path.read_text(encoding="utf-8").splitlines()
    titles = [line for line in lines if line.startswith("# ")]
    assert len(titles) == 1 and lines[0] == titles[0], f"{path.name}: one '# title' first"
    headings = [line for line in lines if line.startswith("##")]
    assert headings == HEADINGS, f"{path.name}: headings differ from the fixed set"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_quotes_queries_and_commands(path: Path) -> None:
    """Every runbook gives PromQL to look at and the chaosctl commands that stop a game day."""
    assert queries(path), f"{path.name}: no ```promql block"
    quoted = [c.text for c in commands(path)]
    assert any(c.startswith("chaosctl stop") for c in quoted), f"{path.name}: no chaosctl stop"
    assert any(c.startswith("chaosctl status") for c in quoted), f"{path.name}: no status"


def refusal(line: str) -> str | None:
    """Why chaosctl's parser refuses ``line`` (placeholders filled in), or None if it parses."""
    line = fill(line)
    left = _PLACEHOLDER.findall(line)
    if left:
        return f"unknown placeholder {left} (known: {', '.join(PLACEHOLDERS)})"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(shlex.split(line, comments=True)[1:])
    except SystemExit as exc:
        return f"chaosctl refuses it (exit {exc.code}): {stderr.getvalue().strip()}"
    return None


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_chaosctl_line_parses(command: Quote) -> None:
    """The command, placeholders filled in, is accepted by chaosctl's own argument parser."""
    problem = refusal(command.text)
    if problem:
        pytest.fail(f"{command}: {problem}")


def test_a_wrong_chaosctl_line_is_refused() -> None:
    """The parse check catches an option chaosctl does not have, and a stray placeholder."""
    assert "unrecognized arguments: --run" in (refusal("chaosctl stop --run <run>") or "")
    assert "unknown placeholder ['<who>']" in (refusal("chaosctl report <who>") or "")
    assert refusal("chaosctl report <run> --env demo") is None


# --- against the demo's Prometheus ------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}
#: Series Prometheus makes itself rather than scraping.
_SYNTHETIC = {"ALERTS", "ALERTS_FOR_STATE", "up", "scrape_duration_seconds"}


def metric_names(query: str) -> set[str]:
    """The metric names a query selects (not functions, keywords, labels or durations)."""
    text = re.sub(r'"[^"]*"', '""', query)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {name for name in names if name.lower() not in _KEYWORDS}


def test_metric_names_skip_functions_labels_and_grouping() -> None:
    """Only selected metrics count as names: not functions, label values, ranges or by-lists."""
    query = ('sum by (code) (rate(service_requests_total{service="up", code=~"5.."}[1m]))'
             ' / on (job) group_left up * 1000 + time()')
    assert metric_names(query) == {"service_requests_total", "up"}


def known_names(stack: DemoStack) -> set[str]:
    """Metric names the demo's Prometheus knows: series, scraped metadata, recording rules.

    Metadata covers families that exist with no series yet (``chaos_active`` before the first
    fault); the rules' own inputs cover what game days push to the Pushgateway while they run.
    """
    def get(path: str) -> Any:
        response = httpx.get(f"{stack.prometheus_url}{path}", timeout=10.0, trust_env=False)
        response.raise_for_status()
        return response.json()["data"]

    names = set(_SYNTHETIC) | set(get("/api/v1/label/__name__/values"))
    for family in get("/api/v1/metadata"):
        names |= {family + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= metric_names(" ".join(str(rule["expr"]).split()))
            names.add(rule.get("record", ""))
    return names


@pytest.fixture(scope="module")
def demo_names(demo_stack: DemoStack) -> set[str]:
    """The metric names of the session's demo stack, once its first rule evaluations ran."""
    demo_stack.wait_for("service:requests:rate10s", lambda rate: rate > 0, timeout=60)
    return known_names(demo_stack)


@pytest.mark.integration
@pytest.mark.parametrize("query", ALL_QUERIES, ids=str)
def test_promql_runs_on_the_demo(query: Quote, demo_stack: DemoStack,
                                 demo_names: set[str]) -> None:
    """The query is valid PromQL for the demo's Prometheus and selects metrics it knows."""
    promql = fill(query.text)
    response = httpx.get(f"{demo_stack.prometheus_url}/api/v1/query", params={"query": promql},
                         timeout=10.0, trust_env=False)
    body = response.json()
    assert body.get("status") == "success", f"{query}: {body.get('error', response.text)}"
    unknown = metric_names(promql) - demo_names
    assert not unknown, f"{query}: metric names the demo does not export: {sorted(unknown)}"
