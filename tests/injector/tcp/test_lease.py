"""Leased rules on a real TCP-mode proxy: a held stream is let go when its lease lapses."""

from __future__ import annotations

import pytest

from tests.injector import lease_checks as checks
from tests.injector.conftest import Proxy, rule
from tests.injector.tcp_client import connect, held, recv_exactly, round_trip

pytestmark = pytest.mark.integration

HOLD = rule("blackhole")


def test_a_lapsed_lease_releases_a_held_stream(proxy: Proxy) -> None:
    """An open connection is blackholed; when the lease lapses, with no admin call, what was
    held arrives and the connection carries on."""
    with connect(proxy) as sock:
        round_trip(sock)
        proxy.put(checks.leased(HOLD, 0.5))
        sock.sendall(b"held")
        assert held(sock, 0.2)
        sock.settimeout(checks.LAPSE_BOUND)
        assert recv_exactly(sock, 4) == b"held"
        round_trip(sock)


def test_lapse_with_no_traffic(proxy: Proxy) -> None:
    """The proxy's own timer removes the rule, logs and counts the lapse."""
    checks.check_lapse_with_no_traffic(proxy, HOLD)


def test_renewal_keeps_the_fault(proxy: Proxy) -> None:
    """Renewed in time, the stream stays held."""
    checks.check_renewal_keeps_it(proxy, HOLD)
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert held(sock, 0.3)


def test_a_lapsed_lease_is_never_renewed(proxy: Proxy) -> None:
    """410 with the reason; the rule stays gone."""
    checks.check_lapsed_stays_gone(proxy, HOLD)


def test_bad_renewals_are_refused(proxy: Proxy) -> None:
    """Malformed bodies: 400; no token: 401."""
    checks.check_bad_renewals(proxy)
