"""The proxy driver against a real ``chaosctl proxy``, in both modes: the shared contract, and
its errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gameday import procs
from gameday.drivers import DRIVERS, driver_for
from gameday.drivers.proxy import ProxyDriver
from gameday.errors import ConfigError, DriverError, DriverUnreachable
from gameday.faults import AbortFault, CpuFault, LatencyFault, LimitDataFault, TimeoutFault
from gameday.models import Endpoint, Target
from gameday.records import FaultSpec, Labels
from tests.contract import check_driver_contract
from tests.injector.conftest import TOKEN, Proxy, start_proxy, start_upstream
from tests.injector.tcp_servers import echo_and_proxy

pytestmark = pytest.mark.integration

TARGET = Target(service="checkout", dependency="payments")


def spec(fault: object, run: str = "contract-run") -> FaultSpec:
    """A fault spec at the checkout→payments boundary."""
    return FaultSpec.model_validate({"fault": fault, "target": TARGET,
                                     "labels": Labels(run=run, scenario="s", environment="dev",
                                                      step=1)})


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A proxy (with token) in front of a test upstream."""
    folder = tmp_path_factory.mktemp("proxy-driver")
    upstream = start_upstream(folder / "upstream.log")
    try:
        running = start_proxy(upstream.url, folder / "proxy.log")
        yield running
        procs.stop(running.pid)
    finally:
        procs.stop(upstream.pid)


@pytest.fixture(scope="module")
def tcp_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A proxy in TCP mode (with token) in front of an echo upstream."""
    with echo_and_proxy(tmp_path_factory.mktemp("tcp-proxy-driver")) as (_, running):
        yield running


def test_driver_contract(proxy: Proxy) -> None:
    """apply → found by a fresh driver → revert twice → nothing active."""
    handle = check_driver_contract(lambda: ProxyDriver(proxy.admin_url, TOKEN),
                                   spec(LatencyFault(ms=20)))
    assert handle.driver == "proxy"
    assert handle.fault == "latency 20ms"
    assert proxy.rules() == []


@pytest.mark.parametrize("fault, summary", [
    (LatencyFault(ms=20), "latency 20ms downstream"),
    (TimeoutFault(ms=500, direction="both"), "timeout 500ms on 100% both"),
    (LimitDataFault(bytes=1000, probability=0.5), "limit_data 1000 bytes on 50% downstream"),
])
def test_driver_contract_in_tcp_mode(tcp_proxy: Proxy, fault: object, summary: str) -> None:
    """The same contract against a TCP proxy, with shared and TCP-only kinds."""
    driver = ProxyDriver(tcp_proxy.admin_url, TOKEN)
    assert driver.mode() == "tcp"
    handle = check_driver_contract(lambda: ProxyDriver(tcp_proxy.admin_url, TOKEN), spec(fault))
    assert handle.fault == summary
    assert tcp_proxy.rules() == []


def test_each_mode_refuses_the_other_modes_faults(proxy: Proxy, tcp_proxy: Proxy) -> None:
    """abort to a TCP proxy, limit_data or a direction to an HTTP proxy: DriverError, unsent."""
    with pytest.raises(DriverError, match=r"tcp mode: fault.kind: .*allowed: latency, reset"):
        ProxyDriver(tcp_proxy.admin_url, TOKEN).apply(spec(AbortFault()), ttl=5)
    http = ProxyDriver(proxy.admin_url, TOKEN)
    with pytest.raises(DriverError, match=r"http mode: fault\.kind"):
        http.apply(spec(LimitDataFault(bytes=10)), ttl=5)
    with pytest.raises(DriverError, match=r"fault\.direction: applies to TCP endpoints only"):
        http.apply(spec(LatencyFault(ms=5, direction="upstream")), ttl=5)
    assert proxy.rules() == [] and tcp_proxy.rules() == []


def test_applied_fault_reaches_traffic_and_expires(proxy: Proxy) -> None:
    """An applied abort answers clients at once and is gone by itself after its TTL."""
    driver = ProxyDriver(proxy.admin_url, TOKEN)
    handle = driver.apply(spec(AbortFault(status=503), run="ttl-run"), ttl=1.0)
    assert httpx.get(f"{proxy.url}/hello", timeout=5).status_code == 503
    assert time.time() < handle.expires_at <= time.time() + 1.0
    deadline = time.monotonic() + 5
    while driver.active(run="ttl-run") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.active(run="ttl-run") == []
    assert httpx.get(f"{proxy.url}/hello", timeout=5).status_code == 200


def test_wrong_token_is_a_driver_error(proxy: Proxy) -> None:
    """A refused token surfaces as DriverError."""
    with pytest.raises(DriverError, match="token"):
        ProxyDriver(proxy.admin_url, "wrong").active()


def test_unreachable_proxy(tmp_path: Path) -> None:
    """Nothing listening: DriverUnreachable, chained to the httpx error."""
    driver = ProxyDriver(f"http://127.0.0.1:{procs.free_port()}", TOKEN, timeout=1)
    with pytest.raises(DriverUnreachable) as caught:
        driver.check()
    assert isinstance(caught.value.__cause__, httpx.HTTPError)


def test_refuses_non_http_faults_and_foreign_handles(proxy: Proxy) -> None:
    """A CPU fault cannot go to a proxy; a handle of another endpoint is not reverted here."""
    driver = ProxyDriver(proxy.admin_url, TOKEN)
    with pytest.raises(DriverError, match="HTTP faults"):
        driver.apply(spec(CpuFault(load_percent=50)), ttl=5)
    handle = driver.apply(spec(LatencyFault(ms=1), run="foreign"), ttl=30)
    other = ProxyDriver("http://127.0.0.1:1", TOKEN)
    with pytest.raises(DriverError, match="lives at"):
        other.revert(handle)
    driver.revert(handle)


def test_rejected_rule_is_a_driver_error(proxy: Proxy) -> None:
    """A TTL over the proxy's maximum comes back as DriverError naming the field."""
    with pytest.raises(DriverError, match="ttl"):
        ProxyDriver(proxy.admin_url, TOKEN).apply(spec(LatencyFault(ms=1)), ttl=10_000)


def test_driver_for_builds_from_an_endpoint(proxy: Proxy, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """driver_for resolves the token reference and returns a working proxy driver."""
    monkeypatch.setenv("PROXY_DRIVER_TEST_TOKEN", TOKEN)
    endpoint = Endpoint.model_validate({"service": "checkout", "dependency": "payments",
                                        "driver": "proxy", "admin_url": proxy.admin_url,
                                        "token": {"env": "PROXY_DRIVER_TEST_TOKEN"}})
    driver = driver_for(endpoint)
    assert isinstance(driver, ProxyDriver)
    driver.check()
    assert driver.active(run="nobody") == []
    monkeypatch.delitem(DRIVERS, "proxy")
    with pytest.raises(ConfigError, match="no driver"):
        driver_for(endpoint)
