"""An environment: where game days may run, what they query and notify, and the rules there."""

from __future__ import annotations

from pydantic import Field, field_validator

from gameday.faults import Strict
from gameday.models.alerts import AlertmanagerSettings
from gameday.models.common import Slug
from gameday.models.secret_refs import SecretField
from gameday.models.slo import SLO
from gameday.models.targets import Endpoint, Target, serves
from gameday.units import Duration


class PrometheusSettings(Strict):
    """The Prometheus that guards and signals query."""

    url: str = Field(pattern=r"^https?://")
    timeout: Duration = Field(5.0, description="per-query timeout (capped by guard_interval)")
    scrape_interval: Duration = Field(
        15.0, description="the targets' scrape interval: guards poll just after each scrape is "
        "due, and a sample older than 3 of these is stale")
    rate_window: Duration | None = Field(
        None, description="range for rate() in signal templates; default 4 scrape intervals"
    )
    token: SecretField | None = None

    @property
    def window(self) -> str:
        """The ``{window}`` placeholder's value, as PromQL writes a range."""
        seconds = self.rate_window or 4 * self.scrape_interval
        return f"{max(1, round(seconds))}s"


class SlackSettings(Strict):
    """Slack for on-call: a bot token (threads) or an incoming webhook (no threads)."""

    channel: str | None = None
    token: SecretField | None = None
    webhook_url: SecretField | None = None
    oncall_group: str | None = Field(None, description="mentioned on breaches, e.g. <!subteam^ID>")
    api_url: str | None = Field(None, pattern=r"^https?://",
                                description="Slack Web API base URL; default https://slack.com/api/")


class Notify(Strict):
    """Where progress goes."""

    console: bool = True
    slack: SlackSettings | None = None


class TracingSettings(Strict):
    """Where the traces of an environment's services can be read and linked."""

    files: str | None = Field(
        None, description="folder of OTLP JSON lines files the services write (their "
                          "GAMEDAY_TRACE_DIR); the kit reads traces back from it, and writes "
                          "the game day's own spans there")
    trace_url: str | None = Field(
        None, pattern=r"^https?://.*\{trace_id\}",
        description="link to a trace in the team's tracing UI, with {trace_id}")
    exemplars: str | None = Field(
        None, description="PromQL selector of the latency histogram whose exemplars the "
                          "postmortem lists, e.g. "
                          "'http_server_request_duration_seconds_bucket{service=\"user-service\"}'")

    def link(self, trace_id: str) -> str | None:
        """The link to ``trace_id``, when ``trace_url`` is set."""
        return self.trace_url.replace("{trace_id}", trace_id) if self.trace_url else None


class Environment(Strict):
    """Where game days may run, and the rules they must keep there."""

    name: Slug
    production: bool = Field(False, description="production needs an explicit allow at start")
    enabled: bool = Field(True, description="kill switch: false refuses every run")
    prometheus: PrometheusSettings
    pushgateway_url: str | None = Field(None, pattern=r"^https?://")
    prefect_api_url: str | None = Field(None, pattern=r"^https?://")
    endpoints: list[Endpoint] = Field(default_factory=list)
    allowed_targets: list[Slug] = Field(default_factory=list, description="services; empty: none")
    allowed_namespaces: list[Slug] = Field(default_factory=list)
    sign_off_severity: int | None = Field(None, ge=1, description="from here a second person")
    requesters: list[str] = Field(default_factory=list, description="empty: anyone")
    guard_interval: Duration = Field(
        1.0, description="the longest gap between two polls of a guard")
    lease: Duration | None = Field(
        None, description="a fault ends this long after its run last renewed it (a dead or "
                          "frozen run); default max(3s, 3 × guard_interval); 1s to 10m")
    notify: Notify = Field(default_factory=Notify)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    alertmanager: AlertmanagerSettings | None = Field(
        None, description="gate runs on incidents, silence what a scenario expects")
    slo: SLO | None = Field(None, description="the error budget every scenario here keeps "
                                              "(a scenario's own slo replaces it)")

    @field_validator("allowed_namespaces")
    @classmethod
    def _never_kube_system(cls, value: list[str]) -> list[str]:
        if "kube-system" in value:
            raise ValueError("kube-system may never be a chaos target")
        return value

    @field_validator("guard_interval")
    @classmethod
    def _sane_interval(cls, value: float) -> float:
        if not 0.1 <= value <= 60:
            raise ValueError("guard_interval must be between 100ms and 60s")
        return value

    @field_validator("lease")
    @classmethod
    def _sane_lease(cls, value: float | None) -> float | None:
        if value is not None and not 1 <= value <= 600:
            raise ValueError("lease must be between 1s and 10m")
        return value

    @property
    def fault_lease(self) -> float:
        """Seconds an applied fault lives unless renewed: ``lease``, or max(3s, 3 × interval)."""
        return self.lease if self.lease is not None else max(3.0, 3 * self.guard_interval)

    def endpoint_for(self, target: Target) -> Endpoint | None:
        """The endpoint that injects faults for ``target``: for a fault point, the transport
        endpoint that lists it; otherwise the first for its service and dependency that lists
        no points (a proxy in front of it, say), else one that does."""
        found = [endpoint for endpoint in self.endpoints if serves(endpoint, target)]
        if target.point is None:
            found.sort(key=lambda endpoint: bool(endpoint.points))
        return found[0] if found else None
