"""A fault point over a redis-py client: every command and pipeline, no call site touched.

::

    import redis.asyncio
    from gameday.injector.redis_points import fault_redis

    cache = fault_redis(redis.asyncio.Redis.from_url(url))   # point "redis"
    await cache.get("cart:42")        # latency / error rules for point "redis" act here

``fault_redis(client, point="redis", rules=None)`` wraps one client instance, sync
:class:`redis.Redis` or :class:`redis.asyncio.Redis` alike (whichever it is: the wrapper is
async where the client's methods are), and returns it. What passes the point:

* every command: ``execute_command`` on the instance, which every command method (``get``,
  ``set``, ``evalsha`` of a script or lock, ...) goes through;
* every pipeline from ``client.pipeline()`` (and so ``client.transaction()``): its ``execute``
  passes the point once for all the commands queued, and the commands a ``WATCH`` sends at once
  (``immediate_execute_command``) pass it one by one. A faulted ``execute`` drops the queued
  commands, as redis-py does after an ``execute`` that failed.

Not faulted: ``pubsub()``, ``monitor()``, and clients made from this one (``client.client()``).

Errors: ``timeout`` raises :class:`redis.exceptions.TimeoutError` and ``connection``
:class:`redis.exceptions.ConnectionError`, what redis-py raises itself, so the service's own
``except`` clauses see the fault; ``errors=`` adds or overrides names. A command under an error
rule is never sent (the server does not see it); latency waits, then sends it.

The rules are ``rules`` (a :class:`~gameday.injector.points.PointRules`), else the process's
(:func:`~gameday.injector.points.configure_points`, or ``GAMEDAY_FAULT_RULES``). A missing,
invalid or hostile rules file never breaks a command: nothing is injected and the problem is
counted (see :mod:`gameday.injector.points`). Wrapping a client again replaces its point (the
last call's name and rules act, once per command): it never faults a command twice.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.exceptions

from gameday.injector.point_errors import ErrorFactory
from gameday.injector.points import FaultPoint, PointRules, fault_point

__all__ = ["REDIS_ERRORS", "fault_redis"]

#: What an ``error`` fault raises at a redis point: redis-py's own exceptions.
REDIS_ERRORS: dict[str, ErrorFactory] = {
    "timeout": redis.exceptions.TimeoutError,
    "connection": redis.exceptions.ConnectionError,
}

Client = TypeVar("Client", bound="redis.Redis | redis.asyncio.Redis")

#: Where a wrapped client keeps its own methods (bound, as they were before the first wrap):
#: wrapping again starts from them, so points never stack.
_ORIGINALS = "_gameday_point_originals"
#: The instance methods a wrap replaces.
_WRAPPED = ("execute_command", "pipeline")


def fault_redis(client: Client, point: str = "redis", rules: PointRules | None = None, *,
                errors: Mapping[str, ErrorFactory] | None = None) -> Client:
    """``client`` (a sync or asyncio redis-py client) with its commands and pipelines passing
    the fault point ``point`` (under ``rules``, else the process's). ``errors`` adds to or
    overrides :data:`REDIS_ERRORS`. Returns the same object, wrapped in place."""
    passing = fault_point(point, rules=rules, errors={**REDIS_ERRORS, **(errors or {})})
    stored = vars(client)
    originals: dict[str, Callable[..., Any]] = stored.get(_ORIGINALS) or {
        name: getattr(client, name) for name in _WRAPPED}
    open_pipeline = originals["pipeline"]

    @functools.wraps(open_pipeline)
    def pipeline(*args: Any, **kwargs: Any) -> Any:
        return _fault_pipeline(open_pipeline(*args, **kwargs), passing)

    # Instance attributes shadow the class's methods for this client only; every command method
    # looks ``self.execute_command`` up on the instance, so they all pass the point. The
    # decorator is async where the method is (redis.asyncio), so one code path serves both.
    wrapped: dict[str, Callable[..., Any]] = {
        "execute_command": passing(originals["execute_command"]), "pipeline": pipeline}
    for name, method in wrapped.items():
        setattr(client, name, method)
    stored[_ORIGINALS] = originals
    return client


def _fault_pipeline(pipe: Any, passing: FaultPoint) -> Any:
    """``pipe`` with ``execute`` passing the point once, and WATCH-mode commands each."""
    execute = pipe.execute
    # Commands sent at once while WATCHing never reach ``execute``: they pass the point
    # themselves (a pipeline of a cluster client may not have the method).
    immediate = getattr(pipe, "immediate_execute_command", None)
    methods: dict[str, Callable[..., Any]] = {}
    if immediate is not None:
        methods["immediate_execute_command"] = passing(immediate)
    if inspect.iscoroutinefunction(execute):

        @functools.wraps(execute)
        async def aexecute(*args: Any, **kwargs: Any) -> Any:
            try:
                await passing.acheck()
            except BaseException:
                # A failed execute leaves no queued commands behind in redis-py (it resets in
                # a finally): a service that retries with the same pipeline must not send
                # them twice.
                await pipe.reset()
                raise
            return await execute(*args, **kwargs)

        methods["execute"] = aexecute
    else:

        @functools.wraps(execute)
        def sexecute(*args: Any, **kwargs: Any) -> Any:
            try:
                passing.check()
            except BaseException:
                pipe.reset()  # as above
                raise
            return execute(*args, **kwargs)

        methods["execute"] = sexecute
    for name, method in methods.items():
        setattr(pipe, name, method)
    return pipe
