"""``chaosctl demo``: start, inspect and stop the built-in demo stack."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError
from gameday.extras import require


def _port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name.strip(), int(port)


def register(subparsers: Any) -> None:
    """Add ``demo`` and its sub-commands."""
    from gameday.demo.parts import AUTH_TIMEOUT, PORT_NAMES
    from gameday.units import format_duration

    parser = subparsers.add_parser(
        "demo",
        help="start, inspect and stop the built-in demo stack",
        description="The demo stack: user-service calling auth-service (HTTP), Redis and "
        "PostgreSQL (TCP) through gameday fault proxies, their exporters, a load generator, "
        "Prometheus, an Alertmanager with a local pager, and a Prefect server (its state in the "
        "same PostgreSQL), all on 127.0.0.1.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state", type=Path, default=None, metavar="DIR",
                        help="state folder (default: $GAMEDAY_STATE/demo, else ./.gameday/demo)")
    sub = parser.add_subparsers(dest="demo_command", metavar="SUBCOMMAND", required=True)

    start = sub.add_parser(
        "up", parents=[common], help="start the stack and wait until it is ready",
        description="Start every part in its own process session on free ports, wait until "
        "Prometheus scrapes them all (and the Prefect API answers), then write "
        "environment.yaml into the state folder and print the URLs.")
    start.add_argument("--no-prefect", action="store_true",
                       help="do not start a Prefect server (faster; for tests)")
    start.add_argument("--port", type=_port, action="append", default=[], metavar="NAME=PORT",
                       help="use this port for a part (repeatable); names: "
                       + ", ".join(PORT_NAMES))
    start.add_argument("--rate", type=float, default=20.0,
                       help="load generator requests per second (default 20)")
    start.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to wait until the stack is ready (default 60)")
    start.add_argument("--record-samples", action="store_true",
                       help="also append every load request's timing to samples.jsonl")
    start.add_argument("--auth-timeout", default=format_duration(AUTH_TIMEOUT),
                       metavar="DURATION", help="user-service's per-attempt timeout of "
                       f"auth-service calls (default {format_duration(AUTH_TIMEOUT)})")
    start.set_defaults(handler=_up)

    change = sub.add_parser(
        "set", parents=[common], help="change a setting of the running stack",
        description="Change a setting of the running stack by restarting user-service alone "
        "(same port, same environment, its log appended to), and wait until it is ready and "
        "scraped again; the rest of the stack keeps running.")
    change.add_argument("--auth-timeout", required=True, metavar="DURATION",
                        help="user-service's per-attempt timeout of auth-service calls, "
                        "e.g. 120ms")
    change.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait until user-service is ready again (default 30)")
    change.set_defaults(handler=_set)

    show = sub.add_parser("status", parents=[common], help="show each part up or down",
                          description="Show each recorded part: PID, URL, up or down. Exit 0 "
                          "when every part is up, 1 otherwise.")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_status)

    stop = sub.add_parser("down", parents=[common], help="stop the recorded processes",
                          description="Stop exactly the processes recorded in state.json, by "
                          "PID (also after the runner that started them crashed).")
    stop.set_defaults(handler=_down)

    env = sub.add_parser("env", parents=[common], help="print the variables a client needs",
                         description="Print shell exports of GAMEDAY_DEMO_TOKEN (and "
                         "PREFECT_API_URL): eval \"$(chaosctl demo env)\".")
    env.set_defaults(handler=_env)

    pages = sub.add_parser(
        "pages", parents=[common], help="what on-call would have been paged with",
        description="The notifications the demo's Alertmanager sent to its pager, oldest "
        "first: what on-call would have been paged with. An alert a game day expected is "
        "silenced while it runs, so it is not among them.")
    pages.add_argument("--json", action="store_true", help="one JSON object per notification")
    pages.set_defaults(handler=_pages)


def _folder(args: argparse.Namespace) -> Path:
    from gameday.demo.state import default_state_dir

    return args.state if args.state is not None else default_state_dir()


def _up(args: argparse.Namespace) -> int:
    require("demo", "chaosctl demo up")
    from gameday.demo.settings import parse_auth_timeout
    from gameday.demo.stack import UpOptions, up

    auth_timeout = parse_auth_timeout(args.auth_timeout)
    ports = dict(args.port)
    if len(ports) != len(args.port):
        raise ConfigError("a part's port is given twice")
    if args.rate < 0 or args.timeout <= 0:
        raise ConfigError("--rate must be >= 0 and --timeout > 0")
    folder = _folder(args)
    began = time.monotonic()
    print(f"starting the demo stack in {folder} …", flush=True)
    state = up(UpOptions(folder, ports, prefect=not args.no_prefect, rate=args.rate,
                         timeout=args.timeout, record_samples=args.record_samples,
                         auth_timeout=auth_timeout))
    print(f"demo stack up in {time.monotonic() - began:.1f}s")
    for note in state.notes:
        print(f"note: {note}")
    width = max(len(part.name) for part in state.parts)
    for part in state.parts:
        extra = ""
        if "admin" in part.ports:
            extra = f"  admin http://127.0.0.1:{part.ports['admin']}"
        print(f"  {part.name.ljust(width)}  {part.url}{extra}  (pid {part.pid})")
    if state.prefect_api_url:
        print(f"Prefect UI:       {state.url('prefect')}   API: {state.prefect_api_url}")
    print(f"Prometheus:       {state.prometheus_url}")
    if state.alertmanager_url:
        print(f"Alertmanager:     {state.alertmanager_url}   pages: chaosctl demo pages"
              f"{_state_option(args)}")
    print(f"environment file: {state.environment_file}")
    print(f"token:            {state.folder / 'token'} (eval \"$(chaosctl demo env"
          f"{_state_option(args)})\" exports it)")
    print(f"stop with:        chaosctl demo down{_state_option(args)}")
    if state.prefect_api_url:
        print(f"blocks:           {_refresh_blocks(state)}")
    return 0


def _refresh_blocks(state: Any) -> str:
    """Save this stack's environment as the demo's blocks on its Prefect server.

    Blocks win over files, and the server keeps its database across restarts: without this,
    blocks imported for an earlier stack would send game days to its old ports.
    """
    import os

    import httpx

    from gameday.demo.state import TOKEN_VARIABLE
    from gameday.errors import GameDayError
    from gameday.extras import installed, prefect_layer

    if not installed("prefect"):
        return "not saved (gameday[prefect] is not installed); game days read the environment file"
    os.environ[TOKEN_VARIABLE] = state.token()
    try:
        provision = prefect_layer("orchestration.provision", "saving the demo's blocks")
        provision.use_api(state.prefect_api_url)
        _environment, saved = provision.import_environment(state.environment_file)
    except (GameDayError, httpx.HTTPError, OSError) as exc:  # the stack is up either way
        return f"not saved ({exc}); game days read the environment file"
    return ", ".join(saved)


def _state_option(args: argparse.Namespace) -> str:
    return f" --state {shlex.quote(str(args.state))}" if args.state is not None else ""


def _status(args: argparse.Namespace) -> int:
    from gameday.demo.stack import status

    folder = _folder(args)
    parts = status(folder)
    if args.json:
        print(json.dumps([{"name": p.name, "pid": p.pid, "url": p.url, "up": p.up,
                           "alive": p.alive, "listening": p.listening} for p in parts], indent=2))
    elif not parts:
        print(f"no demo stack recorded in {folder}")
    else:
        width = max(len(p.name) for p in parts)
        for p in parts:
            word = "up" if p.up else ("not listening" if p.alive else "down")
            print(f"{p.name.ljust(width)}  {word.ljust(13)}  pid {p.pid:<8} {p.url}")
    return 0 if parts and all(p.up for p in parts) else 1


def _down(args: argparse.Namespace) -> int:
    from gameday.demo.stack import down

    folder = _folder(args)
    parts = down(folder)
    if not parts:
        print(f"no demo stack recorded in {folder}; nothing to stop")
    else:
        print(f"stopped {len(parts)} processes: "
              + ", ".join(f"{p.name} ({p.pid})" for p in parts))
    return 0


def _set(args: argparse.Namespace) -> int:
    require("demo", "chaosctl demo set")
    from gameday.demo.settings import SERVICE, parse_auth_timeout, set_auth_timeout
    from gameday.units import format_duration

    seconds = parse_auth_timeout(args.auth_timeout)
    if args.timeout <= 0:
        raise ConfigError("--timeout must be > 0")
    change = set_auth_timeout(_folder(args), seconds, timeout=args.timeout)
    before = format_duration(change.before.auth_timeout)
    if not change.restarted:
        print(f"{SERVICE}'s auth timeout is already {before}; nothing changed")
        return 0
    print(f"{SERVICE}'s auth timeout: {before} → {format_duration(change.after.auth_timeout)}")
    print(f"{SERVICE} restarted: pid {change.old.pid} → {change.new.pid} on {change.new.url}, "
          f"ready in {change.took:.1f}s")
    return 0


def _env(args: argparse.Namespace) -> int:
    from gameday.demo.state import demo_env

    for name, value in demo_env(_folder(args)).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _pages(args: argparse.Namespace) -> int:
    from datetime import datetime

    from gameday.demo.pager import read_pages

    found = read_pages(_folder(args))
    for page in found:
        if args.json:
            print(json.dumps({"at": page.at, "receiver": page.receiver, "status": page.status,
                              "alerts": [{"alertname": a.alertname, "status": a.status,
                                          "labels": a.labels} for a in page.alerts]}))
            continue
        names = ", ".join(sorted({f"{a.alertname} ({a.status})" for a in page.alerts}))
        when = datetime.fromtimestamp(page.at).strftime("%H:%M:%S")
        print(f"{when}  {page.status.ljust(8)}  {names}")
    if not found and not args.json:
        print(f"no pages in {_folder(args)}")
    return 0
