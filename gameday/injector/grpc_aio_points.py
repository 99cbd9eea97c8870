"""Fault points on ``grpc.aio`` calls: the asyncio half of :mod:`~gameday.injector.grpc_points`.

::

    channel = grpc.aio.insecure_channel("payments:50051",
                                        interceptors=aio_fault_interceptors())

Same points, rules, statuses and counting as the sync interceptors. A faulted call's
interceptor raises :class:`grpc.aio.AioRpcError`, which grpcio itself hands to the caller
however the call is used: ``await call``, ``async for`` over a stream, ``await call.code()``
(and ``call.write`` then fails as on any finished call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gameday.injector.grpc_points import PREFIX, Abort, Faults, remaining
from gameday.injector.points import PointRules

__all__ = ["aio_fault_interceptors"]

Continuation = Callable[[Any, Any], Awaitable[Any]]


def _error(abort: Abort) -> grpc.aio.AioRpcError:
    # Empty metadata, as grpcio reports for a server that sent a status and nothing else.
    return grpc.aio.AioRpcError(abort.code, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                abort.details, abort.debug_error_string)


class _AioFault:
    """One call shape's interceptor; grpc.aio files each by the first shape it is, so every
    shape needs an object of its own (all four share one :class:`Faults`)."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults

    async def _intercept(self, continuation: Continuation, details: Any, request: Any) -> Any:
        timeout = details.timeout
        pending = self._faults.begin(details.method, timeout)
        if pending is None:
            return await continuation(details, request)
        started = time.monotonic()
        if pending.wait:
            await asyncio.sleep(pending.wait)
        waited = time.monotonic() - started
        error = self._faults.end(pending, waited, _error)
        if error is not None:
            raise error  # the interceptors' task fails with it: the call's status
        if pending.wait and timeout is not None:
            details = grpc.aio.ClientCallDetails(
                details.method, remaining(timeout, waited), details.metadata,
                details.credentials, details.wait_for_ready)
        return await continuation(details, request)


class UnaryUnaryFault(_AioFault, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Fault points on unary-unary calls of a ``grpc.aio`` channel."""

    async def intercept_unary_unary(self, continuation: Continuation,
                                    client_call_details: Any, request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class UnaryStreamFault(_AioFault, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Fault points on unary-stream calls of a ``grpc.aio`` channel."""

    async def intercept_unary_stream(self, continuation: Continuation,
                                     client_call_details: Any, request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class StreamUnaryFault(_AioFault, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    """Fault points on stream-unary calls of a ``grpc.aio`` channel."""

    async def intercept_stream_unary(self, continuation: Continuation,
                                     client_call_details: Any, request_iterator: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


class StreamStreamFault(_AioFault, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Fault points on stream-stream calls of a ``grpc.aio`` channel."""

    async def intercept_stream_stream(self, continuation: Continuation,
                                      client_call_details: Any, request_iterator: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


def aio_fault_interceptors(rules: PointRules | None = None, prefix: str = PREFIX
                           ) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors for ``grpc.aio.insecure_channel(target, interceptors=...)`` (or
    ``secure_channel``): every call shape is a fault point ``prefix + method``, under
    ``rules`` or the process's."""
    faults = Faults(rules, prefix)
    return [UnaryUnaryFault(faults), UnaryStreamFault(faults), StreamUnaryFault(faults),
            StreamStreamFault(faults)]
