"""The transport driver: rules written to a file that a real ``FaultTransport`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gameday import procs
from gameday.drivers import driver_for
from gameday.drivers.base import LEASE_EXPIRED, Gone, orphan_bound
from gameday.drivers.transport import MISSING, TransportDriver
from gameday.errors import DriverError, DriverUnreachable
from gameday.faults import AbortFault, CpuFault, LatencyFault
from gameday.injector.transport import FaultTransport, load_rules_file
from gameday.models import Endpoint, Target
from gameday.records import FaultSpec, Labels
from tests.contract import check_driver_contract
from tests.injector.conftest import ROOT, Upstream, start_upstream

TARGET = Target(service="checkout", dependency="payments")


def spec(fault: Any, run: str = "r42", step: int = 1) -> FaultSpec:
    """A fault spec at the checkout→payments boundary."""
    return FaultSpec(fault=fault, target=TARGET,
                     labels=Labels(run=run, scenario="slow-payments", environment="dev",
                                   step=step))


def test_driver_contract(tmp_path: Path) -> None:
    """apply → found by a fresh driver → revert twice → nothing active, an empty document."""
    path = tmp_path / "rules.json"
    handle = check_driver_contract(lambda: TransportDriver(path), spec(LatencyFault(ms=20)))
    assert handle.driver == "transport"
    assert handle.endpoint == str(path)
    assert handle.fault == "latency 20ms"
    assert json.loads(path.read_text()) == {"rules": []}


def test_the_file_is_what_the_transport_reads(tmp_path: Path) -> None:
    """Each rule carries target, labels and absolute expiry; no temporary file is left behind."""
    path = tmp_path / "rules.yaml"
    before = time.time()
    handle = TransportDriver(path).apply(spec(AbortFault(status=503)), ttl=30)
    [rule] = load_rules_file(path)
    assert rule.id == handle.id
    assert rule.target == "checkout/payments"
    assert rule.labels == spec(AbortFault(status=503)).labels
    assert before + 30 <= rule.expires_at == handle.expires_at <= time.time() + 30
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.yaml", "rules.yaml.lock"]


def test_expired_rules_are_not_listed_and_are_dropped_on_write(tmp_path: Path) -> None:
    """A rule past its expiry is not active, and the next write removes it from the file."""
    driver = TransportDriver(tmp_path / "rules.json")
    old = driver.apply(spec(LatencyFault(ms=5), run="old"), ttl=0.2)
    time.sleep(0.3)
    assert driver.active(run="old") == []
    new = driver.apply(spec(LatencyFault(ms=5), run="new"), ttl=30)
    assert [rule.id for rule in load_rules_file(driver.path)] == [new.id]
    driver.revert(old)  # expired and gone: still fine
    assert [h.id for h in driver.active()] == [new.id]


def test_every_write_looks_new_to_the_transport(tmp_path: Path) -> None:
    """Quick writes get strictly later mtimes, so the transport's change check sees each one."""
    driver = TransportDriver(tmp_path / "rules.json")
    stamps = []
    for _ in range(20):
        driver.revert(driver.apply(spec(LatencyFault(ms=1)), ttl=30))
        stamps.append(driver.path.stat().st_mtime_ns)
    assert stamps == sorted(set(stamps))


def test_check_needs_a_writable_folder(tmp_path: Path) -> None:
    """A folder that is missing, or a file where the folder should be, is DriverUnreachable."""
    TransportDriver(tmp_path / "rules.json").check()
    with pytest.raises(DriverUnreachable, match="not writable"):
        TransportDriver(tmp_path / "missing" / "rules.json").check()
    (tmp_path / "plain").write_text("")
    with pytest.raises(DriverUnreachable) as caught:
        TransportDriver(tmp_path / "plain" / "rules.json").check()
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(DriverUnreachable):
        TransportDriver(tmp_path / "missing" / "rules.json").apply(spec(LatencyFault(ms=1)), 5)


def test_an_unreadable_document_is_refused_and_kept(tmp_path: Path) -> None:
    """A file that is not a rules document is a DriverError, and nothing overwrites it."""
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [{"fault": "nonsense"}]}')
    driver = TransportDriver(path)
    with pytest.raises(DriverError, match="not a rules document"):
        driver.check()
    with pytest.raises(DriverError, match="not a rules document"):
        driver.apply(spec(LatencyFault(ms=1)), ttl=5)
    assert path.read_text() == '{"rules": [{"fault": "nonsense"}]}'


def test_refuses_non_http_faults_and_foreign_handles(tmp_path: Path) -> None:
    """A CPU fault is not a transport rule; a handle of another file is not reverted here."""
    driver = TransportDriver(tmp_path / "rules.json")
    with pytest.raises(DriverError, match="HTTP faults"):
        driver.apply(spec(CpuFault(load_percent=50)), ttl=5)
    assert not driver.path.exists()
    handle = driver.apply(spec(LatencyFault(ms=1)), ttl=30)
    with pytest.raises(DriverError, match="lives in"):
        TransportDriver(tmp_path / "other.json").revert(handle)
    assert [h.id for h in driver.active()] == [handle.id]
    driver.revert(handle)


def test_revert_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    """Reverting when the file is gone is not an error and does not create the file."""
    driver = TransportDriver(tmp_path / "rules.json")
    handle = driver.apply(spec(LatencyFault(ms=1)), ttl=30)
    driver.path.unlink()
    driver.revert(handle)
    assert not driver.path.exists()


def test_driver_for_builds_from_a_transport_endpoint(tmp_path: Path) -> None:
    """A ``transport`` endpoint gets a transport driver writing its ``rules_file``."""
    path = tmp_path / "rules.json"
    endpoint = Endpoint(service="checkout", dependency="payments", driver="transport",
                        rules_file=str(path))
    driver = driver_for(endpoint)
    assert isinstance(driver, TransportDriver)
    assert driver.path == path
    driver.check()


# -- leases ------------------------------------------------------------------------------------


def document(path: Path) -> dict[str, Any]:
    """The rules file as JSON data."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def lapse(driver: TransportDriver, handle: Any) -> None:
    """Wait (at most 5 s) until ``handle``'s lease has lapsed as the driver sees it."""
    procs.wait_until(lambda: handle.id not in {h.id for h in driver.active()}, timeout=5,
                     interval=0.02, what="the lease's lapse")


def mock_client(path: Path) -> httpx.Client:
    """A client whose transport reads ``path`` before a mock upstream answering 200."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    return httpx.Client(transport=FaultTransport(inner, rules_file=path))


def test_a_leased_apply_writes_its_lease_and_its_runs_deadline(tmp_path: Path) -> None:
    """The rule carries ``lease``, ``leases`` its run's deadline; a plain rule neither."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    assert (driver.lease_slack, orphan_bound(driver, ttl=60, lease=5)) == (0.0, 5)
    plain = driver.apply(spec(AbortFault(status=503), step=2), ttl=60)
    assert plain.lease_s is None
    assert set(document(path)) == {"rules"} and "lease" not in document(path)["rules"][0]
    before = time.time()
    handle = driver.apply(spec(AbortFault(status=503)), ttl=60, lease=5)
    assert handle.lease_s == 5 and before + 60 <= handle.expires_at
    data = document(path)
    assert [item.get("lease") for item in data["rules"]] == [None, 5]
    assert before + 5 <= data["leases"]["r42"] <= time.time() + 5
    bound = {rule.id: rule for rule in load_rules_file(path)}
    assert (bound[handle.id].expires_at, bound[handle.id].lease) == (data["leases"]["r42"], 5)
    assert bound[plain.id].expires_at == plain.expires_at
    listed = {h.id: h for h in TransportDriver(path).active(run="r42")}
    assert listed[handle.id] == handle and listed[plain.id] == plain


def test_apply_refuses_a_lease_that_is_not_a_positive_number(tmp_path: Path) -> None:
    """A zero, negative or infinite lease is a DriverError, and nothing is written."""
    driver = TransportDriver(tmp_path / "rules.json")
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(DriverError, match="lease"):
            driver.apply(spec(LatencyFault(ms=1)), ttl=60, lease=bad)
    assert not driver.path.exists()


def test_renew_after_a_lapse_is_lease_expired_and_the_rule_stays_gone(tmp_path: Path) -> None:
    """A renewal that comes late reports the lapse, extends nothing, and brings nothing back."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    handle = driver.apply(spec(AbortFault(status=503)), ttl=60, lease=0.3)
    lapse(driver, handle)
    deadline = document(path)["leases"]["r42"]
    assert driver.renew([handle]) == [Gone(handle, LEASE_EXPIRED)]
    assert driver.renew([handle]) == [Gone(handle, LEASE_EXPIRED)]  # told again, still lapsed
    assert document(path)["leases"]["r42"] == deadline < time.time()
    assert driver.active() == []
    with mock_client(path) as client:
        assert client.get("http://svc/").status_code == 200
    driver.revert(handle)
    assert document(path) == {"rules": []}


def test_renew_reports_missing_rules_and_only_looks_for_unleased_ones(tmp_path: Path) -> None:
    """One rewrite renews the leased; a reverted rule is gone; a plain one is looked for."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    leased = driver.apply(spec(LatencyFault(ms=1)), ttl=60, lease=30)
    plain = driver.apply(spec(LatencyFault(ms=1), step=2), ttl=60)
    reverted = driver.apply(spec(LatencyFault(ms=1), step=3), ttl=60, lease=30)
    driver.revert(reverted)
    before = document(path)["leases"]["r42"]
    started = time.time()
    assert driver.renew([leased, plain, reverted]) == [Gone(reverted, MISSING)]
    after = document(path)["leases"]["r42"]
    assert after >= before and after >= started + 30
    written = path.stat().st_mtime_ns
    assert driver.renew([plain]) == []
    assert path.stat().st_mtime_ns == written  # nothing to renew: nothing written
    with pytest.raises(DriverError, match="lives in"):
        TransportDriver(tmp_path / "other.json").renew([leased])
    path.unlink()
    assert driver.renew([leased, plain]) == [Gone(leased, MISSING), Gone(plain, MISSING)]
    assert not path.exists()  # renewing does not create the file


def test_active_lists_no_lapsed_rule(tmp_path: Path) -> None:
    """A lapsed rule is not active; its run's plain rules and other runs' leases are."""
    driver = TransportDriver(tmp_path / "rules.json")
    lapsing = driver.apply(spec(LatencyFault(ms=1)), ttl=60, lease=0.3)
    plain = driver.apply(spec(LatencyFault(ms=1), step=2), ttl=60)
    other = driver.apply(spec(LatencyFault(ms=1), run="r43"), ttl=60, lease=30)
    lapse(driver, lapsing)
    assert {h.id for h in driver.active()} == {plain.id, other.id}
    assert [h.id for h in driver.active(run="r42")] == [plain.id]


def test_a_new_lease_of_the_run_does_not_revive_its_lapsed_rules(tmp_path: Path) -> None:
    """The run's fresh deadline is for its new rule: the lapsed one is dropped, not revived."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    old = driver.apply(spec(AbortFault(status=503)), ttl=60, lease=0.3)
    lapse(driver, old)
    new = driver.apply(spec(LatencyFault(ms=1), step=2), ttl=60, lease=30)
    assert [rule.id for rule in load_rules_file(path)] == [new.id]
    assert driver.renew([old, new]) == [Gone(old, MISSING)]
    assert [h.id for h in driver.active()] == [new.id]


def test_a_runs_deadline_goes_with_its_last_leased_rule(tmp_path: Path) -> None:
    """``leases`` keeps a run while it has a leased rule, and the file ends as it began."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    first = driver.apply(spec(LatencyFault(ms=1)), ttl=60, lease=30)
    second = driver.apply(spec(LatencyFault(ms=1), step=2), ttl=60, lease=30)
    other = driver.apply(spec(LatencyFault(ms=1), run="r43"), ttl=60, lease=30)
    driver.revert(first)
    assert set(document(path)["leases"]) == {"r42", "r43"}
    driver.revert(second)
    assert set(document(path)["leases"]) == {"r43"}
    driver.revert(other)
    assert document(path) == {"rules": []}


WRITER = textwrap.dedent("""
    import json, sys
    from gameday.drivers.transport import TransportDriver
    from gameday.faults import LatencyFault
    from gameday.models import Target
    from gameday.records import FaultSpec, Labels

    path, run, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    driver = TransportDriver(path)
    print("ready", flush=True)
    sys.stdin.readline()
    handles = []
    for step in range(count):
        spec = FaultSpec(fault=LatencyFault(ms=1),
                         target=Target(service="checkout", dependency="payments"),
                         labels=Labels(run=run, scenario="s", environment="dev", step=step))
        handles.append(driver.apply(spec, ttl=float(sys.argv[4])))
    for handle in handles[::2]:
        driver.revert(handle)
    print(json.dumps([handle.id for handle in handles[1::2]]), flush=True)
""")


def start_writer(path: Path, run: str, count: int, ttl: float = 300) -> subprocess.Popen[str]:
    """A separate process that applies ``count`` rules for ``run`` when told to go."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), run, str(count),
                                str(ttl)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.integration
def test_two_processes_writing_at_once_lose_no_rule(tmp_path: Path) -> None:
    """Two processes applying and reverting at once: every rule they kept is in the file."""
    path = tmp_path / "rules.json"
    writers = [start_writer(path, run, 30) for run in ("run-a", "run-b")]
    kept: set[str] = set()
    try:
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            out, _ = writer.communicate(timeout=120)
            assert writer.returncode == 0
            kept |= set(json.loads(out))
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert len(kept) == 30
    assert {h.id for h in TransportDriver(path).active()} == kept


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A real HTTP server on loopback (``tests/injector/upstream.py``)."""
    server = start_upstream(tmp_path_factory.mktemp("transport-upstream") / "upstream.log")
    yield server
    procs.stop(server.pid)


def client_for(path: Path) -> httpx.Client:
    """The service's client: a real transport reading ``path``, as checkout→payments."""
    return httpx.Client(transport=FaultTransport(rules_file=path, target="checkout/payments"),
                        timeout=10)


@pytest.mark.integration
def test_applied_abort_reaches_the_client_until_reverted(upstream: Upstream,
                                                         tmp_path: Path) -> None:
    """An abort applied by the driver answers the client's calls; after revert they pass."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    with client_for(path) as client:
        assert client.get(f"{upstream.url}/hello").text == "hello"
        handle = driver.apply(spec(AbortFault(status=503)), ttl=60)
        response = client.get(f"{upstream.url}/hello")
        assert response.status_code == 503
        assert response.headers["x-chaos-fault"] == "abort"
        assert response.json()["rule"] == handle.id
        driver.revert(handle)
        response = client.get(f"{upstream.url}/hello")
        assert (response.status_code, response.text) == (200, "hello")
        assert "x-chaos-fault" not in response.headers


@pytest.mark.integration
def test_applied_latency_delays_real_calls_until_reverted(upstream: Upstream,
                                                          tmp_path: Path) -> None:
    """A latency rule delays calls to the real server by its ms; revert removes the delay."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    with client_for(path) as client:
        handle = driver.apply(spec(LatencyFault(ms=300)), ttl=60)
        started = time.monotonic()
        response = client.get(f"{upstream.url}/hello")
        assert time.monotonic() - started >= 0.3
        assert (response.text, response.headers["x-chaos-fault"]) == ("hello", "latency")
        driver.revert(handle)
        response = client.get(f"{upstream.url}/hello")
        assert "x-chaos-fault" not in response.headers


@pytest.mark.integration
def test_an_expired_rule_is_ignored_with_the_writer_gone(upstream: Upstream,
                                                         tmp_path: Path) -> None:
    """The process that wrote a rule exits; the transport stops applying it at its expiry."""
    path = tmp_path / "rules.json"
    writer = start_writer(path, "gone", 2, ttl=2.0)  # keeps one rule, reverts the other
    assert writer.stdin is not None
    out, _ = writer.communicate("go\n", timeout=60)
    [kept] = json.loads(out)
    [rule] = load_rules_file(path)
    assert rule.id == kept
    with client_for(path) as client:
        if time.time() < rule.expires_at - 0.5:
            assert client.get(f"{upstream.url}/hello").headers["x-chaos-fault"] == "latency"
        procs.wait_until(lambda: time.time() > rule.expires_at, timeout=10,
                         what="the rule's expiry")
        response = client.get(f"{upstream.url}/hello")
        assert "x-chaos-fault" not in response.headers
    # Nobody rewrote the file: the transport dropped the rule by its own clock.
    assert [r.id for r in load_rules_file(path)] == [kept]
    assert TransportDriver(path).active() == []


@pytest.mark.integration
def test_an_unrenewed_lease_ends_the_fault_with_no_file_change(upstream: Upstream,
                                                                tmp_path: Path) -> None:
    """Nobody renews: the transport stops the fault at the deadline by itself, for good."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    with client_for(path) as client:
        handle = driver.apply(spec(AbortFault(status=503)), ttl=60, lease=0.5)
        written = path.stat().st_mtime_ns
        deadline = document(path)["leases"]["r42"]
        first = client.get(f"{upstream.url}/hello")
        if time.time() < deadline - 0.2:  # a busy machine may have let the lease lapse already
            assert first.status_code == 503
        procs.wait_until(lambda: time.time() >= deadline
                         and client.get(f"{upstream.url}/hello").status_code == 200,
                         timeout=5, interval=0.05, what="the fault's end")
        assert path.stat().st_mtime_ns == written  # the reader alone ended it
        assert driver.active() == []
        assert driver.renew([handle]) == [Gone(handle, LEASE_EXPIRED)]
        response = client.get(f"{upstream.url}/hello")
        assert (response.status_code, response.text) == (200, "hello")


@pytest.mark.integration
def test_a_renewed_lease_keeps_the_fault(upstream: Upstream, tmp_path: Path) -> None:
    """Renewed every 0.2 s for 2 s, a 0.6 s lease faults every call made in that time."""
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    lease = 0.6
    with client_for(path) as client:
        handle = driver.apply(spec(AbortFault(status=503)), ttl=60, lease=lease)
        renewed = time.time()
        calls: list[tuple[float, float, int]] = []  # (began, last renewal began, status)
        until = renewed + 2.0
        while time.time() < until:
            if time.time() - renewed >= 0.2:
                renewed = time.time()
                assert driver.renew([handle]) == []
            began = time.time()
            calls.append((began, renewed, client.get(f"{upstream.url}/hello").status_code))
            time.sleep(0.01)
        # A call begun within the lease of a renewal's start must be faulted; only a stall of
        # the test longer than the lease would leave one out, and none is expected.
        covered = [status for began, last, status in calls if began - last < lease]
        assert covered == [503] * len(covered) and len(covered) >= 10, calls
        assert [h.id for h in driver.active()] == [handle.id]
