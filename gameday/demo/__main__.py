"""``python -m gameday.demo SERVICE``: run one part of the demo stack in this process.

``chaosctl demo up`` starts each part this way; running one by hand helps when debugging.
Every part binds 127.0.0.1 and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gameday.demo.http import Handler, serve
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.resilience import RetryPolicy
from gameday.redact import install_log_redaction

HOST = "127.0.0.1"


class _Closable(Protocol):
    async def close(self) -> None: ...


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gameday.demo",
                                     description="Run one part of the gameday demo stack.")
    sub = parser.add_subparsers(dest="part", required=True, metavar="PART")

    auth = sub.add_parser("auth-service", help="checks bearer tokens")
    auth.add_argument("--port", type=int, required=True)
    auth.add_argument("--work-ms", type=float, default=3.0, help="wait per check (default 3)")

    store = sub.add_parser("profile-store", help="profiles over HTTP, SQLite behind")
    store.add_argument("--port", type=int, required=True)
    store.add_argument("--db", type=Path, required=True, help="SQLite file")
    store.add_argument("--users", type=int, default=1000, help="profiles to seed (default 1000)")

    users = sub.add_parser("user-service", help="GET /users/{id}: auth, then profile")
    users.add_argument("--port", type=int, required=True)
    users.add_argument("--auth-url", required=True, help="auth-service, through its proxy")
    users.add_argument("--profile-url", required=True, help="profile-store, through its proxy")
    users.add_argument("--auth-timeout-ms", type=float, default=200.0)
    users.add_argument("--auth-retries", type=int, default=2)
    users.add_argument("--profile-timeout-ms", type=float, default=500.0)
    users.add_argument("--profile-retries", type=int, default=1)
    users.add_argument("--backoff-ms", type=float, default=20.0, help="first retry's backoff")
    users.add_argument("--no-breaker", action="store_true", help="no circuit breaker on auth")

    load = sub.add_parser("loadgen", help="open-model load on user-service")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--target", required=True, help="user-service base URL")
    load.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    load.add_argument("--users", type=int, default=1000)
    load.add_argument("--record", type=Path, default=None, help="append samples to this JSONL")
    return parser


async def _run(args: argparse.Namespace) -> None:
    closers: list[_Closable] = []
    background: asyncio.Task[None] | None = None
    handler: Handler
    if args.part == "auth-service":
        from gameday.demo.auth import auth_handler

        handler = auth_handler(ServiceMetrics("auth-service"), work_ms=args.work_ms)
    elif args.part == "profile-store":
        from gameday.demo.profiles import open_store, profile_handler

        handler = profile_handler(ServiceMetrics("profile-store"), open_store(args.db, args.users))
    elif args.part == "user-service":
        from gameday.demo.users import CallPolicy, Dependency, user_handler

        metrics = ServiceMetrics("user-service")
        backoff = args.backoff_ms / 1000
        auth = Dependency("auth-service", args.auth_url, CallPolicy(
            args.auth_timeout_ms / 1000, RetryPolicy(args.auth_retries, backoff, 10 * backoff),
            breaker=not args.no_breaker), metrics)
        profiles = Dependency("profile-store", args.profile_url, CallPolicy(
            args.profile_timeout_ms / 1000,
            RetryPolicy(args.profile_retries, backoff, 10 * backoff)), metrics)
        closers += [auth, profiles]
        handler = user_handler(metrics, auth, profiles)
    else:
        from gameday.demo.load import LoadGenerator, load_handler

        generator = LoadGenerator(args.target, args.rate, args.users, record=args.record)
        closers.append(generator)
        handler = load_handler(generator)

        async def load() -> None:
            await generator.wait_ready()
            await generator.run()

        background = asyncio.create_task(load())

    server = await serve(handler, HOST, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).info("%s listening on http://%s:%d", args.part, HOST, args.port)
    await stop.wait()
    if background is not None:
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
    server.close()
    for closer in closers:
        await closer.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the part named on the command line until signalled."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    install_log_redaction()
    # One line per outgoing request would fill the logs at 20 requests per second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        import uvloop  # lighter on CPU than the default loop; optional

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run  # type: ignore[assignment]
    try:
        runner(_run(args))
    except OSError as exc:
        print(f"{args.part}: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
