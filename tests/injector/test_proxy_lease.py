"""Leased rules on a real HTTP-mode proxy: a rule nobody renews stops acting on requests."""

from __future__ import annotations

import httpx
import pytest

from tests.injector import lease_checks as checks
from tests.injector.conftest import Proxy, rule, wait_for

pytestmark = pytest.mark.integration

TEAPOT = rule("abort", status=418)


def _status(proxy: Proxy) -> int:
    return httpx.get(f"{proxy.url}/hello", timeout=10).status_code


def test_a_lapsed_lease_ends_the_fault_where_it_acts(clean: Proxy) -> None:
    """No renewal: requests are faulted, then, with no admin call, answered normally."""
    clean.put(checks.leased(TEAPOT, 0.5))
    assert _status(clean) == 418
    wait_for(lambda: _status(clean) == 200, checks.LAPSE_BOUND, "requests unfaulted")


def test_lapse_with_no_traffic(clean: Proxy) -> None:
    """The proxy's own timer removes the rule, logs and counts the lapse."""
    checks.check_lapse_with_no_traffic(clean, TEAPOT)


def test_renewal_keeps_the_fault(clean: Proxy) -> None:
    """Renewed in time, the fault keeps acting."""
    checks.check_renewal_keeps_it(clean, TEAPOT)
    assert _status(clean) == 418


def test_a_lapsed_lease_is_never_renewed(clean: Proxy) -> None:
    """410 with the reason; the rule stays gone."""
    checks.check_lapsed_stays_gone(clean, TEAPOT)
    assert _status(clean) == 200


def test_bad_renewals_are_refused(clean: Proxy) -> None:
    """Malformed bodies: 400; no token: 401."""
    checks.check_bad_renewals(clean)


def test_a_replace_does_not_renew(clean: Proxy) -> None:
    """Only POST /leases renews."""
    checks.check_replace_is_not_renewal(clean, TEAPOT)


def test_a_lease_longer_than_max_ttl_is_refused(clean: Proxy) -> None:
    """The lease is bounded like the TTL."""
    with clean.admin() as admin:
        answer = admin.post("/rules", json=checks.leased(TEAPOT, 10_000))
    assert answer.status_code == 400 and answer.json()["field"] == "lease"
