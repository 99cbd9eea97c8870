"""The rules in deploy/prometheus: valid for Prometheus, computing and alerting as they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: scripts/install-debs.sh prometheus")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES)


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts rules.yml."""
    result = _promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_pass_their_unit_tests() -> None:
    """`promtool test rules` passes rules_test.yml (recording rules and every alert)."""
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    """Each alert in rules.yml is expected to fire in at least one test of rules_test.yml."""
    rules = yaml.safe_load((RULES / "rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]
              if "alert" in rule}
    tests = yaml.safe_load((RULES / "rules_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    assert alerts == {"ChaosFaultOrphaned", "ChaosFaultPastExpiry", "ChaosRunAborted",
                      "ChaosRollbackFailed"}
    assert alerts <= fired, alerts - fired


@needs_promtool
def test_the_demo_alerts_pass_check_and_their_unit_tests() -> None:
    """demo-alerts.yml is valid, and its page fires at 40 % rejections, not at 20 % nor on
    timeouts (demo-alerts_test.yml)."""
    for args in (("check", "rules", "demo-alerts.yml"), ("test", "rules", "demo-alerts_test.yml")):
        result = _promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_kits_own_alerts_carry_the_safety_label() -> None:
    """Every alert of rules.yml carries gameday_safety="true" (game-day silences exclude it);
    the demo's service alerts do not, so a game day may silence them."""
    for name, label in (("rules.yml", "true"), ("demo-alerts.yml", None)):
        rules = yaml.safe_load((RULES / name).read_text())
        found = {rule["alert"]: rule.get("labels", {}).get("gameday_safety")
                 for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
        assert found and set(found.values()) == {label}, (name, found)
