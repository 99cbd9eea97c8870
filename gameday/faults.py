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
#: Most bytes a TCP fault may count (1 PiB): a count, never an overflow.
MAX_BYTES = 2**50
#: Largest slice a slicer fault may cut, in bytes (a socket read is at most 256 KiB).
MAX_SLICE = 1024 * 1024
#: The protocols a proxy endpoint speaks (``Endpoint.protocol``, ``chaosctl proxy --mode``).
PROTOCOLS = ("http", "tcp")
#: What a target with a ``point`` "speaks": calls through a fault point inside the service
#: (``gameday.injector.points``), faulted from the rules file a ``transport`` endpoint names.
POINT = "point"
#: The exception names every fault point knows; a service registers more.
POINT_ERRORS = ("timeout", "connection")
#: What an ``error`` fault's name may look like: a registered name, or a gRPC status code.
ERROR_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
#: Which stream of a TCP connection a fault acts on: the requests (client → upstream), the
#: responses (upstream → client), or both.
Direction = Literal["upstream", "downstream", "both"]
DEFAULT_DIRECTION: Direction = "downstream"


def direction_field() -> Any:
    """The ``direction`` field of a fault: TCP only; left out means downstream there."""
    return Field(None, description="TCP only: the stream it acts on, upstream (requests), "
                 "downstream (responses) or both; default downstream")


class Strict(BaseModel):
    """Base for catalog models: unknown fields are errors, records are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: An HTTP header name (RFC 9110 token).
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", max_length=256)]
#: A header value as a request head can carry it: tabs and visible latin-1 characters.
HeaderValue = Annotated[str, Field(pattern=r"^[\t\x20-\x7e\x80-\xff]*$", max_length=4096)]


class Match(Strict):
    """Which requests a fault applies to; every given part must match."""

    methods: list[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]] = Field(
        default_factory=list, description="HTTP methods; empty means any"
    )
    # What a request's head can carry, as the proxy reads it (bytes, latin-1): a pattern that
    # cannot occur there could never match, and must not reach the data plane's byte screens.
    path_prefix: str = Field("/", pattern=r"^/[\x21-\x7e\x80-\xff]*$", max_length=2048,
                             description="request path prefix (visible characters)")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=32,
        description="headers that must be present with these exact values")


class _Fault(Strict):
    #: Fields a step may override, and whether a bigger value is more severe.
    magnitude: ClassVar[dict[str, bool]] = {}
    #: Whether the fault acts on HTTP requests (and so takes ``match``).
    http: ClassVar[bool] = True
    #: The proxy protocols that inject it; empty for faults that act on no call (CPU…).
    protocols: ClassVar[tuple[str, ...]] = ("http",)
    #: Fields only a TCP proxy acts on: an HTTP injector refuses a fault that sets one.
    tcp_fields: ClassVar[tuple[str, ...]] = ()

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
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"ms": True, "probability": True}
    protocols: ClassVar[tuple[str, ...]] = (*PROTOCOLS, POINT)
    tcp_fields: ClassVar[tuple[str, ...]] = ("direction",)

    def summary(self) -> str:
        jitter = f" ±{self.jitter_ms:g}ms" if self.jitter_ms else ""
        share = f" on {self.probability:.0%}" if self.probability < 1 else ""
        return f"latency {self.ms:g}ms{jitter}{share}{_stream(self.direction)}"


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
    """Reset the client's connection (on TCP: at connect, or after ``after_ms`` or bytes)."""

    kind: Literal["reset"] = "reset"
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    direction: Direction | None = Field(
        None, description="TCP only: whose connection gets the RST, the upstream's, the "
        "client's (downstream) or both, and the stream after_bytes counts; default downstream")
    after_ms: float | None = Field(None, ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                                   description="TCP only: reset this long after the rule "
                                   "reaches the connection; default at once")
    after_bytes: int | None = Field(None, ge=0, le=MAX_BYTES,
                                    description="TCP only: reset once this many bytes passed")
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS
    tcp_fields: ClassVar[tuple[str, ...]] = ("direction", "after_ms", "after_bytes")

    @model_validator(mode="after")
    def _one_trigger(self) -> ResetFault:
        if self.after_ms is not None and self.after_bytes is not None:
            raise ValueError("give at most one of 'after_ms' or 'after_bytes'")
        return self

    def summary(self) -> str:
        when = (f" after {self.after_ms:g}ms" if self.after_ms
                else f" after {self.after_bytes} bytes" if self.after_bytes is not None else "")
        return f"{super().summary()}{when}{_stream(self.direction)}"


class BlackholeFault(_Fault):
    """Hold requests without answering until the client gives up (on TCP: pass no bytes)."""

    kind: Literal["blackhole"] = "blackhole"
    probability: Probability = 1.0
    match: Match = Field(default_factory=Match)
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS
    tcp_fields: ClassVar[tuple[str, ...]] = ("direction",)


class BandwidthFault(_Fault):
    """Throttle response bodies to ``kbps`` kilobits per second (on TCP: a stream)."""

    kind: Literal["bandwidth"] = "bandwidth"
    kbps: float = Field(ge=MIN_KBPS, le=MAX_KBPS, allow_inf_nan=False,
                       description="bandwidth in kilobits per second (fewer is more severe)")
    match: Match = Field(default_factory=Match)
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"kbps": False}
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS
    tcp_fields: ClassVar[tuple[str, ...]] = ("direction",)


class TimeoutFault(_Fault):
    """TCP: pass no bytes in ``direction``, and close the connection after ``ms``."""

    kind: Literal["timeout"] = "timeout"
    ms: float = Field(ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                     description="close the connection this long after the rule reaches it "
                     "(fewer is more severe)")
    probability: Probability = Field(1.0, description="chance per connection, 0..1")
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"ms": False, "probability": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ("tcp",)

    def summary(self) -> str:
        return f"timeout {self.ms:g}ms on {self.probability:.0%}{_stream(self.direction)}"


class SlicerFault(_Fault):
    """TCP: cut what passes into pieces of about ``size_bytes``, ``delay_ms`` apart."""

    kind: Literal["slicer"] = "slicer"
    size_bytes: int = Field(ge=1, le=MAX_SLICE, description="average piece size in bytes "
                            "(fewer is more severe)")
    size_variation: int = Field(0, ge=0, le=MAX_SLICE,
                                description="pieces vary by up to this many bytes either way")
    delay_ms: float = Field(0, ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                           description="wait between two pieces, in milliseconds")
    probability: Probability = Field(1.0, description="chance per connection, 0..1")
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"size_bytes": False, "delay_ms": True,
                                            "probability": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ("tcp",)

    @model_validator(mode="after")
    def _variation_below_size(self) -> SlicerFault:
        if self.size_variation >= self.size_bytes:
            raise ValueError("size_variation must be smaller than size_bytes")
        return self


class LimitDataFault(_Fault):
    """TCP: close the connection once ``bytes`` bytes have passed in ``direction``."""

    kind: Literal["limit_data"] = "limit_data"
    bytes: int = Field(ge=0, le=MAX_BYTES, description="bytes that pass before the close, "
                       "counted from when the rule reaches the connection (fewer is more severe)")
    probability: Probability = Field(1.0, description="chance per connection, 0..1")
    direction: Direction | None = direction_field()
    magnitude: ClassVar[dict[str, bool]] = {"bytes": False, "probability": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ("tcp",)

    def summary(self) -> str:
        return (f"limit_data {self.bytes} bytes on {self.probability:.0%}"
                f"{_stream(self.direction)}")


def _stream(direction: str | None) -> str:
    return f" {direction}" if direction else ""


class CpuFault(_Fault):
    """Burn CPU in ``workers`` processes at ``load_percent`` each."""

    kind: Literal["cpu"] = "cpu"
    workers: int = Field(1, ge=1, le=64, description="number of busy processes")
    load_percent: float = Field(gt=0, le=100, allow_inf_nan=False,
                                description="load per worker, percent of a core")
    magnitude: ClassVar[dict[str, bool]] = {"workers": True, "load_percent": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ()


class MemoryFault(_Fault):
    """Hold ``mb`` megabytes of resident memory."""

    kind: Literal["memory"] = "memory"
    mb: int = Field(gt=0, le=65_536, description="megabytes to allocate and touch")
    magnitude: ClassVar[dict[str, bool]] = {"mb": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ()


class ErrorFault(_Fault):
    """Fail a call at a fault point before it is made: raise the exception ``error`` names
    (``timeout``: ``TimeoutError``, ``connection``: ``ConnectionError``, or a name the service
    registered); a gRPC interceptor ends the call with that status code instead."""

    kind: Literal["error"] = "error"
    error: str = Field("connection", pattern=ERROR_NAME,
                       description="timeout, connection, a name the service registered, or "
                                   "a gRPC status code (UNAVAILABLE, DEADLINE_EXCEEDED, …)")
    probability: Probability = 1.0
    magnitude: ClassVar[dict[str, bool]] = {"probability": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = (POINT,)

    @property
    def match(self) -> Match:
        """Every call: a fault point has no requests to tell apart."""
        return Match()

    def summary(self) -> str:
        return f"error {self.error} on {self.probability:.0%}"


class PodKillFault(_Fault):
    """Kill ``count`` pods, or ``percent`` of the target's pods."""

    kind: Literal["pod_kill"] = "pod_kill"
    count: int | None = Field(None, ge=1, description="pods to kill")
    percent: float | None = Field(None, gt=0, le=100, allow_inf_nan=False,
                                   description="share of pods to kill")
    magnitude: ClassVar[dict[str, bool]] = {"count": True, "percent": True}
    http: ClassVar[bool] = False
    protocols: ClassVar[tuple[str, ...]] = ()

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
    | TimeoutFault
    | SlicerFault
    | LimitDataFault
    | CpuFault
    | MemoryFault
    | PodKillFault
    | ErrorFault,
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
        TimeoutFault,
        SlicerFault,
        LimitDataFault,
        CpuFault,
        MemoryFault,
        PodKillFault,
        ErrorFault,
    )
}


#: Fields a step that switches kind keeps from the scenario's fault: where it acts, not how much.
_CARRIED = ("direction", "match")


def with_overrides(fault: Any, overrides: dict[str, Any], kind: str | None = None) -> Any:
    """The fault with a step's magnitude overrides applied, validated again.

    A step that names another ``kind`` (a cache slowed, then blackholed, then reset) gets a
    fault of that kind from its own fields, keeping the fault's ``direction`` and ``match``.
    """
    if kind is not None and kind != fault.kind:
        cls = FAULT_KINDS[kind]
        data = fault.model_dump(exclude_none=True)
        carried = {name: data[name] for name in _CARRIED
                   if name in data and name in cls.model_fields}
        return cls.model_validate(carried | overrides | {"kind": kind})
    if not overrides:
        return fault
    data = fault.model_dump(exclude_none=True) | overrides
    if isinstance(fault, PodKillFault):
        # A step that says ``percent`` replaces the fault's ``count`` and vice versa.
        data = {k: v for k, v in data.items() if k not in {"count", "percent"}} | overrides
    return type(fault).model_validate(data)


_PROTOCOL_TEXT = {"http": "http endpoints", "tcp": "tcp endpoints",
                  POINT: "fault points (a target with a point)"}


def kinds_for(protocol: str) -> list[str]:
    """The fault kinds a proxy endpoint speaking ``protocol`` injects, in catalog order."""
    return [kind for kind, cls in FAULT_KINDS.items() if protocol in cls.protocols]


def protocol_problems(fault: Any, protocol: str) -> list[tuple[str, str]]:
    """Why ``fault`` cannot go to a proxy endpoint speaking ``protocol``: ``(field, message)``.

    Empty when it can, and for faults that act on no call (CPU, memory, pods): those go to
    other drivers. A kind the protocol does not inject names the kinds it does; on HTTP a TCP
    field that is set is refused, on TCP a ``match`` (TCP has no requests to match).
    """
    cls = type(fault)
    if not cls.protocols:
        return []
    accepted = ", ".join(kinds_for(protocol))
    if protocol not in cls.protocols:
        where = " or ".join(_PROTOCOL_TEXT.get(name, f"{name} endpoints")
                            for name in cls.protocols)
        here = "this target is a fault point" if protocol == POINT \
            else f"this endpoint speaks {protocol}"
        return [("kind", f"{fault.kind!r} is injected on {where} only; {here} "
                         f"(allowed: {accepted})")]
    if protocol == POINT:
        match = getattr(fault, "match", None)
        if match is not None and match != Match():
            return [("match", "a fault point has no requests to match: leave 'match' out")]
        return [(name, "applies to TCP endpoints only; this target is a fault point")
                for name in cls.tcp_fields if getattr(fault, name) is not None]
    if protocol == "tcp":
        match = getattr(fault, "match", None)
        if match is not None and match != Match():
            return [("match", "a TCP endpoint has no requests to match: leave 'match' out")]
        return []
    return [(name, f"applies to TCP endpoints only; this endpoint speaks {protocol}")
            for name in cls.tcp_fields if getattr(fault, name) is not None]
