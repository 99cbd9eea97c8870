"""The stress driver: real CPU and memory pressure that ends by itself at the TTL, when its
lease is not renewed, and when the process that applied it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from gameday import procs
from gameday.drivers.base import LEASE_EXPIRED, Gone
from gameday.drivers.stress import WORKERS_GONE, StressDriver
from gameday.errors import DriverError
from gameday.faults import CpuFault, LatencyFault, MemoryFault
from gameday.models import Target
from gameday.records import FaultSpec, Handle, Labels
from tests.contract import check_driver_contract

TARGET = Target(service="redis")


def spec(fault: Any, run: str = "r42") -> FaultSpec:
    return FaultSpec(fault=fault, target=TARGET,
                     labels=Labels(run=run, scenario="cache-cpu-spike", environment="demo",
                                   step=1))


def pids(handle: Handle) -> list[int]:
    return [int(item.split(":")[0]) for item in handle.extra["workers"].split(",")]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def all_gone(handle: Handle) -> bool:
    # procs.alive, not a bare os.kill(pid, 0): an exited worker stays a zombie until reaped.
    return not any(procs.alive(p) for p in pids(handle))


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.integration
def test_contract(tmp_path: Path) -> None:
    """apply → found by a fresh driver → revert twice → nothing active, no worker left."""
    handle = check_driver_contract(lambda: StressDriver(tmp_path), spec(CpuFault(load_percent=20)))
    procs.wait_until(lambda: not any(procs.alive(p) for p in pids(handle)), timeout=10,
                     what="workers gone")
    assert list(tmp_path.glob("*.json")) == []


@pytest.mark.integration
def test_cpu_pressure_really_burns_cpu(tmp_path: Path) -> None:
    """A 60 % worker accumulates CPU time while the fault is on."""
    driver = StressDriver(tmp_path)
    handle = driver.apply(spec(CpuFault(workers=1, load_percent=60)), ttl=20)
    try:
        [pid] = pids(handle)
        start = cpu_seconds(pid)
        # About 0.6 s of CPU per second; other tests share the 2 cores, so allow plenty of time.
        procs.wait_until(lambda: cpu_seconds(pid) - start >= 0.5, timeout=15,
                         what="0.5 s of CPU time burnt")
    finally:
        driver.revert(handle)
    assert not procs.alive(pid)


@pytest.mark.integration
def test_memory_pressure_holds_resident_memory(tmp_path: Path) -> None:
    """A memory fault's worker holds the megabytes asked for, resident."""
    driver = StressDriver(tmp_path)
    handle = driver.apply(spec(MemoryFault(mb=64)), ttl=20)
    try:
        [pid] = pids(handle)
        procs.wait_until(lambda: resident_mb(pid) >= 60, timeout=15, what="64 MB resident")
    finally:
        driver.revert(handle)


@pytest.mark.integration
def test_workers_end_by_themselves_at_the_ttl(tmp_path: Path) -> None:
    """Without any revert the workers exit at the TTL and active() forgets them."""
    driver = StressDriver(tmp_path)
    handle = driver.apply(spec(CpuFault(workers=2, load_percent=10)), ttl=1.5)
    assert all(procs.alive(p) for p in pids(handle))
    procs.wait_until(lambda: not any(procs.alive(p) for p in pids(handle)), timeout=10,
                     what="workers exited at TTL")
    assert time.time() >= handle.expires_at - 0.2
    assert StressDriver(tmp_path).active() == []


ORCHESTRATOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gameday.records import FaultSpec, Labels
    from gameday.drivers.stress import StressDriver
    from gameday.faults import CpuFault
    from gameday.models import Target

    spec = FaultSpec(fault=CpuFault(workers=1, load_percent=20),
                     target=Target(service="redis"),
                     labels=Labels(run="r-killed", scenario="s", environment="demo", step=1))
    lease = float(sys.argv[3]) if len(sys.argv) > 3 else None
    handle = StressDriver(Path(sys.argv[1])).apply(spec, ttl=float(sys.argv[2]), lease=lease)
    print(handle.model_dump_json(), flush=True)
    time.sleep(600)
""")


@pytest.mark.integration
def test_workers_outlive_a_killed_orchestrator_only_until_the_ttl(tmp_path: Path) -> None:
    """SIGKILL the process that applied the fault: workers run on, then exit at the TTL."""
    ttl = 4.0
    orchestrator = subprocess.Popen([sys.executable, "-c", ORCHESTRATOR, str(tmp_path), str(ttl)],
                                     stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert orchestrator.stdout is not None
        handle = Handle.model_validate_json(orchestrator.stdout.readline())
    finally:
        os.kill(orchestrator.pid, signal.SIGKILL)
        orchestrator.wait(timeout=30)
    workers = pids(handle)
    if time.time() < handle.expires_at - 0.5:
        assert all(procs.alive(p) for p in workers)
        assert [h.id for h in StressDriver(tmp_path).active(run="r-killed")] == [handle.id]
    procs.wait_until(lambda: not any(procs.alive(p) for p in workers),
                     timeout=handle.expires_at - time.time() + 5, what="workers gone after TTL")
    assert StressDriver(tmp_path).active(run="r-killed") == []


@pytest.mark.integration
@pytest.mark.parametrize("fault", [CpuFault(workers=2, load_percent=10), MemoryFault(mb=16)],
                         ids=["cpu", "memory"])
def test_an_unrenewed_lease_ends_the_workers_long_before_the_ttl(tmp_path: Path,
                                                                  fault: Any) -> None:
    """Nobody renews a 1 s lease: the workers exit by themselves, not at the 60 s TTL."""
    driver = StressDriver(tmp_path)
    handle = driver.apply(spec(fault), ttl=60, lease=1)
    try:
        assert handle.lease_s == 1
        assert (tmp_path / f"{handle.id}.lease").exists()
        procs.wait_until(lambda: all_gone(handle), timeout=10, what="workers gone at the lease")
        assert time.time() < handle.expires_at - 30
        assert StressDriver(tmp_path).active() == []
    finally:
        driver.revert(handle)


@pytest.mark.integration
def test_a_renewed_lease_keeps_the_workers_running(tmp_path: Path) -> None:
    """Renewed every 0.2 s (from fresh drivers) for 3 s, a 1 s lease keeps its workers."""
    handle = StressDriver(tmp_path).apply(spec(CpuFault(workers=2, load_percent=10)), ttl=60,
                                          lease=1)
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert StressDriver(tmp_path).renew([handle]) == []
            time.sleep(0.2)
        assert all(procs.alive(p) for p in pids(handle))
        assert [h.lease_s for h in StressDriver(tmp_path).active()] == [1]
    finally:
        StressDriver(tmp_path).revert(handle)
    procs.wait_until(lambda: all_gone(handle), timeout=10, what="workers gone after revert")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_a_lapsed_lease_is_reported_and_never_brought_back(tmp_path: Path) -> None:
    """Renewing after the lease lapsed is LEASE_EXPIRED, whether or not the workers have
    exited yet, and the lease file is not touched or recreated."""
    driver = StressDriver(tmp_path)
    handle = driver.apply(spec(CpuFault(workers=1, load_percent=10)), ttl=60, lease=1)
    try:
        procs.wait_until(lambda: all_gone(handle), timeout=10, what="workers gone at the lease")
        assert driver.renew([handle]) == [Gone(handle, LEASE_EXPIRED)]
        assert not (tmp_path / f"{handle.id}.lease").exists()
    finally:
        driver.revert(handle)
    # Lapsed but its workers may not have seen it yet (they check every lease_slack).
    handle = driver.apply(spec(CpuFault(workers=1, load_percent=10)), ttl=60, lease=30)
    try:
        lease_file = tmp_path / f"{handle.id}.lease"
        long_ago = time.time() - 60
        os.utime(lease_file, (long_ago, long_ago))
        assert driver.renew([handle]) == [Gone(handle, LEASE_EXPIRED)]
        assert not lease_file.exists() or lease_file.stat().st_mtime == long_ago
        procs.wait_until(lambda: all_gone(handle), timeout=10, what="workers gone at the lease")
    finally:
        driver.revert(handle)


@pytest.mark.integration
def test_renew_reports_faults_whose_workers_are_gone(tmp_path: Path) -> None:
    """Workers killed while the lease is live, or a lease-less fault reverted: gone, not
    expired; a lease-less fault whose workers run is left alone."""
    driver = StressDriver(tmp_path)
    leased = driver.apply(spec(CpuFault(workers=1, load_percent=10)), ttl=60, lease=30)
    plain = driver.apply(spec(CpuFault(workers=1, load_percent=10), run="r43"), ttl=60)
    try:
        assert plain.lease_s is None
        assert driver.renew([leased, plain]) == []
        [pid] = pids(leased)
        os.kill(pid, signal.SIGKILL)
        procs.wait_until(lambda: all_gone(leased), timeout=10, what="worker killed")
        assert driver.renew([leased, plain]) == [Gone(leased, WORKERS_GONE)]
        driver.revert(plain)
        assert driver.renew([plain]) == [Gone(plain, WORKERS_GONE)]
    finally:
        driver.revert(leased)
        driver.revert(plain)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_leased_workers_exit_when_the_process_that_applied_them_dies(tmp_path: Path) -> None:
    """SIGKILL the process that applied a fault with a long lease and TTL: its workers, which
    are its children in their own session, see their parent change and exit at once."""
    orchestrator = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, str(tmp_path), "300", "300"],
        stdout=subprocess.PIPE, start_new_session=True)
    handle: Handle | None = None
    try:
        try:
            assert orchestrator.stdout is not None
            handle = Handle.model_validate_json(orchestrator.stdout.readline())
            assert handle.lease_s == 300
            for pid in pids(handle):
                assert parent_pid(pid) == orchestrator.pid
                assert os.getsid(pid) == pid  # in its own session, yet still its child
        finally:
            os.kill(orchestrator.pid, signal.SIGKILL)
            orchestrator.wait(timeout=30)
            if orchestrator.stdout is not None:
                orchestrator.stdout.close()
        gone = handle
        procs.wait_until(lambda: all_gone(gone), timeout=10,
                         what="workers gone after their parent died")
        # The lease itself is still live: the workers are gone for another reason.
        assert StressDriver(tmp_path).renew([handle]) == [Gone(handle, WORKERS_GONE)]
    finally:
        if handle is not None:
            StressDriver(tmp_path).revert(handle)


@pytest.mark.integration
def test_revert_never_kills_a_recycled_pid(tmp_path: Path) -> None:
    """A PID recorded for a fault but now held by another process is left alone."""
    bystander = procs.start([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fields = Path(f"/proc/{bystander.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Wrong start time, then the right start time but not a worker's command line.
        for ticks in (1, int(fields[19])):
            fake = Handle(driver="stress", id="stress-r42-s1-deadbeef", endpoint="here",
                          labels=spec(CpuFault(load_percent=1)).labels, fault="cpu",
                          expires_at=time.time() + 30,
                          extra={"workers": f"{bystander.pid}:{ticks}"})
            StressDriver(tmp_path).revert(fake)
            assert procs.alive(bystander.pid)
    finally:
        procs.stop(bystander.pid)


@pytest.mark.integration
def test_a_fault_reverted_the_moment_it_is_applied_leaves_no_worker(tmp_path: Path) -> None:
    """Popen returns a moment before the kernel shows a new worker's command line, by which
    revert knows it: apply returns only once each worker is recognisable, so a revert at once
    (an abort right after the step began) still stops it, and renew does not call it gone."""
    driver = StressDriver(tmp_path)
    for attempt in range(20):
        handle = driver.apply(spec(CpuFault(workers=1, load_percent=1), run=f"r{attempt}"),
                              ttl=30)
        try:
            assert driver.renew([handle]) == []
        finally:
            driver.revert(handle)
        assert all_gone(handle), attempt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_pressure_above_the_cap_is_refused(tmp_path: Path) -> None:
    """More CPU than the cap (one core kept free) is refused and starts nothing."""
    driver = StressDriver(tmp_path, max_cpu_percent=100)
    handle = driver.apply(spec(CpuFault(workers=1, load_percent=60)), ttl=20)
    try:
        with pytest.raises(DriverError, match="cap of 100%"):
            driver.apply(spec(CpuFault(workers=1, load_percent=50), run="r43"), ttl=20)
        assert [h.id for h in driver.active()] == [handle.id]
    finally:
        driver.revert(handle)
    with pytest.raises(DriverError, match="cap of 10 MB"):
        StressDriver(tmp_path, max_memory_mb=10).apply(spec(MemoryFault(mb=64)), ttl=20)
    assert list(tmp_path.glob("*.json")) == []


def test_only_cpu_and_memory_faults_are_applied(tmp_path: Path) -> None:
    """Other fault kinds are refused."""
    with pytest.raises(DriverError, match="cpu and memory"):
        StressDriver(tmp_path).apply(FaultSpec(
            fault=LatencyFault(ms=1), target=Target(service="a", dependency="b"),
            labels=Labels(run="r", scenario="s", environment="e", step=1)), ttl=5)


def test_stress_endpoints_get_the_stress_driver() -> None:
    """``driver_for`` builds the stress driver for a stress endpoint."""
    from gameday.drivers import Driver, driver_for
    from gameday.models import Endpoint

    driver = driver_for(Endpoint(service="redis", driver="stress"))
    assert isinstance(driver, StressDriver) and isinstance(driver, Driver)


def _allowed_cores(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line for line in status.splitlines()
                if line.startswith("Cpus_allowed_list:")).split()[1]


@pytest.mark.integration
def test_workers_run_on_the_cores_the_endpoint_pins(tmp_path: Path) -> None:
    """An endpoint's ``cpus`` pins every worker to those cores (where the target runs)."""
    from gameday.models import Endpoint

    core = max(os.sched_getaffinity(0))
    endpoint = Endpoint(service="redis", driver="stress", cpus=[core])
    driver = StressDriver.from_endpoint(endpoint)
    driver.state = tmp_path
    handle = driver.apply(spec(CpuFault(workers=1, load_percent=20)), ttl=20)
    try:
        [pid] = pids(handle)
        procs.wait_until(lambda: _allowed_cores(pid) == str(core), timeout=15,
                         what=f"the worker pinned to core {core}")
    finally:
        driver.revert(handle)


def test_pinning_to_a_core_the_machine_lacks_is_refused(tmp_path: Path) -> None:
    """A core outside this process's affinity is a DriverError naming the usable ones."""
    missing = max(os.sched_getaffinity(0)) + 64
    with pytest.raises(DriverError, match=f"cores \\[{missing}\\].*usable"):
        StressDriver(tmp_path, cpus=(missing,)).apply(spec(CpuFault(load_percent=10)), ttl=5)
    assert list(tmp_path.glob("*.json")) == []
