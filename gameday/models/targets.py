"""Where faults land: a target (service and dependency) and the endpoint that injects there."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gameday.faults import Strict
from gameday.models.common import Slug, located
from gameday.models.secret_refs import SecretField

#: A fault point's name (``gameday.injector.points.fault_point``): ``redis``, ``db.fetch``,
#: ``grpc:/shop.Payments/Charge``.
POINT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,126}$"
#: A name, or a prefix ending in ``*`` that covers every point it begins (``grpc:*``).
POINT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,126}\*?$"
PointName = Annotated[str, Field(pattern=POINT_NAME)]
PointPattern = Annotated[str, Field(pattern=POINT_PATTERN)]


def point_covers(pattern: str, name: str) -> bool:
    """Whether the point pattern ``pattern`` (a name, or a prefix ending in ``*``) covers
    the point ``name``."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


class Target(Strict):
    """The boundary a fault is injected at: ``service`` calling ``dependency``, optionally
    through a named fault point inside the service."""

    service: Slug = Field(description="the service under test")
    dependency: Slug | None = Field(None, description="the dependency it calls, for HTTP faults")
    point: PointName | None = Field(
        None, description="a fault point in the service's own code (its fault_point name, "
        "e.g. redis): the fault is injected there, through the rules file of a transport "
        "endpoint that lists the point, instead of at a proxy")

    @property
    def protocol(self) -> str | None:
        """``point`` for a fault point; None: the endpoint's own protocol."""
        return "point" if self.point else None


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
    protocol: Literal["http", "tcp"] = Field(
        "http", description="what the calls speak: http (the HTTP fault proxy, the httpx "
        "transport, Chaos Mesh) or tcp (a proxy in TCP mode in front of a database or cache)")
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
    points: list[PointPattern] = Field(
        default_factory=list, max_length=64,
        description="transport: the fault points in the service that read rules_file (names, "
        "or prefixes ending in *); a target naming one of them is faulted there")
    cpus: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list, description="stress: the cores its workers are pinned to, e.g. the "
        "core the target runs on (empty: any core)")

    @model_validator(mode="after")
    def _driver_fields(self) -> Endpoint:
        for name in _DRIVER_NEEDS[self.driver]:
            if not getattr(self, name):
                raise located((name,), f"driver {self.driver!r} needs {name!r}")
        if self.points and self.driver != "transport":
            raise located(("points",), f"points need driver 'transport' (the service's fault "
                                       f"points read its rules_file), not {self.driver!r}")
        if self.protocol == "tcp" and self.driver != "proxy":
            raise located(("protocol",), f"protocol 'tcp' needs driver 'proxy' (a proxy in TCP "
                                         f"mode), not {self.driver!r}")
        return self


def serves(endpoint: Endpoint, target: Target) -> bool:
    """Whether ``endpoint`` injects the faults aimed at ``target``: same service and
    dependency; for a target with a ``point``, a transport endpoint listing it."""
    if endpoint.service != target.service or endpoint.dependency != target.dependency:
        return False
    if target.point is None:
        return True
    return any(point_covers(pattern, target.point) for pattern in endpoint.points)
