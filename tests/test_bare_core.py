"""The bare ``pip install gameday``: built as a wheel, installed in a clean venv, used from
outside the checkout — the injector and the catalog work, nothing else comes along."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gameday.procs import free_port, stop

REPO = Path(__file__).resolve().parents[1]
#: Packages of the extras, and the Prefect layer's folders: none may be importable.
ABSENT = ("prefect", "kubernetes", "matplotlib", "slack_sdk", "jinja2", "prometheus_api_client",
          "flows", "tasks", "blocks", "orchestration")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Bare:
    """A venv holding only the wheel and its core dependencies, and a folder outside the repo."""

    python: Path
    chaosctl: Path
    outside: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A plain environment: no PYTHONPATH, no venv of the repo on PATH."""
        base = {k: v for k, v in os.environ.items()
                if k not in {"PYTHONPATH", "VIRTUAL_ENV", "GAMEDAY_CATALOG", "GAMEDAY_PROJECT"}}
        base["PATH"] = f"{self.python.parent}:/usr/bin:/bin"
        return {**base, **extra}

    def run(self, *args: str | Path, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv from outside the checkout."""
        return subprocess.run([str(a) for a in args], cwd=self.outside, env=self.env(**extra),
                              capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Bare:
    """Build the wheel (no -e), then a venv without system site-packages that installs it."""
    root = tmp_path_factory.mktemp("bare")
    # Built from a copy: a build writes build/ and *.egg-info/ into its source tree.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".gameday", "build", "*.egg-info", "__pycache__", ".*_cache", "out"))
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(wheels), str(source)], check=True, capture_output=True, timeout=240)
    wheel = next(wheels.glob("gameday-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-2000:]
    outside = root / "elsewhere"
    outside.mkdir()
    return Bare(venv / "bin" / "python", venv / "bin" / "chaosctl", outside)


def test_only_the_core_is_installed(bare: Bare) -> None:
    """No extra's package and no top-level flows/tasks/blocks/orchestration in site-packages."""
    probe = bare.run(bare.python, "-c", textwrap.dedent(f"""
        import importlib.util, json
        print(json.dumps({{name: importlib.util.find_spec(name) is not None
                          for name in {list(ABSENT)!r}}}))
    """))
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found == dict.fromkeys(ABSENT, False)


def test_fault_transport_injects_a_rule(bare: Bare) -> None:
    """An httpx client with FaultTransport: a latency rule marks the forwarded request, an
    abort rule answers for the upstream, which is never called."""
    script = textwrap.dedent("""
        import time, httpx
        from gameday.injector import FaultTransport
        from gameday.injector.rules import Rule

        def rule(fault, target):
            return Rule.model_validate({
                "id": f"r-{target}", "fault": fault, "target": target,
                "labels": {"run": "bare", "scenario": "s", "environment": "e", "step": 1},
                "expires_at": time.time() + 60})

        seen = []
        def upstream(request):
            seen.append(request.headers.get("x-chaos-fault", ""))
            return httpx.Response(200, text="upstream")

        rules = [rule({"kind": "latency", "ms": 20}, "slow"),
                 rule({"kind": "abort", "status": 503}, "down")]
        for target in ("slow", "down"):
            transport = FaultTransport(httpx.MockTransport(upstream), rules=rules, target=target)
            with httpx.Client(transport=transport) as client:
                print(target, client.get("http://service.invalid/x").status_code)
        print("upstream saw", seen)
    """)
    result = bare.run(bare.python, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # without the otel extra, faulted calls print nothing either
    lines = result.stdout.splitlines()
    assert lines[:2] == ["slow 200", "down 503"]
    assert lines[2].startswith("upstream saw ['latency") and lines[2].count("'") == 2


@pytest.fixture
def upstream() -> Iterator[str]:
    """A real HTTP server for the proxy to forward to, stopped by PID."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1"], cwd=REPO / "docs", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc.pid)


def test_chaosctl_proxy_forwards_and_faults(bare: Bare, upstream: str) -> None:
    """The bare install's `chaosctl proxy` forwards, takes a rule on its admin API, injects it."""
    listen, admin = free_port(), free_port()
    token = "bare-core-admin-token"
    proc = subprocess.Popen(
        [str(bare.chaosctl), "proxy", "--listen", f"127.0.0.1:{listen}", "--upstream", upstream,
         "--admin", f"127.0.0.1:{admin}"], cwd=bare.outside,
        env=bare.env(GAMEDAY_PROXY_TOKEN=token), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{admin}/health")
        assert httpx.get(f"http://127.0.0.1:{listen}/", timeout=10).status_code == 200
        rule = {"fault": {"kind": "abort", "status": 502}, "ttl": 30,
                "labels": {"run": "bare", "scenario": "s", "environment": "e", "step": 1}}
        added = httpx.post(f"http://127.0.0.1:{admin}/rules", json=rule, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
        assert added.status_code == 201, added.text
        assert httpx.get(f"http://127.0.0.1:{listen}/", timeout=10).status_code == 502
    finally:
        stop(proc.pid)
    assert proc.stderr is not None
    assert proc.stderr.read() == b""  # no tracing asked for, none missing


def test_a_proxy_asked_to_trace_without_the_extra_says_so_and_proxies(
        bare: Bare, upstream: str, tmp_path: Path) -> None:
    listen, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [str(bare.chaosctl), "proxy", "--listen", f"127.0.0.1:{listen}", "--upstream", upstream,
         "--admin", f"127.0.0.1:{admin}"], cwd=bare.outside,
        env=bare.env(GAMEDAY_TRACE_DIR=str(tmp_path / "traces")), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{admin}/health")
        assert httpx.get(f"http://127.0.0.1:{listen}/", timeout=10).status_code == 200
    finally:
        stop(proc.pid)
    assert proc.stderr is not None
    said = proc.stderr.read().decode()
    assert said.count("pip install 'gameday[otel]'") == 1 and "Traceback" not in said
    assert not (tmp_path / "traces").exists()


def test_catalog_validate_runs(bare: Bare) -> None:
    """`chaosctl catalog validate` checks the repo's catalog with the bare install."""
    result = bare.run(bare.chaosctl, "catalog", "--catalog", REPO / "catalog", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:")


def test_start_names_the_missing_extra(bare: Bare) -> None:
    """`chaosctl start` exits 2 with the pip line of the prefect extra, no traceback."""
    result = bare.run(bare.chaosctl, "start", "auth-latency-ladder", "--dry-run",
                      GAMEDAY_CATALOG=str(REPO / "catalog"))
    assert result.returncode == 2, result.stderr
    assert "pip install 'gameday[prefect]'" in result.stderr
    assert "Traceback" not in result.stderr


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
