"""``chaosctl proxy``: run the fault-injecting sidecar proxy in the foreground.

::

    chaosctl proxy [--mode http] --listen 127.0.0.1:P --upstream http://H:Q --admin 127.0.0.1:A
                   [--max-ttl 3600s] [--target NAME] [--token-env GAMEDAY_PROXY_TOKEN]
                   [--token-file PATH] [--seed N]
    chaosctl proxy --mode tcp --listen 127.0.0.1:P --upstream H:Q --admin 127.0.0.1:A ...

The admin API and its rule format are described in :mod:`gameday.injector.proxy.admin`; TCP
mode (:mod:`gameday.injector.tcp`) serves the same API with TCP faults. The HTTP mode's
deadlines (``--head-timeout`` and the like) do not apply to TCP and are refused there.

The admin token comes from ``--token-file`` or the variable ``--token-env`` names, stripped of
surrounding whitespace (a Kubernetes Secret's value usually ends in a newline). A token that
is shorter than :data:`MIN_TOKEN_LENGTH`, blank, or holds whitespace or control characters is
refused at start-up: it would be guessable, or no client could ever send it.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.errors import ConfigError
from gameday.units import parse_duration

if TYPE_CHECKING:
    from gameday.injector.proxy.limits import Limits

#: Shortest admin token accepted, in characters (16 hex digits are 64 bits).
MIN_TOKEN_LENGTH = 16
#: Largest token file read, in bytes: a token is a line, not a document.
_MAX_TOKEN_FILE = 4096
_GENERATE = "e.g. from `openssl rand -hex 32`"


def register(subparsers: Any) -> None:
    """Add ``proxy``."""
    parser = subparsers.add_parser(
        "proxy",
        help="run the fault-injecting proxy (HTTP, or any TCP protocol)",
        description="Forward HTTP/1.1 (or, with --mode tcp, any TCP stream) from --listen to "
        "--upstream, injecting the faults that the admin API's rules ask for; each rule expires "
        "by itself. Logs JSON lines on stdout.",
        epilog="Fixed limits of HTTP mode: a head is at most 64 KiB (431 for a request, 502 for "
        "a response); a request has at most 100 header lines (431), a response at most 1000 "
        "header lines (502); a chunk-size line is at most 4096 bytes (400) and trailers at most "
        "16 KiB (431); a connection buffers at most 1 MiB (4 x 256 KiB), whatever its peers "
        "read. An injected delay never counts against a deadline. Every limit hit is counted "
        "in chaos_proxy_limit_hits_total{limit}. In TCP mode each direction of a connection "
        "queues at most 1 MiB before it stops reading.",
    )
    parser.add_argument("--mode", choices=("http", "tcp"), default="http",
                        help="http: an HTTP/1.1 reverse proxy; tcp: relay any TCP protocol "
                        "(PostgreSQL, Redis...) with TCP faults (default: http)")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT",
                        help="where clients connect, e.g. 127.0.0.1:8080")
    parser.add_argument("--upstream", required=True, metavar="URL|HOST:PORT",
                        help="where requests go: http://127.0.0.1:9000 in HTTP mode, "
                        "127.0.0.1:5432 in TCP mode")
    parser.add_argument("--admin", required=True, metavar="HOST:PORT",
                        help="admin API address; without a token only a loopback address")
    parser.add_argument("--max-ttl", default="3600s", metavar="DURATION",
                        help="longest TTL a rule may ask for (default: 3600s)")
    parser.add_argument("--target", default="", metavar="NAME",
                        help="target this proxy serves; rules default to it and may not name "
                        "another (e.g. checkout/payments)")
    parser.add_argument("--token-env", default="GAMEDAY_PROXY_TOKEN", metavar="VAR",
                        help="environment variable holding the admin bearer token, at least "
                        f"{MIN_TOKEN_LENGTH} characters; unset or empty means no token "
                        "(default: GAMEDAY_PROXY_TOKEN)")
    parser.add_argument("--token-file", type=Path, default=None, metavar="PATH",
                        help="file holding the admin bearer token, e.g. a mounted Kubernetes "
                        "Secret; read instead of --token-env (a trailing newline is stripped)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="seed for probability and jitter rolls (default: random, logged)")
    parser.add_argument("--head-timeout", default=None, metavar="DURATION",
                        help="longest wait from a request head's first byte to its end; then "
                        "408 (default: 10s)")
    parser.add_argument("--body-timeout", default=None, metavar="DURATION",
                        help="longest silence inside a request body; then 408 (default: 30s)")
    parser.add_argument("--upstream-timeout", default=None, metavar="DURATION",
                        help="longest wait for the upstream's response head once the request "
                        "is sent; then 504 (default: 60s)")
    parser.add_argument("--max-connections", type=int, default=4096, metavar="N",
                        help="client connections at once; one more is answered 503 and closed "
                        "(in TCP mode: closed) (default: 4096)")
    parser.add_argument("--idle-timeout", default=None, metavar="DURATION",
                        help="close a keep-alive client connection idle this long "
                        "(default: 120s)")
    parser.set_defaults(handler=_run)


#: The HTTP mode's deadlines and their defaults; TCP mode has none of them.
_HTTP_DEADLINES = {"head_timeout": "10s", "body_timeout": "30s", "upstream_timeout": "60s",
                   "idle_timeout": "120s"}


def _limits(args: argparse.Namespace) -> Limits:
    """The ``Limits`` the deadline and cap options ask for."""
    from gameday.injector.proxy.limits import Limits

    if args.mode == "tcp":
        given = [f"--{name.replace('_', '-')}" for name in _HTTP_DEADLINES
                 if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: HTTP mode only (allowed with --mode tcp: "
                              "--max-connections)")
        return Limits(max_connections=args.max_connections)
    timeouts = {}
    for name, default in _HTTP_DEADLINES.items():
        try:
            timeouts[name] = parse_duration(getattr(args, name) or default)
        except ValueError as exc:
            raise ConfigError(f"--{name.replace('_', '-')}: {exc}") from exc
    return Limits(max_connections=args.max_connections, **timeouts)


def _run(args: argparse.Namespace) -> int:
    from gameday.injector.proxy import (
        ProxyConfig,
        parse_address,
        parse_tcp_upstream,
        parse_upstream,
        run,
    )

    try:
        max_ttl = parse_duration(args.max_ttl)
    except ValueError as exc:
        raise ConfigError(f"--max-ttl: {exc}") from exc
    tcp = args.mode == "tcp"
    config = ProxyConfig(
        mode=args.mode,
        listen=parse_address(args.listen, "--listen"),
        upstream=parse_tcp_upstream(args.upstream) if tcp else parse_upstream(args.upstream),
        admin=parse_address(args.admin, "--admin"),
        max_ttl=max_ttl,
        target=args.target,
        token=read_token(args.token_env, args.token_file),
        seed=args.seed,
        limits=_limits(args),
    )
    if tcp:
        from gameday.injector.tcp import run as run_tcp

        run_tcp(config)
    else:
        run(config)
    return 0


def read_token(variable: str, file: Path | None) -> str | None:
    """The admin token from ``file`` or the environment ``variable``; ``ConfigError`` if weak.

    None when no file is given and the variable is unset or empty: the admin API then has no
    auth and may only bind to loopback (``ProxyConfig`` checks that).
    """
    if file is not None:
        where = f"--token-file {file}"
        try:
            with open(file, "rb") as stream:
                data = stream.read(_MAX_TOKEN_FILE + 1)
            if len(data) > _MAX_TOKEN_FILE:
                raise ConfigError(f"{where}: more than {_MAX_TOKEN_FILE} bytes; the file must "
                                  "hold the admin token alone")
            raw = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{where}: cannot read the admin token: {reason or exc}") from exc
    else:
        where = f"--token-env {variable}"
        raw = os.environ.get(variable, "")
        if not raw:
            return None
    token = raw.strip()
    # The token itself is never echoed: these messages end up in pod logs.
    if not token:
        raise ConfigError(f"{where}: the admin token is blank (allowed: at least "
                          f"{MIN_TOKEN_LENGTH} characters, {_GENERATE})")
    if re.search(r"[\s\x00-\x1f\x7f]", token):
        raise ConfigError(f"{where}: the admin token holds whitespace or control characters, "
                          "which no Authorization header can carry (allowed: one line of "
                          f"printable characters, {_GENERATE})")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: the admin token is {len(token)} characters, too short to "
                          f"resist guessing (allowed: at least {MIN_TOKEN_LENGTH}, {_GENERATE})")
    return token
