"""The run-metrics text and group URLs (pure)."""

from __future__ import annotations

from gameday.notify.pushgateway import RunLabels, RunState, exposition, group_url


def test_exposition_escapes_label_values() -> None:
    """Quotes, backslashes and newlines in a label value stay inside the label."""
    text = exposition(RunLabels("r1", 'we"ird\\name\n', "demo"),
                      RunState(active=1, step=2, service="svc", baseline={"latency_p95_ms": 1.5}))
    assert 'chaos_run_step{scenario="we\\"ird\\\\name\\n"} 2' in text
    assert 'chaos_run_baseline{scenario="we\\"ird\\\\name\\n",service="svc",' \
           'metric="latency_p95_ms"} 1.5' in text
    assert text.count("# TYPE") == 6


def test_group_url_encodes_what_a_path_cannot_carry() -> None:
    """Plain values go in the path; others use the Pushgateway's base64 form."""
    assert group_url("http://pg:9091/", RunLabels("0f-1", "s", "demo")) == \
        "http://pg:9091/metrics/job/gameday/environment/demo/run/0f-1"
    assert group_url("http://pg:9091", RunLabels("a/b", "s", "demo")).endswith(
        "/run@base64/YS9i")
