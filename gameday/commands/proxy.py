"""``chaosctl proxy``: run the fault-injecting sidecar proxy in the foreground.

::

    chaosctl proxy --listen 127.0.0.1:P --upstream http://H:Q --admin 127.0.0.1:A
                   [--max-ttl 3600s] [--target NAME] [--token-env GAMEDAY_PROXY_TOKEN] [--seed N]

The admin API and its rule format are described in :mod:`gameday.injector.proxy.admin`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gameday.errors import ConfigError
from gameday.units import parse_duration


def register(subparsers: Any) -> None:
    """Add ``proxy``."""
    parser = subparsers.add_parser(
        "proxy",
        help="run the fault-injecting HTTP proxy",
        description="Forward HTTP/1.1 from --listen to --upstream, injecting the faults that "
        "the admin API's rules ask for; each rule expires by itself. Logs JSON lines on stdout.",
    )
    parser.add_argument("--listen", required=True, metavar="HOST:PORT",
                        help="where clients connect, e.g. 127.0.0.1:8080")
    parser.add_argument("--upstream", required=True, metavar="URL",
                        help="where requests go, e.g. http://127.0.0.1:9000")
    parser.add_argument("--admin", required=True, metavar="HOST:PORT",
                        help="admin API address; without a token only a loopback address")
    parser.add_argument("--max-ttl", default="3600s", metavar="DURATION",
                        help="longest TTL a rule may ask for (default: 3600s)")
    parser.add_argument("--target", default="", metavar="NAME",
                        help="target this proxy serves; rules default to it and may not name "
                        "another (e.g. checkout/payments)")
    parser.add_argument("--token-env", default="GAMEDAY_PROXY_TOKEN", metavar="VAR",
                        help="environment variable holding the admin bearer token "
                        "(default: GAMEDAY_PROXY_TOKEN)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="seed for probability and jitter rolls (default: random, logged)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gameday.injector.proxy import ProxyConfig, parse_address, parse_upstream, run

    try:
        max_ttl = parse_duration(args.max_ttl)
    except ValueError as exc:
        raise ConfigError(f"--max-ttl: {exc}") from exc
    config = ProxyConfig(
        listen=parse_address(args.listen, "--listen"),
        upstream=parse_upstream(args.upstream),
        admin=parse_address(args.admin, "--admin"),
        max_ttl=max_ttl,
        target=args.target,
        token=os.environ.get(args.token_env) or None,
        seed=args.seed,
    )
    run(config)
    return 0
