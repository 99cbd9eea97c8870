"""`chaosctl demo up` on the shared session stack: targets, rules, environment file, refusals."""

from __future__ import annotations

import math
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gameday import procs
from gameday.demo.stack import UpOptions, up
from gameday.demo.state import TOKEN_VARIABLE, demo_env
from gameday.errors import DemoError
from tests.demo_stack import DemoStack

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
JOBS = {"auth-service", "auth-proxy", "cache-proxy", "db-proxy", "user-service", "loadgen",
        "pushgateway", "postgres-exporter", "redis-exporter"}

pytestmark = pytest.mark.integration


def _recorded_rules() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    # The gameday-chaos group records runs in progress: it has values only during a game day.
    return [rule["record"] for group in groups if group["name"] != "gameday-chaos"
            for rule in group["rules"] if "record" in rule]


def test_every_target_is_up(demo_stack: DemoStack) -> None:
    """Prometheus reports up == 1 for every part within 15 s."""
    demo_stack.wait_for(f'count(up{{job=~"{"|".join(sorted(JOBS))}"}} == 1)',
                        lambda n: n == len(JOBS), timeout=15)


def test_every_recording_rule_returns_a_number(demo_stack: DemoStack) -> None:
    """Each rule in rules.yml yields a finite value for the demo's traffic."""
    for record in _recorded_rules():
        demo_stack.wait_for(record, math.isfinite, timeout=15)


def test_environment_file_references_the_token(demo_stack: DemoStack) -> None:
    """environment.yaml validates, names this stack's URLs, and never contains the token."""
    environment = demo_stack.environment()
    assert environment.prometheus.url == demo_stack.prometheus_url
    assert environment.prometheus.scrape_interval == 1.0
    assert environment.pushgateway_url is not None
    assert environment.pushgateway_url == demo_stack.state.pushgateway_url
    assert environment.allowed_targets == ["user-service", "redis"]
    proxies = {e.dependency: e for e in environment.endpoints if e.driver == "proxy"}
    for dependency, url in demo_stack.proxy_admin.items():
        assert proxies[dependency].admin_url == url
        token = proxies[dependency].token
        assert token is not None and token.env == TOKEN_VARIABLE
        assert token.resolve() == demo_stack.token
    assert demo_stack.token not in demo_stack.env_file.read_text()
    assert stat.S_IMODE((demo_stack.state_dir / "token").stat().st_mode) == 0o600
    assert demo_env(demo_stack.state_dir) == {
        TOKEN_VARIABLE: demo_stack.token,
        "PREFECT_API_URL": str(demo_stack.state.prefect_api_url)}
    assert environment.prefect_api_url == demo_stack.state.prefect_api_url


def test_up_twice_refuses_and_leaves_the_stack_alone(demo_stack: DemoStack) -> None:
    """A second up in the same folder is a DemoError; every part keeps running."""
    before = (demo_stack.state_dir / "state.json").read_text()
    with pytest.raises(DemoError, match="already running"):
        up(UpOptions(demo_stack.state_dir, prefect=False))
    assert (demo_stack.state_dir / "state.json").read_text() == before
    assert all(procs.alive(pid) for pid in demo_stack.pids.values())
    assert demo_stack.environment().prometheus.url == demo_stack.prometheus_url


def test_up_with_a_taken_port_refuses_and_starts_nothing(demo_stack: DemoStack,
                                                         tmp_path: Path) -> None:
    """`up --port prometheus=<taken>` exits 2 naming the port, starts nothing, harms nothing."""
    taken = demo_stack.state.part("prometheus").ports["http"]
    result = subprocess.run(
        [sys.executable, "-m", "gameday", "demo", "up", "--no-prefect", "--state",
         str(tmp_path), "--port", f"prometheus={taken}"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"port {taken} for prometheus is taken" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state.json").exists()
    assert all(procs.alive(pid) for pid in demo_stack.pids.values())
    assert procs.port_open(taken)


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_every_part_listens_on_loopback_only(demo_stack: DemoStack) -> None:
    """Each port of each part is bound to 127.0.0.1 and nothing else (no 0.0.0.0, no ::)."""
    for part in demo_stack.state.parts:
        for role, port in part.ports.items():
            assert _listening(port) == {"0100007F"}, (part.name, role, port)


def test_postgres_runs_unprivileged_with_the_data_in_the_state_folder(
        demo_stack: DemoStack) -> None:
    """As root the server runs as the postgres user; its cluster is the state folder's."""
    pid = demo_stack.pids["postgres"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    if os.geteuid() == 0:
        assert uid == pwd.getpwnam("postgres").pw_uid
    assert (demo_stack.state_dir / "postgres" / "PG_VERSION").is_file()
    assert demo_stack.state.notes == []
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert str(demo_stack.state_dir / "postgres").encode() in cmdline
    assert not any(demo_stack.environment().model_dump_json().count(p) for p in
                   [(demo_stack.state_dir / "postgres.password").read_text()])
