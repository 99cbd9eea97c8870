"""The driver contract test, reused for every driver.

apply → listed by ``active(run=…)`` on a *fresh* driver → revert → revert again → nothing active.
A fault in place is never reported gone by ``renew``. Then, for a driver with leases
(``lease_slack`` set), the lease: it applies with one, a fresh driver renews it, and once it is
reverted a renewal reports it gone.
"""

from __future__ import annotations

from collections.abc import Callable

from gameday.drivers.base import Driver
from gameday.records import FaultSpec, Handle


def check_driver_contract(make_driver: Callable[[], Driver], spec: FaultSpec,
                          ttl: float = 30.0) -> Handle:
    """Run one driver through the contract; returns the handle it produced."""
    driver = make_driver()
    driver.check()
    handle = driver.apply(spec, ttl)
    assert handle.labels == spec.labels
    assert handle.lease_s is None
    assert Handle.model_validate_json(handle.model_dump_json()) == handle
    # The driver that applied the fault is gone: a fresh one must still find it by label.
    del driver
    fresh = make_driver()
    found = fresh.active(run=spec.labels.run)
    assert [h.id for h in found] == [handle.id], found
    assert fresh.active(run="some-other-run") == []
    assert fresh.renew([handle]) == []  # in place: nothing gone, leased or not
    fresh.revert(handle)
    fresh.revert(handle)  # idempotent
    assert fresh.active(run=spec.labels.run) == []
    if fresh.lease_slack is not None:
        check_lease_contract(make_driver, spec, ttl)
    return handle


def check_lease_contract(make_driver: Callable[[], Driver], spec: FaultSpec,
                         ttl: float) -> None:
    """Apply with a lease (as long as the TTL: nothing lapses during the check), renew from a
    fresh driver, revert, and see the renewal report the fault gone."""
    driver = make_driver()
    handle = driver.apply(spec, ttl, ttl)
    try:
        assert handle.lease_s == ttl
        assert Handle.model_validate_json(handle.model_dump_json()) == handle
        assert make_driver().renew([handle]) == []
        assert [h.id for h in make_driver().active(run=spec.labels.run)] == [handle.id]
    finally:
        driver.revert(handle)
    assert [g.handle.id for g in make_driver().renew([handle])] == [handle.id]
