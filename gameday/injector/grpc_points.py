"""Fault points on gRPC calls: client interceptors for ``grpc`` and ``grpc.aio`` channels.

::

    from gameday.injector.grpc_points import aio_fault_interceptors, faulted_channel
    from gameday.injector.points import configure_points

    configure_points(rules_file="/etc/chaos/rules.json")      # or GAMEDAY_FAULT_RULES
    channel = faulted_channel(grpc.insecure_channel("payments:50051"))   # sync
    channel = grpc.aio.insecure_channel("payments:50051",                # asyncio
                                        interceptors=aio_fault_interceptors())

Every call is a fault point named ``prefix`` + the full method name:
``grpc:/shop.Payments/Charge``. A rule names it exactly, or covers it with a prefix ending in
``*`` (``grpc:*``, ``grpc:/shop.Payments/*``). The rules are those of ``rules=``, else the
process's (:func:`~gameday.injector.points.configure_points`, or ``GAMEDAY_FAULT_RULES``): a
call no rule names goes straight to the channel.

All four call shapes (unary and streaming, either way) and every way of making them
(``stub.Say(...)``, ``.with_call``, ``.future``, iterating a stream, ``await``, ``async for``):

* ``latency`` waits before the call is made (the thread sleeps, in ``.future()`` too;
  asyncio awaits). The wait counts against the call's timeout as network time would: what
  is left of it goes to the call, and a timeout shorter than the delay ends the call with
  ``DEADLINE_EXCEEDED`` when the timeout is up, as the channel would.
* ``error`` ends the call with a gRPC status before it reaches the network, the status a
  server would have sent: the sync caller gets a :class:`grpc.RpcError` that is also a
  :class:`grpc.Call` and a :class:`grpc.Future` (as grpcio's own), the asyncio caller a
  :class:`grpc.aio.AioRpcError`. The error names a status code, any case (``UNAVAILABLE``,
  ``resource_exhausted``), or is ``timeout`` (``DEADLINE_EXCEEDED``) or ``connection``
  (``UNAVAILABLE``); details read ``fault injected at <point>: <error> (rule <id>, scenario
  <scenario>)``. Another name (``OK`` too) injects nothing and is counted once per rule
  (``gameday_transport_rules_errors_total{reason="unknown_error"}``): the call goes through.

As at every fault point, a missing, invalid or hostile rules file, or a failure of the
interceptor's own, never breaks a call: it goes through unfaulted, and the problem is
counted. Faulted calls are counted in ``chaos_faults_injected_total{point=...}`` and marked
on the current span. ``grpcio`` is the ``grpc`` extra: only this module and
:mod:`~gameday.injector.grpc_aio_points` import it.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from gameday.injector.point_decide import PointDecision, count, trace
from gameday.injector.point_errors import message, report_once
from gameday.injector.points import PointRules, point_rules
from gameday.models.targets import POINT_NAME

if TYPE_CHECKING:
    from gameday.injector.grpc_aio_points import aio_fault_interceptors as aio_fault_interceptors

__all__ = ["FaultInterceptor", "FaultedRpcError", "aio_fault_interceptors",
           "fault_interceptors", "faulted_channel", "status_for"]

PREFIX = "grpc:"
_NAME = re.compile(POINT_NAME)
_ALIASES = {"timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
            "connection": grpc.StatusCode.UNAVAILABLE}
# OK is no failure: a unary call ended with OK and no response has nothing to give the caller.
_STATUSES = {code.name: code for code in grpc.StatusCode if code is not grpc.StatusCode.OK}
#: What grpcio's channel says when a call's deadline passes.
DEADLINE_DETAILS = "Deadline Exceeded"

E = TypeVar("E", bound=BaseException)


def status_for(error: str) -> grpc.StatusCode | None:
    """The status an ``error`` fault named ``error`` ends a call with; None: none."""
    return _ALIASES.get(error.lower()) or _STATUSES.get(error.upper())


@dataclass(frozen=True, slots=True)
class Abort:
    """The status a faulted call ends with, before any byte is sent."""

    code: grpc.StatusCode
    details: str

    @property
    def debug_error_string(self) -> str:
        return f"{self.code.name}:{self.details}"  # as the channel's core writes it


@dataclass(frozen=True, slots=True)
class Pending:
    """A call some rule fired on: how long to wait before it, and whether its deadline
    passes first."""

    point: str
    decision: PointDecision
    wait: float
    #: The call's deadline passes during the wait: it ends there, as DEADLINE_EXCEEDED.
    expires: bool


class Faults:
    """What the sync and asyncio interceptors share: the rules, and each call's fault."""

    __slots__ = ("prefix", "rules")

    def __init__(self, rules: PointRules | None, prefix: str) -> None:
        if not _NAME.match(prefix + "/pkg.Service/Method"):
            raise ValueError(f"point prefix {prefix!r}: letters, digits and ._/:- only, "
                             f"starting with a letter or digit (as in 'grpc:')")
        self.rules = rules
        self.prefix = prefix

    def begin(self, method: str | bytes, timeout: float | None) -> Pending | None:
        """What to do before the call to ``method``; None: make it as it is."""
        try:
            rules = self.rules if self.rules is not None else point_rules()
            if rules is None:
                return None
            point = self.prefix + (method.decode() if isinstance(method, bytes) else method)
            if not rules.for_point(point):  # the fast path: no rule names this call
                return None
            decision = rules.decide(point)
            if decision is None:
                return None
            wait = decision.delay_s(rules.source.clock()) if decision.delay_ms else 0.0
            if wait > 0 and timeout is not None and wait >= timeout:
                return Pending(point, decision, max(0.0, timeout), True)
            return Pending(point, decision, wait, False)
        except Exception:  # a service must never see the injector's own bug
            count.internal()
            return None

    def end(self, pending: Pending, waited: float, build: Callable[[Abort], E]) -> E | None:
        """After the wait: the error that ends the call (counted and traced); None: make it."""
        try:
            decision, point = pending.decision, pending.point
            error, code = None, None
            if pending.expires:
                # The deadline ended the call first: only the delay acted.
                count.injected(decision, point, False)
                trace(decision, point, waited, None, injector="grpc")
                return build(Abort(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_DETAILS))
            if decision.error is not None:
                code = status_for(decision.error)
                if code is None:
                    report_once(decision, "unknown_error")
                else:
                    error = build(Abort(code, message(decision, point)))
            count.injected(decision, point, error is not None)
            if error is not None or decision.delay_ms:
                trace(decision, point, waited, error, injector="grpc",
                      error_text=code.name if error is not None and code is not None else None)
            return error
        except Exception:
            count.internal()
            return None


def remaining(timeout: float | None, waited: float) -> float | None:
    """What the call's timeout leaves after the wait (the deadline does not move)."""
    return None if timeout is None else max(0.0, timeout - waited)


class FaultedRpcError(grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[misc]
    """A call ended by a fault: what grpcio hands back for a call a server failed (its
    ``_InactiveRpcError``): the error, its call and its finished future at once."""

    def __init__(self, abort: Abort) -> None:
        super().__init__()
        self._abort = abort

    def code(self) -> grpc.StatusCode:
        return self._abort.code

    def details(self) -> str:
        return self._abort.details

    def debug_error_string(self) -> str:
        return self._abort.debug_error_string

    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False  # the call is over: grpcio's answer for a terminated call

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> FaultedRpcError:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return self.__traceback__

    # A streaming response raises the status on the first read, as a failed stream does.
    def __iter__(self) -> FaultedRpcError:
        return self

    def __next__(self) -> Any:
        raise self

    def next(self) -> Any:
        raise self

    def __str__(self) -> str:
        return (f"<{type(self).__name__} of RPC that terminated with:\n"
                f"\tstatus = {self._abort.code}\n\tdetails = \"{self._abort.details}\"\n"
                f"\tdebug_error_string = \"{self._abort.debug_error_string}\"\n>")

    __repr__ = __str__


class _CallDetails(
        collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                "wait_for_ready", "compression")),
        grpc.ClientCallDetails):  # type: ignore[misc]
    pass


def _with_timeout(details: Any, timeout: float | None) -> Any:
    return _CallDetails(details.method, timeout, getattr(details, "metadata", None),
                        getattr(details, "credentials", None),
                        getattr(details, "wait_for_ready", None),
                        getattr(details, "compression", None))


class FaultInterceptor(grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
                       grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
                       grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
                       grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Fault points on every call of a sync channel (``grpc.intercept_channel``)."""

    def __init__(self, rules: PointRules | None = None, prefix: str = PREFIX) -> None:
        self._faults = Faults(rules, prefix)

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any,
                   request: Any) -> Any:
        timeout = details.timeout
        pending = self._faults.begin(details.method, timeout)
        if pending is None:
            return continuation(details, request)
        started = time.monotonic()
        if pending.wait:
            time.sleep(pending.wait)
        waited = time.monotonic() - started
        error = self._faults.end(pending, waited, FaultedRpcError)
        if error is not None:
            # Returned, not raised: grpcio raises it from the blocking call and
            # ``.with_call``, hands it back from ``.future``, raises it on a stream's read.
            return error
        if pending.wait and timeout is not None:
            details = _with_timeout(details, remaining(timeout, waited))
        return continuation(details, request)

    def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any],
                              client_call_details: Any, request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation: Callable[[Any, Any], Any],
                               client_call_details: Any, request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation: Callable[[Any, Any], Any],
                               client_call_details: Any, request_iterator: Any) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation: Callable[[Any, Any], Any],
                                client_call_details: Any, request_iterator: Any) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)


def fault_interceptors(rules: PointRules | None = None, prefix: str = PREFIX
                       ) -> list[FaultInterceptor]:
    """The interceptors for ``grpc.intercept_channel(channel, *fault_interceptors())``: every
    call shape is a fault point ``prefix + method``, under ``rules`` or the process's."""
    return [FaultInterceptor(rules, prefix)]


def faulted_channel(channel: grpc.Channel, rules: PointRules | None = None,
                    prefix: str = PREFIX) -> grpc.Channel:
    """``channel`` with a fault point on every call (see :func:`fault_interceptors`)."""
    return grpc.intercept_channel(channel, *fault_interceptors(rules, prefix))


def __getattr__(name: str) -> Any:
    # The asyncio half lives beside this one; both halves are reachable from here.
    if name == "aio_fault_interceptors":
        from gameday.injector import grpc_aio_points

        return grpc_aio_points.aio_fault_interceptors
    raise AttributeError(name)
