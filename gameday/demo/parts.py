"""What the demo stack is made of: each part's command line, ports, URL and scrape job.

::

    loadgen ─▶ user-service ─▶ auth-proxy ─▶ auth-service
                            └▶ profile-proxy ─▶ profile-store (SQLite)
    prometheus scrapes all of them (the proxies on their admin port) and the pushgateway,
    where game days push their run metrics; prefect stands beside.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gameday.demo import prometheus, pushgateway
from gameday.demo.prometheus import ScrapeTarget
from gameday.errors import ConfigError, DemoError

HOST = "127.0.0.1"
#: Every port ``up`` needs, by the name ``--port NAME=PORT`` uses.
PORT_NAMES = (
    "user-service", "auth-service", "profile-store", "auth-proxy", "auth-proxy-admin",
    "profile-proxy", "profile-proxy-admin", "loadgen", "pushgateway", "prometheus", "prefect",
)
#: Fault proxies: part name → the dependency it stands in front of.
PROXIES = {"auth-proxy": "auth-service", "profile-proxy": "profile-store"}


@dataclass(frozen=True)
class PartSpec:
    """How to start one part."""

    name: str
    argv: list[str]
    ports: dict[str, int]
    url: str
    scrape: ScrapeTarget | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackPlan:
    """Every part of one stack, Prefect first: it is the slowest to become ready."""

    parts: list[PartSpec]
    ports: dict[str, int]

    @property
    def scrape_targets(self) -> list[ScrapeTarget]:
        """The Prometheus jobs, one per scraped part."""
        return [part.scrape for part in self.parts if part.scrape is not None]


def check_port_names(ports: dict[str, int]) -> None:
    """A ``ConfigError`` for a port name ``up`` does not know, or a port out of range."""
    for name, port in ports.items():
        if name not in PORT_NAMES:
            raise ConfigError(f"unknown port name {name!r} (known: {', '.join(PORT_NAMES)})")
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port} for {name} is out of range (1-65535)")
    if len(set(ports.values())) != len(ports):
        raise ConfigError("the same port is given for two parts")


def proxy_available() -> None:
    """A ``DemoError`` when ``chaosctl proxy`` is not part of this installation."""
    if importlib.util.find_spec("gameday.commands.proxy") is None:
        raise DemoError("the fault proxy ('chaosctl proxy') is not installed in this checkout; "
                        "the demo needs it between user-service and its dependencies")


def prefect_binary() -> str:
    """The ``prefect`` command beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "prefect"
    found = str(beside) if beside.exists() else shutil.which("prefect")
    if found is None:
        raise DemoError("the 'prefect' command is not installed: pip install -e . in the venv")
    return found


def _url(port: int) -> str:
    return f"http://{HOST}:{port}"


def plan(folder: Path, ports: dict[str, int], token: str, rate: float, with_prefect: bool,
         record_samples: bool = False) -> StackPlan:
    """The parts of a stack whose state lives in ``folder``, on ``ports`` (every name given)."""
    python = [sys.executable, "-m", "gameday.demo"]
    parts: list[PartSpec] = []
    if with_prefect:
        home = folder / "prefect"
        parts.append(PartSpec(
            "prefect",
            [prefect_binary(), "server", "start", "--host", HOST, "--port", str(ports["prefect"]),
             "--analytics-off"],
            {"http": ports["prefect"]}, _url(ports["prefect"]),
            env={"PREFECT_HOME": str(home),
                 "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
                 "PREFECT_API_URL": f"{_url(ports['prefect'])}/api",
                 "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}))
    for name, extra in (("auth-service", []),
                        ("profile-store", ["--db", str(folder / "profiles.db")])):
        parts.append(PartSpec(name, [*python, name, "--port", str(ports[name]), *extra],
                              {"http": ports[name]}, _url(ports[name]),
                              ScrapeTarget(name, ports[name])))
    for name, dependency in PROXIES.items():
        listen, admin = ports[name], ports[f"{name}-admin"]
        parts.append(PartSpec(
            name,
            [sys.executable, "-m", "gameday", "proxy", "--listen", f"{HOST}:{listen}",
             "--upstream", _url(ports[dependency]), "--admin", f"{HOST}:{admin}",
             "--target", f"user-service/{dependency}"],
            {"listen": listen, "admin": admin}, _url(listen),
            ScrapeTarget(name, admin, bearer=True), env={"GAMEDAY_PROXY_TOKEN": token}))
    parts.append(PartSpec(
        "user-service",
        [*python, "user-service", "--port", str(ports["user-service"]),
         "--auth-url", _url(ports["auth-proxy"]), "--profile-url", _url(ports["profile-proxy"])],
        {"http": ports["user-service"]}, _url(ports["user-service"]),
        ScrapeTarget("user-service", ports["user-service"])))
    record = ["--record", str(folder / "samples.jsonl")] if record_samples else []
    parts.append(PartSpec(
        "loadgen",
        [*python, "loadgen", "--port", str(ports["loadgen"]), "--target",
         _url(ports["user-service"]), "--rate", f"{rate:g}", *record],
        {"http": ports["loadgen"]}, _url(ports["loadgen"]),
        ScrapeTarget("loadgen", ports["loadgen"])))
    # Pushed series carry their own job and run labels: honor_labels keeps them.
    parts.append(PartSpec(
        "pushgateway", pushgateway.argv(ports["pushgateway"]), {"http": ports["pushgateway"]},
        _url(ports["pushgateway"]), ScrapeTarget("pushgateway", ports["pushgateway"],
                                                 honor_labels=True)))
    parts.append(PartSpec(
        "prometheus",
        prometheus.argv(folder / "prometheus.yml", folder / "prometheus", ports["prometheus"]),
        {"http": ports["prometheus"]}, _url(ports["prometheus"])))
    return StackPlan(parts, ports)
