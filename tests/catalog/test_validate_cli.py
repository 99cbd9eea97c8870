"""``chaosctl catalog validate`` on the repo's catalog and on a table of bad inputs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from gameday.cli import main
from gameday.load import load_default
from tests.catalog.cases import CASES, GOOD_SCENARIO, LIMIT_CASES, Case

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return tmp_path


def test_repo_catalog_validates(capsys: pytest.CaptureFixture[str]) -> None:
    """The repository's scenarios, missions, environments and signals are all valid."""
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "validate"]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and not re.search(r"\b0 (scenarios|missions)\b", out), out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_exits_2_naming_file_line_field(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each bad input exits 2 with a message naming its file, line and field."""
    root = write(tmp_path, case.files)
    code = main(["catalog", "--catalog", str(REPO / "catalog"), "validate", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    expected = f"{root / case.file}:{case.line}:"
    lines = [line for line in err.splitlines() if expected in line]
    assert lines, f"no problem at {expected} in:\n{err}"
    if case.field:
        assert any(f" {case.field}:" in line for line in lines), err
    assert "Traceback" not in err


def test_inline_secret_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An inline secret is refused without printing the secret itself."""
    case = next(c for c in CASES if c.id == "inline-secret")
    root = write(tmp_path, case.files)
    assert main(["catalog", "validate", str(root)]) == 2
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out
    assert "{env: VARIABLE}" in captured.err


def test_all_problems_of_all_files_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Problems in several files come out in one run, not one at a time."""
    files = {f"scenarios/{i}.yaml": c.files[next(iter(c.files))].replace("good-one", f"n{i}")
             for i, c in enumerate(CASES[1:5])}
    root = write(tmp_path, files)
    assert main(["catalog", "validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert all(f"{i}.yaml:" in err for i in range(4)), err


def test_unknown_field_lists_the_allowed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An extra field's error names the fields that are allowed there."""
    case = next(c for c in CASES if c.id == "extra-field")
    assert main(["catalog", "validate", str(write(tmp_path, case.files))]) == 2
    assert "allowed: name, description, owner" in capsys.readouterr().err


def test_command_line_user_mistake_has_no_traceback(tmp_path: Path) -> None:
    """A real ``chaosctl`` process exits 2 with the problems and no traceback."""
    case = next(c for c in CASES if c.id == "unknown-kind")
    root = write(tmp_path, case.files)
    proc = subprocess.run([sys.executable, "-m", "gameday", "catalog", "validate", str(root)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "does not match any of the expected tags: 'latency'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    """``list`` shows each scenario's ladder; ``show`` expands signals to PromQL."""
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "list"]) == 0
    out = capsys.readouterr().out
    assert "auth-latency-ladder" in out and "50ms ±5ms → 120ms ±5ms → 250ms ±5ms" in out
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "show", "auth-latency-ladder"]) == 0
    out = capsys.readouterr().out
    assert 'service_request_duration_seconds_bucket{service="user-service"}' in out
    assert "{service}" not in out


def test_show_unknown_scenario_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """Asking for a scenario that does not exist lists those that do."""
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "show", "nope"]) == 2
    assert "auth-latency-ladder" in capsys.readouterr().err


def test_values_under_secret_keys_are_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stray field inside a secret reference is refused without printing its value."""
    root = write(tmp_path, {"environments/e.yaml": """\
name: e
prometheus: {url: "http://127.0.0.1:9090", token: {env: PROM_TOKEN, value: hunter2-xyz}}
"""})
    assert main(["catalog", "validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert "prometheus.token.value" in err and "hunter2" not in err


def test_runbook_paths_are_checked_against_the_repository_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runbook path is read from the catalog folder's parent; a URL is never checked."""
    def scenario(name: str, runbook: str) -> str:
        return GOOD_SCENARIO.replace("good-one", name).replace(
            "owner: team-a\n", f"owner: team-a\nrunbook: {runbook}\n")

    write(tmp_path, {
        "docs/runbooks/here.md": "# here\n",
        "catalog/scenarios/a.yaml": scenario("has-file", "docs/runbooks/here.md"),
        "catalog/scenarios/b.yaml": scenario("has-url", "https://wiki.example.test/none"),
    })
    assert main(["catalog", "validate", str(tmp_path / "catalog")]) == 0
    capsys.readouterr()
    # The same path seen from a catalog one folder deeper no longer exists.
    write(tmp_path, {"deeper/catalog/scenarios/a.yaml": scenario("has-file",
                                                                 "docs/runbooks/here.md")})
    assert main(["catalog", "validate", str(tmp_path / "deeper" / "catalog")]) == 2
    err = capsys.readouterr().err
    assert "a.yaml:4: scenario 'has-file': runbook: no such file 'docs/runbooks/here.md'" in err
    assert f"repository root {(tmp_path / 'deeper').resolve()}" in err
    assert "http(s):// URL" in err


def test_running_does_not_need_the_runbooks(tmp_path: Path) -> None:
    """Loading the catalog to run (as a deployed image without docs/ does) skips the check."""
    case = next(c for c in CASES if c.id == "missing-runbook")
    signals = (REPO / "catalog" / "signals.yaml").read_text()
    root = write(tmp_path, {**case.files, "signals.yaml": signals})
    assert load_default(root).scenarios["good-one"].runbook == "docs/runbooks/nowhere.md"


def test_hostile_yaml_fails_fast_in_a_real_process(tmp_path: Path) -> None:
    """Alias bombs, deep nesting, oversized and undecodable files: exit 2, file:line, fast.

    The billion-laughs file once took 33 s and 3 GB; failing in seconds bounds the memory too.
    The bound (10 s for all of them, interpreter start included) is generous for 2 busy cores.
    """
    files = {f"scenarios/{case.id}.yaml": case.files[case.file] for case in LIMIT_CASES}
    root = write(tmp_path, files)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gameday", "catalog", "validate", str(root)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    for case in LIMIT_CASES:
        assert f"{root / 'scenarios' / case.id}.yaml:{case.line}:" in proc.stderr, proc.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_undecodable_file_names_the_byte_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not UTF-8 is refused at the line and column of its first bad byte."""
    case = next(c for c in CASES if c.id == "not-utf8")
    assert main(["catalog", "validate", str(write(tmp_path, case.files))]) == 2
    assert "s.yaml:3: not UTF-8: byte 0xff at column 14" in capsys.readouterr().err
