"""The driver contract test, reused for every driver.

apply → listed by ``active(run=…)`` on a *fresh* driver → revert → revert again → nothing active.
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
    assert Handle.model_validate_json(handle.model_dump_json()) == handle
    # The driver that applied the fault is gone: a fresh one must still find it by label.
    del driver
    fresh = make_driver()
    found = fresh.active(run=spec.labels.run)
    assert [h.id for h in found] == [handle.id], found
    assert fresh.active(run="some-other-run") == []
    fresh.revert(handle)
    fresh.revert(handle)  # idempotent
    assert fresh.active(run=spec.labels.run) == []
    return handle
