"""Catalog models: scenario, mission, environment and signal templates (pydantic v2).

Every model forbids unknown fields and is frozen. Errors that concern a nested place carry its
path in the error context (``located``), so the loader can point at the exact YAML line.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gameday.faults import FAULT_KINDS, Fault, Probability, Strict, with_overrides
from gameday.units import Duration, Op, compare, parse_comparison

Slug = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="lowercase letters, digits, dashes"),
]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP_FIELDS = ("ms", "jitter_ms", "probability", "status", "kbps", "workers", "load_percent", "mb",
               "count", "percent")


def located(path: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A validation error about ``path`` below the model being validated."""
    return PydanticCustomError("located", "{detail}", {"detail": message, "path": path})


# --- scenario ---------------------------------------------------------------------------------


class Target(Strict):
    """The boundary a fault is injected at: ``service`` calling ``dependency``."""

    service: Slug = Field(description="the service under test")
    dependency: Slug | None = Field(None, description="the dependency it calls, for HTTP faults")


class Step(Strict):
    """One rung of the severity ladder: magnitude overrides plus how long to hold."""

    dwell: Duration = Field(description="how long this step must hold before the next")
    ms: float | None = Field(None, ge=0, le=600_000)
    jitter_ms: float | None = Field(None, ge=0, le=600_000)
    probability: Probability | None = None
    status: int | None = Field(None, ge=400, le=599)
    kbps: float | None = Field(None, gt=0)
    workers: int | None = Field(None, ge=1, le=64)
    load_percent: float | None = Field(None, gt=0, le=100)
    mb: int | None = Field(None, gt=0, le=65_536)
    count: int | None = Field(None, ge=1)
    percent: float | None = Field(None, gt=0, le=100)

    @field_validator("dwell")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("dwell must be longer than 0s")
        return value

    def overrides(self) -> dict[str, Any]:
        """The magnitude fields this step sets."""
        return {k: getattr(self, k) for k in STEP_FIELDS if getattr(self, k) is not None}


class Window(Strict):
    """When a game day may start, in a time zone."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS), description="weekdays allowed"
    )
    hours: str = Field(
        "00:00-24:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$",
        description="local start-end, e.g. 09:00-17:00",
    )
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like UTC)") from exc
        return value

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (timezone-aware) falls inside the window."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        start_s, end_s = self.hours.split("-")
        start = time.fromisoformat(start_s)
        end = time.max if end_s == "24:00" else time.fromisoformat(end_s)
        return DAYS[local.weekday()] in self.days and start <= local.time().replace(
            tzinfo=None
        ) < end


class MinLoad(Strict):
    """Traffic that must be flowing before a start, or the experiment shows nothing."""

    query: str = Field(min_length=1, description="PromQL rate; {service}/{dependency} allowed")
    at_least: float = Field(ge=0, description="the query must return at least this")


class Trigger(Strict):
    """Conditions for starting a game day."""

    window: Window = Field(default_factory=Window)
    min_load: MinLoad | None = None
    randomize: Duration = Field(0.0, description="random start delay up to this long")


def _shorthand(value: Any) -> Any:
    """``"<= 350"`` or ``"> 5 for 10s"`` → a mapping with op/threshold(/for)."""
    if not isinstance(value, str):
        return value
    text, _, hold = value.partition(" for ")
    op, threshold = parse_comparison(text)
    return {"op": op, "threshold": threshold} | ({"for": hold.strip()} if hold else {})


class Signal(Strict):
    """Expected behaviour (the hypothesis): holds when ``value op threshold``."""

    query: str | None = Field(None, description="raw PromQL; omit to use the signal template")
    op: Op
    threshold: float
    unit: str | None = None

    def holds(self, value: float) -> bool:
        """Whether the observed value meets the expectation."""
        return compare(value, self.op, self.threshold)


class Guard(Strict):
    """A safety stop: breached when ``value op threshold`` holds for ``for``."""

    model_config = Strict.model_config | {"populate_by_name": True}
    query: str | None = Field(None, description="raw PromQL; omit to use the signal template")
    op: Op
    threshold: float
    for_: Duration = Field(0.0, alias="for", description="breach only if it lasts this long")
    on_no_data: Literal["breach", "ignore"] = Field(
        "breach", description="no data, stale data or query errors count as a breach by default"
    )
    unit: str | None = None


class Recovery(Strict):
    """When the service counts as recovered after rollback."""

    timeout: Duration = Field(60.0, description="give up waiting for recovery after this long")
    tolerance_percent: float = Field(
        20.0, ge=0, le=1000, description="signals back within this percent of the baseline"
    )


class Rollback(Strict):
    """What rollback checks after reverting."""

    recovery: Recovery = Field(default_factory=Recovery)


# The shorthand spellings, for the JSON Schema editors use.
_COMPARE = r"^\s*(<=|>=|==|!=|<|>)\s*-?\d+(\.\d+)?\s*"
_SIGNAL_TEXT = Annotated[str, Field(pattern=_COMPARE + "$")]
_GUARD_TEXT = Annotated[str, Field(pattern=_COMPARE + r"( for \s*\d+(\.\d+)?(ms|s|m|h))?\s*$")]
SignalMap = dict[
    str,
    Annotated[Signal, BeforeValidator(_shorthand, json_schema_input_type=Signal | _SIGNAL_TEXT)],
]
GuardMap = dict[
    str, Annotated[Guard, BeforeValidator(_shorthand, json_schema_input_type=Guard | _GUARD_TEXT)]
]


class Scenario(Strict):
    """One catalog entry: a fault at a target, its severity ladder, signals and guards."""

    name: Slug
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="team or person answering for it")
    tags: list[str] = Field(default_factory=list)
    runbook: str | None = Field(None, description="URL or repository path of the runbook")
    suites: list[Slug] = Field(default_factory=list, description="suites, e.g. weekly")
    target: Target
    environments: list[Slug] = Field(min_length=1, description="environments it may run in")
    fault: Fault
    steps: list[Step] = Field(min_length=1, description="severity ladder, mildest first")
    ttl_margin: Duration = Field(10.0, description="each step's fault expires at dwell + this")
    max_duration: Duration = Field(1800.0, description="cap on the whole run")
    trigger: Trigger = Field(default_factory=Trigger)
    signals: SignalMap = Field(default_factory=dict)
    guards: GuardMap = Field(min_length=1, description="safety stops; at least one")
    rollback: Rollback = Field(default_factory=Rollback)

    @model_validator(mode="after")
    def _ladder(self) -> Scenario:
        fault_cls = FAULT_KINDS[self.fault.kind]
        allowed = [f for f in STEP_FIELDS if f in fault_cls.model_fields]
        for index, step in enumerate(self.steps):
            for name in step.overrides():
                if name not in allowed:
                    raise located(
                        ("steps", index, name),
                        f"does not apply to fault kind {self.fault.kind!r} "
                        f"(allowed: {', '.join(allowed)})",
                    )
        faults = []
        for index, step in enumerate(self.steps):
            try:
                faults.append(with_overrides(self.fault, step.overrides()))
            except ValueError as exc:
                raise located(("steps", index), str(exc).splitlines()[-1].strip()) from exc
        for index in range(1, len(faults)):
            before, after = faults[index - 1], faults[index]
            for name, bigger in fault_cls.magnitude.items():
                old, new = getattr(before, name), getattr(after, name)
                if old is None or new is None:
                    continue
                if (new < old) if bigger else (new > old):
                    word = "lower" if bigger else "higher"
                    raise located(
                        ("steps", index, name),
                        f"{name}={new:g} is {word} than step {index}'s {old:g}: each step must "
                        "be at least as severe as the one before",
                    )
        if self.fault.http and self.target.dependency is None:
            raise located(
                ("target", "dependency"),
                f"fault kind {self.fault.kind!r} acts on calls: name the dependency",
            )
        total = sum(step.dwell for step in self.steps)
        if total > self.max_duration:
            raise located(
                ("max_duration",),
                f"the steps' dwells add up to {total:g}s, more than max_duration "
                f"{self.max_duration:g}s",
            )
        return self

    @property
    def max_severity(self) -> int:
        """The top of the ladder (severity N is the N-th step)."""
        return len(self.steps)

    def step_fault(self, severity: int) -> Any:
        """The fault as step ``severity`` (1-based) applies it."""
        return with_overrides(self.fault, self.steps[severity - 1].overrides())

    def ttl(self, severity: int) -> float:
        """Seconds after which step ``severity``'s fault expires by itself."""
        return self.steps[severity - 1].dwell + self.ttl_margin


# --- mission ----------------------------------------------------------------------------------


class Mission(Strict):
    """One planned run of a scenario in an environment."""

    scenario: Slug
    environment: Slug
    duration: Duration | None = Field(None, description="cap on this run (≤ max_duration)")
    max_severity: int | None = Field(None, ge=1, description="stop the ladder at this step")
    enable: bool = Field(True, description="false refuses the mission")
    requester: str = Field(min_length=1, description="who asks for this run")


# --- environment ------------------------------------------------------------------------------


def _reject_inline_secret(value: Any) -> Any:
    if isinstance(value, str):
        # The value itself is never echoed: it may be a real secret.
        raise PydanticCustomError(
            "inline_secret",
            "secrets are never written in catalog files: reference one with "
            "{env: VARIABLE} or {block: BLOCK_NAME}",
        )
    return value


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a Prefect Secret block."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    block: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # A value already read, from a GameDayEnvironment block. Private attributes are not
    # fields, so no catalog file can ever fill them.
    _held: SecretStr | None = PrivateAttr(None)
    _origin: str = PrivateAttr("")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if self._held is None and (self.env is None) == (self.block is None):
            raise ValueError("give exactly one of 'env' or 'block'")
        return self

    @classmethod
    def held(cls, value: str, origin: str) -> SecretRef:
        """A secret whose value is already known; ``origin`` names where it came from."""
        ref = cls.model_construct()
        ref._held = SecretStr(value)
        ref._origin = origin
        return ref

    def describe(self) -> str:
        """Where the secret is read from, without the secret."""
        if self._origin:
            return self._origin
        return f"env:{self.env}" if self.env else f"block:{self.block}"

    def resolve(self) -> str | None:
        """The secret's value, or None when it is not set."""
        if self._held is not None:
            return self._held.get_secret_value()
        if self.env:
            return os.environ.get(self.env)
        from gameday.secrets import read_block_secret  # Prefect is imported only when needed

        return read_block_secret(self.block or "")


SecretField = Annotated[SecretRef, BeforeValidator(_reject_inline_secret)]
DriverKind = Literal["proxy", "transport", "chaos_mesh", "configmap", "stress"]
_DRIVER_NEEDS = {
    "proxy": ("admin_url",),
    "transport": ("rules_file",),
    "chaos_mesh": ("namespace", "selector"),
    "configmap": ("namespace", "configmap"),
    "stress": (),
}


class Endpoint(Strict):
    """Where and how faults for one target are injected."""

    service: Slug
    dependency: Slug | None = None
    driver: DriverKind
    admin_url: str | None = Field(None, pattern=r"^https?://", description="proxy admin API")
    token: SecretField | None = Field(None, description="admin token, by reference")
    rules_file: str | None = Field(None, description="rules file the httpx transport reads")
    namespace: Slug | None = None
    selector: dict[str, str] = Field(default_factory=dict, description="pod labels")
    configmap: Slug | None = None
    health_url: str | None = Field(None, pattern=r"^https?://", description="target health check")
    level: Literal["network", "http"] = Field(
        "network", description="chaos_mesh: latency/reset at TCP level (NetworkChaos) or on "
        "HTTP requests (HTTPChaos); abort and narrowing `match` always use HTTPChaos")
    http_port: int = Field(80, ge=1, le=65535, description="chaos_mesh: the dependency's port")
    dependency_label: str = Field("app", description="chaos_mesh: pod label naming a service")

    @model_validator(mode="after")
    def _driver_fields(self) -> Endpoint:
        for name in _DRIVER_NEEDS[self.driver]:
            if not getattr(self, name):
                raise located((name,), f"driver {self.driver!r} needs {name!r}")
        return self


class PrometheusSettings(Strict):
    """The Prometheus that guards and signals query."""

    url: str = Field(pattern=r"^https?://")
    timeout: Duration = Field(5.0, description="per-query timeout (capped by guard_interval)")
    scrape_interval: Duration = Field(15.0, description="used to judge staleness")
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
    guard_interval: Duration = Field(1.0, description="how often guards are evaluated")
    notify: Notify = Field(default_factory=Notify)

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

    def endpoint_for(self, target: Target) -> Endpoint | None:
        """The endpoint that injects faults for ``target``."""
        for endpoint in self.endpoints:
            if endpoint.service == target.service and endpoint.dependency == target.dependency:
                return endpoint
        return None


# --- signal templates -------------------------------------------------------------------------


class SignalTemplate(Strict):
    """A named PromQL expression with ``{service}``/``{dependency}`` placeholders."""

    query: str = Field(min_length=1)
    unit: str | None = None
    description: str | None = None

    def render(self, target: Target, window: str = "1m") -> str:
        """The query for one target."""
        return render_query(self.query, target, window)


_PLACEHOLDER = re.compile(r"\{(service|dependency|window)\}")


def render_query(query: str, target: Target, window: str = "1m") -> str:
    """Fill ``{service}``, ``{dependency}`` and ``{window}`` (a PromQL range such as ``10s``).

    Other braces are PromQL's label matchers and stay as they are.
    """
    values = {"service": target.service, "dependency": target.dependency or "", "window": window}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)
