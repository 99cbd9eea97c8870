"""The exceptions an ``error`` fault raises at a fault point, by name.

``timeout`` is ``TimeoutError`` and ``connection`` is ``ConnectionError``, everywhere. A
service names its own: ``register_error("pool_exhausted", PoolExhausted)`` for the whole
process, or ``errors=`` on one point or one :class:`~gameday.injector.points.PointRules`
(a point's own win, then its rules', then the process's, then the built-in two). The ready
wrappers map ``timeout`` and ``connection`` to their client library's exceptions, so the
service's own ``except`` clauses see what the library would raise.

A name nothing maps, or an exception that cannot be built from its message, injects nothing
and is counted (``gameday_transport_rules_errors_total{reason="unknown_error"}`` or
``"bad_error"``): a rule the service cannot act on must not fail its calls.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Union

from gameday.faults import ERROR_NAME

if TYPE_CHECKING:
    from gameday.injector.point_decide import PointDecision

#: An exception type, or a callable that builds the exception from its message.
ErrorFactory = Union[type[BaseException], Callable[[str], BaseException]]  # noqa: UP007

BUILT_IN: dict[str, ErrorFactory] = {"timeout": TimeoutError, "connection": ConnectionError}
_registered: dict[str, ErrorFactory] = {}
_lock = threading.Lock()
_NAME = re.compile(ERROR_NAME)
#: Rule ids already counted for an error they could not raise: once per rule, not per call.
_reported: set[tuple[str, str]] = set()
MAX_REPORTED = 10_000


def register_error(name: str, factory: ErrorFactory) -> None:
    """Let ``error`` faults named ``name`` raise what ``factory`` builds, in this process."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"error name {name!r} must match {ERROR_NAME}")
    if not callable(factory):
        raise TypeError("the factory must be an exception type or a callable returning one")
    with _lock:
        _registered[name] = factory


def unregister_error(name: str) -> None:
    """Forget a name registered with :func:`register_error`."""
    with _lock:
        _registered.pop(name, None)


def factory_for(name: str, *overrides: Mapping[str, ErrorFactory]) -> ErrorFactory | None:
    """What raises ``name``: the first of ``overrides`` that maps it, the process's, the
    built-in; None if nothing does."""
    for mapping in (*overrides, _registered, BUILT_IN):
        found = mapping.get(name)
        if found is not None:
            return found
    return None


def message(decision: PointDecision, point: str) -> str:
    """``fault injected at redis: connection (rule r-1f2e, scenario cache-errors)``."""
    rule = decision.error_rule or decision.rules[-1]
    return (f"fault injected at {point}: {decision.error} (rule {rule.id}, scenario "
            f"{rule.labels.scenario})")


def raise_for(decision: PointDecision, point: str,
              *overrides: Mapping[str, ErrorFactory]) -> BaseException | None:
    """The exception to raise for ``decision`` at ``point``; None when it raises nothing or
    its name cannot be raised here (counted once per rule)."""
    if decision.error is None:
        return None
    factory = factory_for(decision.error, *overrides)
    if factory is None:
        report_once(decision, "unknown_error")
        return None
    try:
        error = factory(message(decision, point))
    except Exception:
        report_once(decision, "bad_error")
        return None
    if not isinstance(error, BaseException):
        report_once(decision, "bad_error")
        return None
    return error


def report_once(decision: PointDecision, reason: str) -> None:
    """Count ``reason`` for the decision's error rule, once per rule (it fires on every call
    it covers)."""
    from gameday.injector.point_decide import count

    key = ((decision.error_rule or decision.rules[-1]).id, reason)
    with _lock:
        if key in _reported:
            return
        if len(_reported) >= MAX_REPORTED:
            _reported.clear()
        _reported.add(key)
    count.problem(reason)
