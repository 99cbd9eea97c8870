"""The run's lease keeper against a real proxy: it renews from its own thread, retries a
renewal that failed within the same lease, and records a fault the proxy says is gone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday import procs
from gameday.drivers.proxy import ProxyDriver
from gameday.faults import AbortFault
from gameday.models import Target
from gameday.protocol.lease import LeaseKeeper
from gameday.records import FaultSpec, Handle, Labels
from tests.injector.conftest import TOKEN, Proxy, start_proxy, start_upstream, wait_for

pytestmark = pytest.mark.integration

SPEC = FaultSpec(fault=AbortFault(status=418), target=Target(service="svc"),
                 labels=Labels(run="keeper-run", scenario="s", environment="e", step=1))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A real upstream and HTTP proxy for the module, stopped by PID."""
    folder: Path = tmp_path_factory.mktemp("keeper")
    upstream = start_upstream(folder / "upstream.log")
    try:
        started = start_proxy(upstream.url, folder / "proxy.log")
        try:
            yield started
        finally:
            procs.stop(started.pid)
    finally:
        procs.stop(upstream.pid)


@pytest.fixture
def driver(proxy: Proxy) -> Iterator[ProxyDriver]:
    """A driver on the module's proxy, which has no rules before and after the test."""
    proxy.put()
    with ProxyDriver(proxy.admin_url, TOKEN) as made:
        yield made
    proxy.put()


def _listed(proxy: Proxy, handle: Handle) -> bool:
    return handle.id in {r["id"] for r in proxy.rules()}


def test_renewed_while_held_lapses_once_stopped(proxy: Proxy, driver: ProxyDriver) -> None:
    """Held for four leases' time the fault stays; stopped, it lapses at the proxy."""
    keeper = LeaseKeeper(driver, 0.6)
    handle = driver.apply(SPEC, 60, keeper.lease)
    keeper.hold(handle)
    try:
        time.sleep(2.4)
        assert _listed(proxy, handle) and keeper.gone(handle) is None
        assert keeper.stats().renewals >= 4 and keeper.stats().lapsed == 0
    finally:
        keeper.stop()
    wait_for(lambda: not _listed(proxy, handle), 5, "lapse after stop")


def test_a_failed_renewal_is_retried_within_the_lease(proxy: Proxy,
                                                      driver: ProxyDriver) -> None:
    """The proxy frozen across a renewal (which times out after 1 s) for well under a lease:
    the renewal fails and is retried; nothing lapses."""
    keeper = LeaseKeeper(driver, 6.0)  # renewals at 2 s, 4 s, ...
    handle = driver.apply(SPEC, 60, keeper.lease)
    keeper.hold(handle)
    try:
        time.sleep(2.5)
        os.kill(proxy.pid, signal.SIGSTOP)
        try:
            time.sleep(3.3)  # the renewal due at 4 s times out at 5 s; the lease ends at 8 s
        finally:
            os.kill(proxy.pid, signal.SIGCONT)
        time.sleep(1.5)
        assert _listed(proxy, handle), "the lease lapsed"
        assert keeper.stats().failures >= 1 and keeper.gone(handle) is None
    finally:
        keeper.stop()
        driver.revert(handle)


def test_a_fault_gone_at_the_proxy_is_recorded(proxy: Proxy, driver: ProxyDriver) -> None:
    """Deleted behind the run's back: the next renewal finds it gone and says why."""
    keeper = LeaseKeeper(driver, 0.9)
    handle = driver.apply(SPEC, 60, keeper.lease)
    keeper.hold(handle)
    try:
        driver.revert(handle)
        wait_for(lambda: keeper.gone(handle) is not None, 5, "the keeper to notice")
        gone = keeper.gone(handle)
        assert gone is not None and gone.reason == "deleted"
        assert keeper.confirm(handle) == gone
    finally:
        keeper.stop()


def test_confirm_sees_a_lapse_before_the_thread_does(proxy: Proxy,
                                                     driver: ProxyDriver) -> None:
    """A keeper whose thread has not run since the lease lapsed (a run waking from SIGSTOP)
    learns it from ``confirm``, as a step does before calling itself held."""
    keeper = LeaseKeeper(driver, 30.0)  # its thread would renew only every 10 s
    handle = driver.apply(SPEC, 60, 0.5)
    keeper.hold(handle)
    try:
        wait_for(lambda: not _listed(proxy, handle), 5, "the lapse")
        gone = keeper.confirm(handle)
        assert gone is not None and gone.reason == "lease expired"
    finally:
        keeper.stop()
