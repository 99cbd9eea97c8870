"""``chaosctl demo set``: change a setting of a running demo stack.

The one setting today is user-service's per-attempt auth timeout. Changing it restarts
user-service alone, on the same port with the same environment, so everything else (the
proxies and their rules, Prometheus's history, Prefect) keeps running and a second game day
can be compared with the first on the same stack. The restart is done under the stack's lock
and recorded in ``state.json`` the moment the new process exists, so ``down`` can always stop
it, whatever happens next.

The restarted process appends to the part's log rather than rewriting it: the lines of the
process it replaces are evidence of the game day that ran against it.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from gameday.demo import parts
from gameday.demo import postgres as pg
from gameday.demo.stack import boot_time, is_running, start_part, stop_part, tail
from gameday.demo.state import DemoSettings, Part, StackState, load_state, locked, save_state
from gameday.errors import DemoError
from gameday.units import format_duration, parse_duration

#: The part the auth timeout belongs to.
SERVICE = "user-service"
#: user-service's HTTP client gives up after 30 s whatever its per-attempt timeout says.
MAX_AUTH_TIMEOUT = 30.0
#: Seconds the restarted user-service gets to be ready and scraped.
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class SettingsChange:
    """What ``set_auth_timeout`` did: the settings and user-service before and after."""

    before: DemoSettings
    after: DemoSettings
    old: Part
    new: Part  # the same record as ``old`` when nothing needed a restart
    state: StackState  # as now recorded in state.json
    took: float  # seconds from stopping the old process to the new one being scraped

    @property
    def restarted(self) -> bool:
        """Whether user-service was restarted."""
        return self.new != self.old


def check_auth_timeout(seconds: float) -> None:
    """A ``DemoError`` for an auth timeout user-service cannot work with."""
    if not 0 < seconds <= MAX_AUTH_TIMEOUT:
        raise DemoError(f"the auth timeout must be more than 0 and at most "
                        f"{format_duration(MAX_AUTH_TIMEOUT)}, got {format_duration(seconds)}; "
                        "give e.g. --auth-timeout 120ms")


def parse_auth_timeout(text: str) -> float:
    """Seconds for ``--auth-timeout`` (``120ms``, ``0.5s``), or a ``DemoError`` saying why not."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise DemoError(f"--auth-timeout: {exc}") from exc
    check_auth_timeout(seconds)
    return seconds


def set_auth_timeout(folder: Path, seconds: float,
                     timeout: float = READY_TIMEOUT) -> SettingsChange:
    """Give user-service of the stack in ``folder`` an auth timeout of ``seconds``.

    user-service is restarted unless it already runs with that timeout; this returns once the
    new process answers ``/ready`` and Prometheus has scraped it, so its series (and the
    ``service_dependency_timeout_seconds`` gauge) are the new process's from then on.
    """
    check_auth_timeout(seconds)
    folder = folder.resolve()
    # Before the lock, which would create a mistyped --state folder just to say it is empty.
    _running_stack(folder, seconds)
    with locked(folder):
        state = _running_stack(folder, seconds)
        old = state.part(SERVICE)
        before = state.settings
        after = DemoSettings.model_validate({**before.model_dump(), "auth_timeout": seconds})
        if after == before and is_running(old):
            return SettingsChange(before, after, old, old, state, 0.0)
        began = time.monotonic()
        spec = parts.user_service(_ports(state), _db_password(folder), seconds,
                                  Path(state.traces) if state.traces else None, folder)
        stop_part(old)
        if is_running(old):
            raise DemoError(f"could not stop {SERVICE} (pid {old.pid}); its auth timeout is "
                            f"still {format_duration(before.auth_timeout)}")
        with contextlib.suppress(OSError), open(old.log, "a", encoding="utf-8") as log:
            log.write(f"--- chaosctl demo set: restarting {SERVICE} with an auth timeout of "
                      f"{format_duration(seconds)} ---\n")
        new = start_part(folder, spec, fresh_log=False)
        state.parts = [new if part.name == SERVICE else part for part in state.parts]
        state.settings = after
        save_state(state)
        _wait_ready(state, new, time.monotonic() + timeout, timeout)
        return SettingsChange(before, after, old, new, state, time.monotonic() - began)


def _running_stack(folder: Path, seconds: float) -> StackState:
    """The recorded stack, every part but user-service running (a crashed one is restarted)."""
    again = f"'chaosctl demo up --state {folder} --auth-timeout {format_duration(seconds)}'"
    state = load_state(folder)
    if state is None:
        raise DemoError(f"no demo stack is running in {folder}; start one with {again}")
    stopped = [part.name for part in state.parts if part.name != SERVICE
               and not is_running(part)]
    if stopped:
        raise DemoError(f"the demo stack in {folder} is not running ({', '.join(stopped)} "
                        f"stopped); stop what is left with 'chaosctl demo down --state "
                        f"{folder}', then start it with {again}")
    return state


def _ports(state: StackState) -> dict[str, int]:
    """user-service's own port and those of the proxies in front of its dependencies."""
    ports = {SERVICE: state.part(SERVICE).ports["http"]}
    for proxy in parts.PROXIES.values():
        ports[proxy.part] = state.part(proxy.part).ports["listen"]
    return ports


def _db_password(folder: Path) -> str:
    path = folder / pg.PASSWORD_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DemoError(f"cannot read the database password in {path} ({exc.strerror}); "
                        f"restart the stack with 'chaosctl demo down --state {folder}' and "
                        "'chaosctl demo up'") from exc


def _started_at(part: Part) -> float | None:
    """The part's start time as its ``process_start_time_seconds`` reports it."""
    if part.start_ticks is None:
        return None
    return boot_time() + part.start_ticks / os.sysconf("SC_CLK_TCK")


def _not_ready(state: StackState, part: Part) -> str | None:
    """Why the restarted part is not ready yet; None once it is."""
    try:
        ready = httpx.get(f"{part.url}/ready", timeout=2.0, trust_env=False).status_code
    except httpx.HTTPError:
        return f"{SERVICE} is not answering yet"
    if ready != 200:
        return f"{SERVICE}'s /ready answers {ready}"
    # Until Prometheus has scraped the new process, queries still show the old one's series.
    query = f'process_start_time_seconds{{job="{SERVICE}"}}'
    try:
        response = httpx.get(f"{state.prometheus_url}/api/v1/query", params={"query": query},
                             timeout=2.0, trust_env=False)
        response.raise_for_status()
        result = response.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return "prometheus is not answering"
    started = _started_at(part)
    if started is None or (result and abs(float(result[0]["value"][1]) - started) < 0.5):
        return None
    return f"prometheus has not scraped the new {SERVICE} yet"


def _wait_ready(state: StackState, part: Part, deadline: float, timeout: float) -> None:
    while True:
        if not is_running(part):
            raise DemoError(f"{SERVICE} exited after its restart; the end of {part.log}:\n"
                            f"{tail(part.log)}\nfix what it says, then run 'chaosctl demo "
                            f"set' again, or stop the stack with 'chaosctl demo down'")
        waiting = _not_ready(state, part)
        if waiting is None:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"{SERVICE} (pid {part.pid}) was not ready {timeout:g}s after its "
                            f"restart: {waiting} (log in {part.log}); it stays recorded, so "
                            "'chaosctl demo down' stops it")
        time.sleep(0.1)
