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
from gameday.drivers.transport import TransportDriver
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
