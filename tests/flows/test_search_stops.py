"""A breaking-point search stopped in the middle of a probe: the kill matrix is the ladder's.

The probe's fault carries the step label after the ladder's (here 3, after 2 steps). SIGKILL
leaves it only for its lease; SIGTERM rolls it back at once and the run ends Cancelled,
saying it was stopped during the probe.
"""

from __future__ import annotations

import signal
import time

import pytest

from gameday.search_events import ProbeStartedEvent, SearchEndedEvent
from tests.flows.conftest import Bench, dump, outcome, timed

pytestmark = pytest.mark.integration

LEASE = 3.0
#: A lapsed lease is gone within the lease and the proxy's timer; a loaded machine gets more.
GONE_BOUND = LEASE + 5.0
#: The first probe's step label: after the ladder's two steps.
PROBE_LABEL = 3


def test_sigkill_during_a_probe_leaves_its_fault_only_for_its_lease(bench: Bench) -> None:
    """The probe's 60 s fault, its run SIGKILLed: the proxy ends it when the lease lapses,
    long before its TTL."""
    proc = bench.start("search-hold")
    rule = bench.wait_for_rule("search-hold", timeout=120, step=PROBE_LABEL)
    assert rule["lease"] == LEASE and rule["expires_at"] - time.time() > 30, rule
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    started = time.monotonic()
    while bench.rules():
        assert time.monotonic() - started < GONE_BOUND, f"a rule outlived {GONE_BOUND:g}s"
        time.sleep(0.05)
    log = (bench.stack.state_dir / "logs" / "auth-proxy.log").read_text()
    assert any('"lease_expired"' in line and rule["id"] in line for line in log.splitlines())


def test_sigterm_during_a_probe_rolls_it_back_and_ends_cancelled(bench: Bench) -> None:
    """SIGTERM mid-probe: reverted at once (not by its lease or TTL), exit 143, the journal
    and the summary say the run was stopped during probe 1, and the search never ended."""
    proc = bench.start("search-hold")
    rule = bench.wait_for_rule("search-hold", timeout=120, step=PROBE_LABEL)
    proc.send_signal(signal.SIGTERM)
    output = timed(proc)
    out = output.text
    assert output.code == 143, out
    assert bench.rules() == [], out
    assert time.time() < rule["expires_at"], "reverted by rollback, not by the TTL"
    said = "cancelled by signal SIGTERM during probe 1 of the breaking-point search"
    assert said in out, out
    ((_run, events),) = bench.journals().items()
    assert outcome(events) == "cancelled", dump(events)
    assert [e.probe for e in events if isinstance(e, ProbeStartedEvent)] == [1], dump(events)
    assert not any(isinstance(e, SearchEndedEvent) for e in events), dump(events)
    reverted = [e for e in events if getattr(e, "event", "") == "fault_reverted"
                and e.labels.step == PROBE_LABEL]  # type: ignore[union-attr]
    assert reverted, dump(events)
