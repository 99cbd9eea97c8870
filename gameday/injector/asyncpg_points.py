"""A fault point over asyncpg: connections and pools whose queries pass it, no call site touched.

::

    from gameday.injector.asyncpg_points import create_faulted_pool, point_connection_class

    pool = await create_faulted_pool(dsn, min_size=2)            # point "postgres"
    await pool.fetchrow("select * from orders where id = $1", 42)  # rules act here

    conn = await asyncpg.connect(dsn, connection_class=point_connection_class("db.orders"))

asyncpg's own hook is ``connection_class=`` of :func:`asyncpg.connect` and
:func:`asyncpg.create_pool`: :func:`point_connection_class` builds a subclass of ``base``
(:class:`asyncpg.Connection`, or the service's own subclass) whose query methods pass the point
first: ``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval``, ``fetchmany``,
``prepare``, and ``copy_from_table``, ``copy_from_query``, ``copy_to_table``,
``copy_records_to_table``. A pool's connections are proxies that hand those calls to the
connection, so ``pool.fetch(...)`` and ``async with pool.acquire() as conn`` pass it too.

Not faulted: what a prepared statement does once prepared, ``cursor()``, and the statements
asyncpg sends on its own: a transaction's ``BEGIN``/``COMMIT``/``ROLLBACK``, a pool's reset of
a connection it takes back, ``LISTEN``/``UNLISTEN``. Faulting those would leave the real
connection where no real fault leaves it (a transaction still open after its "lost"
``ROLLBACK``, on a connection that still works); a fault on the query inside the transaction
makes the service roll it back as it would in production.

Errors: ``timeout`` raises :class:`TimeoutError` (what asyncpg raises when a command's
``timeout`` runs out) and ``connection``
:class:`asyncpg.exceptions.ConnectionDoesNotExistError` (what a query on a lost connection
raises); ``errors=`` adds or overrides names. A query under an error rule is never sent;
latency waits, then sends it.

The rules are ``rules`` (a :class:`~gameday.injector.points.PointRules`), else the process's
(:func:`~gameday.injector.points.configure_points`, or ``GAMEDAY_FAULT_RULES``). A missing,
invalid or hostile rules file never breaks a query: nothing is injected and the problem is
counted (see :mod:`gameday.injector.points`). A class built over a faulted class replaces its
point (the outer one acts): a query never passes two points.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from types import FrameType
from typing import Any

import asyncpg
import asyncpg.exceptions

from gameday.injector.point_errors import ErrorFactory
from gameday.injector.points import FaultPoint, PointRules, fault_point

__all__ = ["ASYNCPG_ERRORS", "QUERY_METHODS", "connect_faulted", "create_faulted_pool",
           "point_connection_class"]

#: What an ``error`` fault raises at a PostgreSQL point: what asyncpg raises itself.
ASYNCPG_ERRORS: dict[str, ErrorFactory] = {
    "timeout": TimeoutError,
    "connection": asyncpg.exceptions.ConnectionDoesNotExistError,
}

#: The connection methods that pass the point (those ``base`` has: ``fetchmany`` is 0.30+).
QUERY_METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany",
                 "prepare", "copy_from_table", "copy_from_query", "copy_to_table",
                 "copy_records_to_table")

#: The asyncpg module whose calls of the query methods are the service's: the pool's own
#: ``pool.fetch()`` and the like hand the service's query to a connection.
_SERVICE_SIDE = "asyncpg.pool"


#: Set while a query that passed a point runs: a query method it calls (an outer faulted class
#: over an inner one, a service's override calling another) does not pass a point again.
_passed: ContextVar[bool] = ContextVar("gameday_asyncpg_point_passed", default=False)


def _internal(caller: FrameType | None) -> bool:
    """Whether a query method was called by asyncpg itself (a transaction's BEGIN, a pool's
    reset of a connection it takes back), not by the service."""
    if caller is None:  # started by the event loop (a task): the service's call
        return False
    module = str(caller.f_globals.get("__name__", ""))
    return module.startswith("asyncpg.") and module != _SERVICE_SIDE


def _passing(method: Callable[..., Awaitable[Any]],
             point: FaultPoint) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Who called is the one thing that tells the service's query from asyncpg's own
        # statements (they go through the same public methods). A coroutine's caller frame is
        # its awaiter while its first step runs: read it before the first await.
        if _passed.get() or _internal(sys._getframe(1)):
            return await method(self, *args, **kwargs)
        await point.acheck()
        token = _passed.set(True)
        try:
            return await method(self, *args, **kwargs)
        finally:
            _passed.reset(token)

    return query


def point_connection_class(point: str = "postgres", rules: PointRules | None = None,
                           base: type[asyncpg.Connection] = asyncpg.Connection, *,
                           errors: Mapping[str, ErrorFactory] | None = None
                           ) -> type[asyncpg.Connection]:
    """A subclass of ``base`` whose query methods (:data:`QUERY_METHODS`) pass the fault point
    ``point`` (under ``rules``, else the process's) first: pass it as ``connection_class=``.
    ``errors`` adds to or overrides :data:`ASYNCPG_ERRORS`."""
    if not (isinstance(base, type) and issubclass(base, asyncpg.Connection)):
        raise TypeError(f"base must be asyncpg.Connection or a subclass of it, not {base!r}")
    passing = fault_point(point, rules=rules, errors={**ASYNCPG_ERRORS, **(errors or {})})
    # Connection has __slots__: an empty one keeps instances as they are (no __dict__).
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__,
                                 "gameday_point": passing}
    for name in QUERY_METHODS:
        method = getattr(base, name, None)
        if method is not None:
            namespace[name] = _passing(method, passing)
    # The base's metaclass (asyncpg's ConnectionMeta lets pool proxies pass isinstance).
    metaclass: Callable[..., type[asyncpg.Connection]] = type(base)
    return metaclass(f"Faulted{base.__name__}", (base,), namespace)


def create_faulted_pool(dsn: str | None = None, *, point: str = "postgres",
                        rules: PointRules | None = None,
                        errors: Mapping[str, ErrorFactory] | None = None,
                        **pool_kwargs: Any) -> asyncpg.Pool:
    """:func:`asyncpg.create_pool` with connections that pass the fault point ``point``.

    Awaitable or ``async with``, as asyncpg's. A ``connection_class`` in ``pool_kwargs`` is the
    base the faulted class extends.
    """
    base = pool_kwargs.pop("connection_class", asyncpg.Connection)
    return asyncpg.create_pool(
        dsn, connection_class=point_connection_class(point, rules, base, errors=errors),
        **pool_kwargs)


async def connect_faulted(dsn: str | None = None, *, point: str = "postgres",
                          rules: PointRules | None = None,
                          errors: Mapping[str, ErrorFactory] | None = None,
                          **connect_kwargs: Any) -> asyncpg.Connection:
    """:func:`asyncpg.connect` with a connection that passes the fault point ``point``."""
    base = connect_kwargs.pop("connection_class", asyncpg.Connection)
    return await asyncpg.connect(
        dsn, connection_class=point_connection_class(point, rules, base, errors=errors),
        **connect_kwargs)
