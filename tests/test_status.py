"""`chaosctl status` asks every driver; a place it cannot ask is named and fails the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gameday import procs
from gameday.cli import main
from gameday.drivers.proxy import ProxyDriver
from gameday.faults import LatencyFault
from gameday.models import Target
from gameday.procs import free_port
from gameday.records import FaultSpec, Labels
from tests.injector.conftest import TOKEN as PROXY_TOKEN
from tests.injector.conftest import start_proxy, start_upstream

TOKEN = "GAMEDAY_STATUS_TEST_TOKEN"


def _environment(tmp_path: Path, admin_port: int | None = None) -> Path:
    """An environment with one proxy endpoint: at ``admin_port``, else where nothing listens."""
    path = tmp_path / "env.yaml"
    path.write_text(f"""
name: status-test
prometheus: {{url: "http://127.0.0.1:9"}}
allowed_targets: [svc]
endpoints:
  - service: svc
    dependency: db
    driver: proxy
    admin_url: http://127.0.0.1:{admin_port or free_port()}
    token: {{env: {TOKEN}}}
""")
    return path


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state folder of the test's own."""
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path / "state"))


def test_a_driver_that_cannot_be_built_is_reported(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """With the token variable unset the endpoint is named, with why, and the exit is 1."""
    monkeypatch.delenv(TOKEN, raising=False)
    code = main(["status", "--env", str(_environment(tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert "cannot ask: proxy svc" in out and TOKEN in out


def test_a_driver_that_does_not_answer_is_reported(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy admin API that is down is a problem in the JSON too, and the exit is 1."""
    monkeypatch.setenv(TOKEN, "a-token-of-enough-length")
    code = main(["status", "--env", str(_environment(tmp_path)), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["active_faults"] == []
    assert len(data["problems"]) == 1 and data["problems"][0].startswith("proxy svc")


@pytest.mark.integration
def test_a_fault_in_place_is_listed_and_the_exit_is_0(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """With a real proxy holding one of a run's faults, status lists it and exits 0."""
    upstream = start_upstream(tmp_path / "upstream.log")
    try:
        proxy = start_proxy(upstream.url, tmp_path / "proxy.log")
        try:
            monkeypatch.setenv(TOKEN, PROXY_TOKEN)
            path = _environment(tmp_path, proxy.admin_port)
            spec = FaultSpec(fault=LatencyFault(ms=30), target=Target(service="svc",
                             dependency="db"), labels=Labels(run="status-run", scenario="s",
                                                             environment="status-test", step=1))
            ProxyDriver(f"http://127.0.0.1:{proxy.admin_port}", PROXY_TOKEN).apply(spec, 30)
            code = main(["status", "--env", str(path)])
            out = capsys.readouterr().out
            assert code == 0, out
            assert "active faults: 1" in out and "latency 30ms (run status-run, step 1" in out
        finally:
            procs.stop(proxy.pid)
    finally:
        procs.stop(upstream.pid)
