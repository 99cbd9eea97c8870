"""Fault kinds: a discriminated union on ``kind``, and what "more severe" means for each."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False,
                                      description="chance per request, 0..1")]
#: Longest delay a latency fault may add (ten minutes): a value is a fault, never a hang.
MAX_DELAY_MS = 600_000
#: Bandwidth bounds in kbit/s: below 1 a response stalls for ever; above 10 Gbit/s pacing is moot.
MIN_KBPS, MAX_KBPS = 1, 10_000_000
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Strict(BaseModel):
    """Base for catalog models: unknown fields are errors, records are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(Strict):
    """Which requests a fault applies to; every given part must match."""

    methods: list[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]] = Field(
        default_factory=list, description="HTTP methods; empty means any"
    )
    path_prefix: str = Field("/", pattern=r"^/", description="request path prefix")
    headers: dict[str, str] = Field(
        default_factory=dict, description="headers that must be present with these exact values"
    )


class _Fault(Strict):
    #: Fields a step may override, and whether a bigger value is more severe.
    magnitude: ClassVar[dict[str, bool]] = {}
    #: Whether the fault acts on HTTP requests (and so takes ``match``).
    http: ClassVar[bool] = True

    def severity_key(self) -> tuple[float, ...]:
        """Values that grow with severity, in the order ``magnitude`` lists them."""
        return tuple(
            float(getattr(self, name) or 0) * (1 if bigger else -1)
            for name, bigger in self.magnitude.items()
        )

    def summary(self) -> str:
        """One-line description such as ``latency 120ms ±10ms``."""
        parts = [f"{k}={getattr(self, k)}" for k in self.magnitude if getattr(self, k) is not None]
        return " ".join([self.kind, *parts])  # type: ignore[attr-defined]


class LatencyFault(_Fault):
    """Delay requests by ``ms`` plus up to ``jitter_ms``."""

    kind: Literal["latency"] = "latency"
    ms: float = Field(ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                     description="added delay in milliseconds")
    jitter_ms: float = Field(0, ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                            description="jitter in milliseconds")
    distribution: Literal["uniform", "normal"] = Field(
        "uniform", description="jitter distribution: uniform in ±jitter, or normal with sd=jitter"
    )
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    magnitude: ClassVar[dict[str, bool]] = {"ms": True, "probability": True}

    def summary(self) -> str:
        jitter = f" ±{self.jitter_ms:g}ms" if self.jitter_ms else ""
        share = f" on {self.probability:.0%}" if self.probability < 1 else ""
        return f"latency {self.ms:g}ms{jitter}{share}"


class AbortFault(_Fault):
    """Answer with an HTTP error status before the upstream sees the request."""

    kind: Literal["abort"] = "abort"
    status: int = Field(503, ge=400, le=599, description="HTTP status to answer with (400-599)")
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}

    def summary(self) -> str:
        return f"abort {self.status} on {self.probability:.0%}"


class ResetFault(_Fault):
    """Reset the client's connection."""

    kind: Literal["reset"] = "reset"
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}


class BlackholeFault(_Fault):
    """Hold requests without answering until the client gives up."""

    kind: Literal["blackhole"] = "blackhole"
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}


class BandwidthFault(_Fault):
    """Throttle response bodies to ``kbps`` kilobits per second."""

    kind: Literal["bandwidth"] = "bandwidth"
    kbps: float = Field(ge=MIN_KBPS, le=MAX_KBPS, allow_inf_nan=False,
                       description="bandwidth in kilobits per second (fewer is more severe)")
    match: Match = Field(default_factory=Match)
    magnitude: ClassVar[dict[str, bool]] = {"kbps": False}


class CpuFault(_Fault):
    """Burn CPU in ``workers`` processes at ``load_percent`` each."""

    kind: Literal["cpu"] = "cpu"
    workers: int = Field(1, ge=1, le=64, description="number of busy processes")
    load_percent: float = Field(gt=0, le=100, allow_inf_nan=False,
                                description="load per worker, percent of a core")
    magnitude: ClassVar[dict[str, bool]] = {"workers": True, "load_percent": True}
    http: ClassVar[bool] = False


class MemoryFault(_Fault):
    """Hold ``mb`` megabytes of resident memory."""

    kind: Literal["memory"] = "memory"
    mb: int = Field(gt=0, le=65_536, description="megabytes to allocate and touch")
    magnitude: ClassVar[dict[str, bool]] = {"mb": True}
    http: ClassVar[bool] = False


class PodKillFault(_Fault):
    """Kill ``count`` pods, or ``percent`` of the target's pods."""

    kind: Literal["pod_kill"] = "pod_kill"
    count: int | None = Field(None, ge=1, description="pods to kill")
    percent: float | None = Field(None, gt=0, le=100, allow_inf_nan=False,
                                   description="share of pods to kill")
    magnitude: ClassVar[dict[str, bool]] = {"count": True, "percent": True}
    http: ClassVar[bool] = False

    @model_validator(mode="after")
    def _count_or_percent(self) -> PodKillFault:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give exactly one of 'count' or 'percent'")
        return self


Fault = Annotated[
    LatencyFault
    | AbortFault
    | ResetFault
    | BlackholeFault
    | BandwidthFault
    | CpuFault
    | MemoryFault
    | PodKillFault,
    Field(discriminator="kind"),
]
FAULT_KINDS: dict[str, type[_Fault]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        LatencyFault,
        AbortFault,
        ResetFault,
        BlackholeFault,
        BandwidthFault,
        CpuFault,
        MemoryFault,
        PodKillFault,
    )
}


def with_overrides(fault: Any, overrides: dict[str, Any]) -> Any:
    """The fault with a step's magnitude overrides applied, validated again."""
    if not overrides:
        return fault
    data = fault.model_dump(exclude_none=True) | overrides
    if isinstance(fault, PodKillFault):
        # A step that says ``percent`` replaces the fault's ``count`` and vice versa.
        data = {k: v for k, v in data.items() if k not in {"count", "percent"}} | overrides
    return type(fault).model_validate(data)
