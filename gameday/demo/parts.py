"""What the demo stack is made of: each part's command line, ports, URL and scrape job.

::

    loadgen ─▶ user-service ─▶ auth-proxy (http) ─▶ auth-service
                 ├──────────▶ cache-proxy (tcp) ─▶ redis      (profile cache, maxmemory + LRU)
                 └──────────▶ db-proxy (tcp)    ─▶ postgres   (profiles)
    prometheus scrapes the services, the proxies (on their admin port), postgres-exporter,
    redis-exporter and the pushgateway, where game days push their run metrics; prefect
    stands beside, its state in its own database of the same PostgreSQL, reached directly.
    prometheus ─▶ alertmanager ─▶ pager (the alerts' webhook, written to pages.jsonl)

PostgreSQL and Redis start first (stage 0): the services and Prefect connect to them at start.
Passwords reach a part through its environment, never its command line (``ps`` shows that).
So does the trace folder (``GAMEDAY_TRACE_DIR``), given to the services and the proxies only:
the servers, exporters and Prefect write no spans of the demo's requests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gameday.demo import alertmanager, exporters, prometheus, pushgateway, redis_server
from gameday.demo import postgres as pg
from gameday.demo.alertmanager import PAGES_FILE
from gameday.demo.prometheus import ScrapeTarget
from gameday.errors import ConfigError, DemoError
from gameday.tracing import TRACE_DIR_ENV

HOST = "127.0.0.1"
#: Every port ``up`` needs, by the name ``--port NAME=PORT`` uses.
PORT_NAMES = (
    "user-service", "auth-service", "postgres", "redis", "auth-proxy", "auth-proxy-admin",
    "cache-proxy", "cache-proxy-admin", "db-proxy", "db-proxy-admin", "postgres-exporter",
    "redis-exporter", "loadgen", "pushgateway", "prometheus", "alertmanager", "pager", "prefect",
)

#: The share of the load generator's requests traced (``OTEL_TRACES_SAMPLER_ARG`` of the
#: root; every span downstream follows the root's decision, so it is the share of all traffic).
#: Measured at the default 20 requests per second on two cores, the seven busiest processes
#: together used about 23% of a core untraced, 27.5% instrumented but sampling nothing, 27-29%
#: at a quarter and 30-33% tracing everything: the instrumentation costs the same whatever the
#: share, recording costs more with it. What decides is the trace folder: everything writes
#: about 95 KB/s and fills the 256 MB cap in 45 minutes, a quarter in under three hours. A
#: quarter still gives five full traces a second, an exemplar in each busy latency bucket at
#: every scrape, and a faulted request is recorded by its proxy whatever the share.
TRACE_SAMPLE = 0.25
#: user-service's per-attempt timeout of auth-service calls, seconds, unless ``up`` is told
#: otherwise: the demo's scenarios are written against it (the ladder's top step breaks it).
AUTH_TIMEOUT = 0.2


@dataclass(frozen=True)
class ProxySpec:
    """A fault proxy in front of one of user-service's dependencies."""

    part: str
    dependency: str
    mode: str  # http | tcp


#: The fault proxies, by the dependency each stands in front of.
PROXIES = {
    "auth-service": ProxySpec("auth-proxy", "auth-service", "http"),
    "redis": ProxySpec("cache-proxy", "redis", "tcp"),
    "postgres": ProxySpec("db-proxy", "postgres", "tcp"),
}


@dataclass(frozen=True)
class PartSpec:
    """How to start one part."""

    name: str
    argv: list[str]
    ports: dict[str, int]
    url: str
    scrape: ScrapeTarget | None = None
    env: dict[str, str] = field(default_factory=dict)
    stage: int = 1  # 0: the servers the others connect to at start


@dataclass(frozen=True)
class StackPlan:
    """Every part of one stack, in the order they start."""

    parts: list[PartSpec]
    ports: dict[str, int]

    @property
    def scrape_targets(self) -> list[ScrapeTarget]:
        """The Prometheus jobs, one per scraped part."""
        return [part.scrape for part in self.parts if part.scrape is not None]

    def stage(self, number: int) -> list[PartSpec]:
        """The parts that start in stage ``number``."""
        return [part for part in self.parts if part.stage == number]


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


def _servers(folder: Path, ports: dict[str, int], cluster: pg.Cluster) -> list[PartSpec]:
    """PostgreSQL, Redis and their exporters, which read them directly (not through a proxy,
    so a fault on a dependency never blinds its exporter)."""
    redis_port, pg_port = ports["redis"], ports["postgres"]
    return [
        PartSpec("postgres", pg.server_argv(cluster), {"tcp": pg_port},
                 f"postgresql://{HOST}:{pg_port}", stage=0),
        PartSpec("redis", redis_server.argv(redis_port, folder / "redis"), {"tcp": redis_port},
                 f"redis://{HOST}:{redis_port}", stage=0),
        PartSpec("postgres-exporter", exporters.postgres_argv(ports["postgres-exporter"]),
                 {"http": ports["postgres-exporter"]}, _url(ports["postgres-exporter"]),
                 ScrapeTarget("postgres-exporter", ports["postgres-exporter"]),
                 env={"DATA_SOURCE_NAME": cluster.dsn("profiles", with_password=True)
                      + "?sslmode=disable"}),
        PartSpec("redis-exporter", exporters.redis_argv(ports["redis-exporter"], redis_port),
                 {"http": ports["redis-exporter"]}, _url(ports["redis-exporter"]),
                 ScrapeTarget("redis-exporter", ports["redis-exporter"])),
    ]


def _prefect(folder: Path, ports: dict[str, int], cluster: pg.Cluster) -> PartSpec:
    home = folder / "prefect"
    database = cluster.dsn("prefect", with_password=True).replace(
        "postgresql://", "postgresql+asyncpg://", 1)
    return PartSpec(
        "prefect",
        [prefect_binary(), "server", "start", "--host", HOST, "--port", str(ports["prefect"]),
         "--analytics-off"],
        {"http": ports["prefect"]}, _url(ports["prefect"]),
        env={"PREFECT_HOME": str(home),
             "PREFECT_API_DATABASE_CONNECTION_URL": database,
             "PREFECT_API_URL": f"{_url(ports['prefect'])}/api",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})


def _sample() -> str:
    # One given to ``up`` wins: someone chasing a rare slow request may want them all.
    return os.environ.get("OTEL_TRACES_SAMPLER_ARG") or f"{TRACE_SAMPLE:g}"


def _traced(trace_folder: Path | None) -> dict[str, str]:
    return {TRACE_DIR_ENV: str(trace_folder)} if trace_folder is not None else {}


def _proxies(ports: dict[str, int], token: str, trace_folder: Path | None) -> list[PartSpec]:
    parts = []
    for spec in PROXIES.values():
        listen, admin = ports[spec.part], ports[f"{spec.part}-admin"]
        upstream = (_url(ports[spec.dependency]) if spec.mode == "http"
                    else f"{HOST}:{ports[spec.dependency]}")
        parts.append(PartSpec(
            spec.part,
            [sys.executable, "-m", "gameday", "proxy", "--mode", spec.mode,
             "--listen", f"{HOST}:{listen}", "--upstream", upstream,
             "--admin", f"{HOST}:{admin}", "--target", f"user-service/{spec.dependency}"],
            {"listen": listen, "admin": admin},
            _url(listen) if spec.mode == "http" else f"tcp://{HOST}:{listen}",
            ScrapeTarget(spec.part, admin, bearer=True),
            env={"GAMEDAY_PROXY_TOKEN": token, **_traced(trace_folder),
                 # Spans named after the part, as the services' are: "auth-proxy".
                 **({"OTEL_SERVICE_NAME": spec.part} if trace_folder is not None else {})}))
    return parts


#: The fault points of user-service's own cache and database calls, each named after the
#: dependency it calls (``gameday.injector.points``).
POINTS = ("redis", "postgres")


def point_rules_file(folder: Path) -> Path:
    """The rules file user-service's fault points read (the demo's ``transport`` endpoint)."""
    return folder / "user-service-faults.json"


def user_service(ports: dict[str, int], db_password: str, auth_timeout: float = AUTH_TIMEOUT,
                 trace_folder: Path | None = None, folder: Path | None = None) -> PartSpec:
    """user-service on ``ports["user-service"]``, calling its dependencies through the proxies'
    ports, each auth-service attempt given ``auth_timeout`` seconds; with the stack's
    ``folder``, its Redis and PostgreSQL calls pass fault points reading
    :func:`point_rules_file`."""
    points = ["--fault-points", str(point_rules_file(folder))] if folder is not None else []
    return PartSpec(
        "user-service",
        [sys.executable, "-m", "gameday.demo", "user-service",
         "--port", str(ports["user-service"]),
         "--auth-url", _url(ports["auth-proxy"]),
         "--redis-url", f"redis://{HOST}:{ports['cache-proxy']}/0",
         "--db-url", f"postgresql://{pg.ROLE}@{HOST}:{ports['db-proxy']}/profiles",
         *points, "--auth-timeout-ms", f"{auth_timeout * 1000:g}"],
        {"http": ports["user-service"]}, _url(ports["user-service"]),
        ScrapeTarget("user-service", ports["user-service"]),
        env={"PGPASSWORD": db_password, **_traced(trace_folder)})


def plan(folder: Path, ports: dict[str, int], token: str, rate: float, with_prefect: bool,
         cluster: pg.Cluster, record_samples: bool = False,
         trace_folder: Path | None = None, auth_timeout: float = AUTH_TIMEOUT) -> StackPlan:
    """The parts of a stack whose state lives in ``folder``, on ``ports`` (every name given).

    ``cluster`` is the demo's PostgreSQL (``postgres.init``) with its port set. With a
    ``trace_folder``, the services and proxies write their spans there. ``auth_timeout`` is
    user-service's per-attempt timeout of its auth-service calls, in seconds.
    """
    python = [sys.executable, "-m", "gameday.demo"]
    traced = _traced(trace_folder)
    parts = _servers(folder, ports, cluster)
    if with_prefect:
        parts.append(_prefect(folder, ports, cluster))
    parts.append(PartSpec("auth-service",
                          [*python, "auth-service", "--port", str(ports["auth-service"])],
                          {"http": ports["auth-service"]}, _url(ports["auth-service"]),
                          ScrapeTarget("auth-service", ports["auth-service"]), env=traced))
    parts += _proxies(ports, token, trace_folder)
    parts.append(user_service(ports, cluster.password, auth_timeout, trace_folder, folder))
    record = ["--record", str(folder / "samples.jsonl")] if record_samples else []
    parts.append(PartSpec(
        "loadgen",
        [*python, "loadgen", "--port", str(ports["loadgen"]), "--target",
         _url(ports["user-service"]), "--rate", f"{rate:g}", "--users", str(pg.USERS), *record],
        {"http": ports["loadgen"]}, _url(ports["loadgen"]),
        ScrapeTarget("loadgen", ports["loadgen"]),
        env={**traced, "OTEL_TRACES_SAMPLER_ARG": _sample()} if traced else {}))
    # Pushed series carry their own job and run labels: honor_labels keeps them.
    parts.append(PartSpec(
        "pushgateway", pushgateway.argv(ports["pushgateway"]), {"http": ports["pushgateway"]},
        _url(ports["pushgateway"]), ScrapeTarget("pushgateway", ports["pushgateway"],
                                                 honor_labels=True)))
    parts.append(PartSpec(
        "pager", [*python, "pager", "--port", str(ports["pager"]),
                  "--record", str(folder / PAGES_FILE)],
        {"http": ports["pager"]}, _url(ports["pager"])))
    parts.append(PartSpec(
        "alertmanager",
        alertmanager.argv(folder / "alertmanager.yml", folder / "alertmanager",
                          ports["alertmanager"]),
        {"http": ports["alertmanager"]}, _url(ports["alertmanager"])))
    parts.append(PartSpec(
        "prometheus",
        prometheus.argv(folder / "prometheus.yml", folder / "prometheus", ports["prometheus"]),
        {"http": ports["prometheus"]}, _url(ports["prometheus"])))
    return StackPlan(parts, ports)
