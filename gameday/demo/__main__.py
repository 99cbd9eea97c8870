"""``python -m gameday.demo PART``: run one part of the demo stack in this process.

``chaosctl demo up`` starts each part this way; running one by hand helps when debugging.
Every part is a Starlette app on uvicorn, binds 127.0.0.1 and stops on SIGTERM or SIGINT
within about a second (in-flight requests get :data:`~gameday.demo.web.GRACEFUL_SECONDS`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.applications import Starlette

from gameday.demo import traces
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.web import HOST, server, uvloop_available
from gameday.redact import install_log_redaction

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gameday.demo",
        description="Run one part of the gameday demo stack on 127.0.0.1 until SIGTERM or "
                    "SIGINT. loadgen calls user-service, which calls auth-service over HTTP, "
                    "Redis (profile cache) and PostgreSQL (profiles), each through a fault "
                    "proxy.")
    sub = parser.add_subparsers(dest="part", required=True, metavar="PART")

    auth = sub.add_parser(
        "auth-service", help="checks bearer tokens: GET|POST /verify",
        description="auth-service: GET|POST /verify checks 'Authorization: Bearer <token>'.")
    auth.add_argument("--port", type=int, required=True, help="port to listen on")
    auth.add_argument("--work-ms", type=float, metavar="MS", default=3.0,
                      help="time each check waits, as a real lookup would (default 3)")

    users = sub.add_parser(
        "user-service", help="GET /users/{id}: auth-service, then Redis, then PostgreSQL",
        description="user-service: GET /users/{id} checks the token with auth-service, reads "
                    "the profile from Redis and, on a miss or a cache failure, from "
                    "PostgreSQL. The database password is read from PGPASSWORD.")
    users.add_argument("--port", type=int, required=True, help="port to listen on")
    users.add_argument("--auth-url", required=True,
                       help="auth-service base URL (through its proxy), http://HOST:PORT")
    users.add_argument("--redis-url", required=True,
                       help="Redis URL (through its proxy), redis://HOST:PORT/DB")
    users.add_argument("--db-url", required=True,
                       help="PostgreSQL DSN without password (through its proxy), "
                            "postgresql://USER@HOST:PORT/DATABASE")
    users.add_argument("--transport-rules", type=Path, default=None, metavar="PATH",
                       help="gameday transport rules file: inject its faults into the calls "
                            "to auth-service from inside the process")
    users.add_argument("--fault-points", type=Path, default=None, metavar="PATH",
                       help="gameday rules file the fault points of its Redis and PostgreSQL "
                            "calls read (points 'redis' and 'postgres'): faults injected "
                            "inside the process, beside the proxies")
    users.add_argument("--auth-timeout-ms", type=float, metavar="MS", default=200.0,
                       help="per-attempt timeout of auth calls (default 200)")
    users.add_argument("--auth-retries", type=int, metavar="N", default=2,
                       help="retries of a failed auth call (default 2)")
    users.add_argument("--db-timeout-ms", type=float, metavar="MS", default=500.0,
                       help="per-attempt timeout of a database read, pool wait included "
                            "(default 500)")
    users.add_argument("--db-retries", type=int, metavar="N", default=1,
                       help="retries of a database read that timed out or lost its "
                            "connection (default 1)")
    users.add_argument("--cache-timeout-ms", type=float, metavar="MS", default=50.0,
                       help="longest a cache command may take before the database answers "
                            "instead (default 50)")
    users.add_argument("--db-pool-size", type=int, metavar="N", default=8,
                       help="database connections, all opened at start and kept (default 8)")
    users.add_argument("--backoff-ms", type=float, metavar="MS", default=20.0,
                       help="backoff before the first retry, doubling after (default 20)")
    users.add_argument("--no-breaker", action="store_true",
                       help="no circuit breakers: auth-service and Redis are called on every "
                            "request however often they fail")

    load = sub.add_parser(
        "loadgen", help="open-model load on user-service",
        description="loadgen: sends GET /users/{id} at a fixed rate whatever the answers' "
                    "latency. Control: GET|PUT /rate; samples: GET /samples?since=&limit=.")
    load.add_argument("--port", type=int, required=True, help="port to listen on")
    load.add_argument("--target", required=True, help="user-service base URL")
    load.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    load.add_argument("--users", type=int, metavar="USERS", default=20_000,
                      help="user ids drawn uniformly from 1..USERS (default 20000)")
    load.add_argument("--record", type=Path, default=None, metavar="PATH",
                      help="append every sample to this JSONL file")
    pager = sub.add_parser(
        "pager", help="Alertmanager's webhook receiver: what on-call would be paged with",
        description="pager: POST /notify takes Alertmanager's webhook notifications and "
                    "appends each to the --record file; GET /pages lists them.")
    pager.add_argument("--port", type=int, required=True, help="port to listen on")
    pager.add_argument("--record", type=Path, required=True, metavar="PATH",
                       help="JSONL file the notifications are appended to")
    return parser


def _app(args: argparse.Namespace) -> Starlette:
    if args.part == "auth-service":
        from gameday.demo.auth import auth_app

        return auth_app(ServiceMetrics("auth-service"), work_ms=args.work_ms)
    if args.part == "user-service":
        from gameday.demo.users import UserService, UserServiceOptions, user_app

        options = UserServiceOptions(
            auth_url=args.auth_url, redis_url=args.redis_url, db_url=args.db_url,
            transport_rules=args.transport_rules, fault_points=args.fault_points,
            auth_timeout=args.auth_timeout_ms / 1000, auth_retries=args.auth_retries,
            db_timeout=args.db_timeout_ms / 1000, db_retries=args.db_retries,
            cache_timeout=args.cache_timeout_ms / 1000, db_pool_size=args.db_pool_size,
            backoff=args.backoff_ms / 1000, breakers=not args.no_breaker)
        return user_app(UserService(options, ServiceMetrics("user-service")))
    if args.part == "pager":
        from gameday.demo.pager import pager_app

        return pager_app(args.record)
    from gameday.demo.load import LoadGenerator, load_app

    return load_app(LoadGenerator(args.target, args.rate, args.users, record=args.record))


def _stopped(signum: int, frame: FrameType | None) -> None:
    # uvicorn shuts down on the signal, then raises it again for the handler found before it:
    # this one, so that the process ends with 0 rather than by the signal's default action.
    log.debug("stopped by signal %d", signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the part named on the command line until signalled."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    install_log_redaction()
    # One line per outgoing request would fill the logs at 20 requests per second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Before the app is built: its clients and middleware are instrumented as they are made.
    traces.start(args.part)
    app = _app(args)
    uvicorn_server = server(app, args.port)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if uvloop_available():
        import uvloop

        runner = uvloop.run
    log.info("%s starting on http://%s:%d", args.part, HOST, args.port)
    runner(uvicorn_server.serve())
    return 0 if uvicorn_server.started else 1


if __name__ == "__main__":
    sys.exit(main())
