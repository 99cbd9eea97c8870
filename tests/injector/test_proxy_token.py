"""The admin token of a real ``chaosctl proxy``: trailing newlines stripped, weak tokens refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gameday import procs
from tests.injector.conftest import ROOT

STRONG = "9f2c7e1a4b6d8f03"  # exactly 16 characters: the shortest accepted
VARIABLE = "TEST_PROXY_TOKEN_CHECK"


def proxy_argv(*extra: str) -> list[str]:
    """``chaosctl proxy`` on free loopback ports in front of a port nobody listens on."""
    return [sys.executable, "-m", "gameday", "proxy", "--listen",
            f"127.0.0.1:{procs.free_port()}", "--upstream", "http://127.0.0.1:9", *extra]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[int]]:
    """PIDs of proxies a test started, stopped afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        procs.stop(pid)


def start(pids: list[int], log: Path, env: dict[str, str], *extra: str) -> str:
    """Start a proxy, wait for its admin API; its admin base URL."""
    admin = procs.free_port()
    process = procs.start(proxy_argv("--admin", f"127.0.0.1:{admin}", "--token-env", VARIABLE,
                                     *extra), log=log, env=env, cwd=ROOT)
    pids.append(process.pid)
    url = f"http://127.0.0.1:{admin}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        procs.wait_until(healthy, 30, what="proxy admin API")
    except TimeoutError:
        raise AssertionError(f"proxy did not start:\n{log.read_text()}") from None
    return url


def refused(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """Run a proxy that must refuse to start; the finished process."""
    return subprocess.run(proxy_argv("--admin", f"127.0.0.1:{procs.free_port()}", "--token-env",
                                     VARIABLE, *extra),
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, VARIABLE: "", **env})


def assert_authenticates(url: str, token: str) -> None:
    """The admin API takes ``token`` and refuses a wrong one."""
    good = httpx.get(f"{url}/rules", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert good.status_code == 200, good.text
    bad = httpx.get(f"{url}/rules", headers={"Authorization": f"Bearer {token}x"}, timeout=10)
    assert bad.status_code == 401


@pytest.mark.integration
def test_env_token_with_a_trailing_newline_works(tmp_path: Path, started: list[int]) -> None:
    """A token variable ending in a newline (a Kubernetes Secret's) authenticates without it."""
    url = start(started, tmp_path / "proxy.log", {VARIABLE: f"{STRONG}\n"})
    assert_authenticates(url, STRONG)


@pytest.mark.integration
def test_token_file_with_a_trailing_newline_works(tmp_path: Path, started: list[int]) -> None:
    """--token-file reads a mounted Secret's file, newline stripped; it wins over the variable."""
    secret = tmp_path / "token"
    secret.write_text(f"  {STRONG}\r\n")
    url = start(started, tmp_path / "proxy.log", {VARIABLE: "x" * 40}, "--token-file",
                str(secret))
    assert_authenticates(url, STRONG)


@pytest.mark.parametrize(("env", "file", "expected"), [
    ({VARIABLE: "short-token\n"}, None, "is 11 characters, too short"),
    ({VARIABLE: " \t\n"}, None, "is blank"),
    ({VARIABLE: "two words in one token"}, None, "whitespace or control characters"),
    ({}, "hunter2\n", "is 7 characters, too short"),
    ({}, "\n", "is blank"),
    ({}, f"{STRONG}\n{STRONG}\n", "whitespace or control characters"),
], ids=["short-env", "blank-env", "spaces-env", "short-file", "blank-file", "two-lines-file"])
def test_weak_token_is_refused_at_start_up(tmp_path: Path, env: dict[str, str],
                                          file: str | None, expected: str) -> None:
    """A short, blank or multi-word token: exit 2, a clear message, no traceback, no echo."""
    extra: tuple[str, ...] = ()
    if file is not None:
        (tmp_path / "token").write_text(file)
        extra = ("--token-file", str(tmp_path / "token"))
    done = refused(env, *extra)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "at least 16" in done.stderr or "printable" in done.stderr
    assert "Traceback" not in done.stderr
    for value in [*env.values(), file or ""]:
        if value.strip():
            assert value.strip() not in done.stderr  # the token itself is never echoed


def test_unreadable_token_file_is_refused(tmp_path: Path) -> None:
    """A token file that does not exist names the file and exits 2."""
    done = refused({}, "--token-file", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert f"--token-file {tmp_path / 'missing'}: cannot read the admin token" in done.stderr
    assert "Traceback" not in done.stderr
