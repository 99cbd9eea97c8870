"""How long a fault could outlive a dead run, per driver, as a dry run prints it."""

from __future__ import annotations

from pathlib import Path

from gameday.drivers.base import lease_of, orphan_bound
from gameday.drivers.chaos_mesh import ChaosMeshDriver
from gameday.drivers.configmap import ConfigMapDriver
from gameday.drivers.proxy import ProxyDriver
from gameday.drivers.stress import StressDriver
from gameday.drivers.transport import TransportDriver
from gameday.protocol.summary import DryRunPlan, PlannedStep, RunSummary, plan_lines


def test_leased_drivers_are_bounded_by_the_lease(tmp_path: Path) -> None:
    """Proxy, transport and stress: the lease plus the driver's enforcement slack, never more
    than the TTL; a lease is passed to apply."""
    with ProxyDriver("http://127.0.0.1:9") as proxy:
        assert orphan_bound(proxy, 430.0, 3.0) == 3.0 + proxy.lease_slack
        assert orphan_bound(proxy, 2.0, 3.0) == 2.0
        assert lease_of(proxy, 3.0) == 3.0
    stress = StressDriver(tmp_path / "stress")
    assert orphan_bound(stress, 430.0, 3.0) == 3.0 + (stress.lease_slack or 0)
    transport = TransportDriver(tmp_path / "rules.json")
    assert orphan_bound(transport, 430.0, 3.0) <= 3.1


def test_cluster_drivers_are_bounded_by_the_ttl() -> None:
    """Chaos Mesh and ConfigMap keep no lease: the TTL is the bound, and apply gets none."""
    for kind in (ChaosMeshDriver, ConfigMapDriver):
        assert kind.lease_slack is None


def test_the_dry_run_prints_the_bound() -> None:
    """Each step's line ends with the bound and what sets it."""
    plan = DryRunPlan(steps=(PlannedStep(severity=1, fault="latency 50ms", dwell=420, ttl=430,
                                         orphan_s=3.05, bounded_by="lease"),
                             PlannedStep(severity=2, fault="latency 90ms", dwell=420, ttl=430,
                                         orphan_s=430, bounded_by="ttl")), guards=())
    lines = plan_lines(RunSummary(run="r", scenario="s", environment="e", outcome="dry_run",
                                  summary="", plan=plan))
    assert any(line.endswith("outlives a dead run by at most 3.05s (lease)") for line in lines)
    assert any(line.endswith("outlives a dead run by at most 430s (ttl)") for line in lines)
