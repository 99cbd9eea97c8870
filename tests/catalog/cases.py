"""Bad catalog files and where their error must point: shared by the CLI and schema tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

GOOD_SCENARIO = """\
name: good-one
description: a valid scenario
owner: team-a
target: {service: user-service, dependency: auth-service}
environments: [demo]
fault: {kind: latency, ms: 50}
steps:
  - {ms: 50, dwell: 10s}
  - {ms: 100, dwell: 10s}
max_duration: 1m
guards:
  error_rate_percent: "> 5 for 2s"
"""


@dataclass(frozen=True)
class Case:
    """One bad input: its files, and the line and field its error must name."""

    id: str
    files: dict[str, str | bytes]  # bytes: written as they are (e.g. not UTF-8)
    file: str
    line: int
    field: str
    schema_rejects: bool  # whether JSON Schema alone can express the rule


#: "Billion laughs": nine aliases of nine, 10⁹ nodes once expanded from 500 bytes. Line 6 holds
#: the first anchor past the loader's 20 000-node budget (9⁵ nodes under ``e``).
BILLION_LAUGHS = "name: lol\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))
#: 64-byte comment lines past the 512 KiB limit: byte 524 288 is on line 524 288 / 64 + 1.
OVERSIZED = ("#" + "x" * 62 + "\n") * 10_000

#: Files the loader must refuse before the work they would cost, each with exit 2 and file:line.
LIMIT_CASES = [
    Case("billion-laughs", {"scenarios/s.yaml": BILLION_LAUGHS}, "scenarios/s.yaml", 6, "", False),
    Case("deep-nesting", {"scenarios/s.yaml": "name: x\nsteps: " + "[" * 3000},
         "scenarios/s.yaml", 2, "", False),
    # Each a<i> nests one deeper than the one before: a64, on line 66, is the first too deep.
    Case("deep-aliases", {"scenarios/s.yaml": "name: x\na0: &a0 [1]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100))}, "scenarios/s.yaml", 66, "",
         False),
    Case("recursive-alias", {"scenarios/s.yaml": "name: x\nsteps: &s [*s]\n"},
         "scenarios/s.yaml", 2, "", False),
    Case("oversized", {"scenarios/s.yaml": OVERSIZED}, "scenarios/s.yaml", 8193, "", False),
    Case("not-utf8", {"scenarios/s.yaml": b"name: x\nowner: caf\xc3\xa9\ndescription: \xff\n"},
         "scenarios/s.yaml", 3, "", False),
]


def _replace(old: str, new: str) -> str:
    assert old in GOOD_SCENARIO, old
    return GOOD_SCENARIO.replace(old, new)


CASES = [
    Case("malformed-yaml", {"scenarios/s.yaml": "name: x\n  owner: [\n"}, "scenarios/s.yaml", 2,
         "", False),
    Case("unknown-kind", {"scenarios/s.yaml": _replace("kind: latency, ms: 50", "kind: wobble")},
         "scenarios/s.yaml", 6, "fault", True),
    Case("probability-1.5", {"scenarios/s.yaml": _replace(
        "fault: {kind: latency, ms: 50}", "fault: {kind: abort, probability: 1.5}").replace(
        "  - {ms: 50, dwell: 10s}\n  - {ms: 100, dwell: 10s}", "  - {dwell: 10s}")},
         "scenarios/s.yaml", 6, "fault.probability", True),
    Case("negative-latency", {"scenarios/s.yaml": _replace("{ms: 50, dwell", "{ms: -50, dwell")},
         "scenarios/s.yaml", 8, "steps[0].ms", True),
    Case("de-escalating-ladder",
         {"scenarios/s.yaml": _replace("{ms: 100, dwell", "{ms: 20, dwell")},
         "scenarios/s.yaml", 9, "steps[1].ms", False),
    Case("dwells-over-max-duration", {"scenarios/s.yaml": _replace("max_duration: 1m",
                                                                   "max_duration: 15s")},
         "scenarios/s.yaml", 10, "max_duration", False),
    Case("duplicate-names", {"scenarios/a.yaml": GOOD_SCENARIO, "scenarios/b.yaml": GOOD_SCENARIO},
         "scenarios/b.yaml", 1, "name", False),
    Case("unknown-signal", {"scenarios/s.yaml": _replace("error_rate_percent:", "eror_rate:")},
         "scenarios/s.yaml", 12, "guards.eror_rate", False),
    Case("extra-field", {"scenarios/s.yaml": GOOD_SCENARIO + "colour: red\n"},
         "scenarios/s.yaml", 13, "colour", True),
    Case("inline-secret", {"environments/e.yaml": """\
name: e
prometheus: {url: "http://127.0.0.1:9090"}
endpoints:
  - service: user-service
    dependency: auth-service
    driver: proxy
    admin_url: http://127.0.0.1:1
    token: hunter2-super-secret
"""}, "environments/e.yaml", 8, "endpoints[0].token", True),
    Case("missing-runbook", {"scenarios/s.yaml": _replace(
        "owner: team-a\n", "owner: team-a\nrunbook: docs/runbooks/nowhere.md\n")},
         "scenarios/s.yaml", 4, "runbook", False),
    *LIMIT_CASES,
]


def assert_bad_entry(entry: str, line: int, field: str, words: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    """``GOOD_SCENARIO`` with ``entry`` appended: ``chaosctl catalog validate`` exits 2 with
    the file:line, the scenario and the field, and no traceback."""
    from gameday.cli import main

    repo = Path(__file__).resolve().parents[2]
    path = tmp_path / "scenarios" / "s.yaml"
    path.parent.mkdir()
    path.write_text(GOOD_SCENARIO + entry)
    code = main(["catalog", "--catalog", str(repo / "catalog"), "validate", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [x for x in err.splitlines() if f"{path}:{line}:" in x]
    assert lines, err
    assert any(f"scenario 'good-one': {field}: " in x and words in x for x in lines), err
    assert "Traceback" not in err
