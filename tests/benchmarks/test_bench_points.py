"""The fault point benchmark runs end to end in a few calls and prints its one JSON line (its
figures are not checked: a test machine's speed says nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATES = [f"{prefix}calls_per_s_{name}" for prefix in ("", "async_")
         for name in ("bare", "no_rules", "ten_rules")]
OVERHEADS = [f"{prefix}overhead_ns_{name}" for prefix in ("", "async_")
             for name in ("no_rules", "ten_rules")]


def test_the_benchmark_prints_one_json_line_of_its_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_points", "--calls", "2000",
                           "--repeats", "2", "--breakdown"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")})
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    result = json.loads(line)
    assert result["bench"] == "points"
    assert (result["calls"], result["repeats"]) == (2000, 2)
    for key in RATES:
        assert isinstance(result[key], int) and result[key] > 0, key
    for key in OVERHEADS:
        assert isinstance(result[key], int | float), key
    assert result["target_ns"] == 2000 and isinstance(result["target_met"], bool)
    assert result["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(result["breakdown_ns"]) >= {"passthrough_wrapper", "for_point",
                                          "no_rules_question", "ten_rules_question"}
