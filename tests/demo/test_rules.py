"""The recording rules in deploy/prometheus: valid for Prometheus, and computing what they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
    """`promtool test rules` passes rules_test.yml (quantiles, error ratios, retries)."""
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
