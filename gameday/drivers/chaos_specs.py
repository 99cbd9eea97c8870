"""Catalog faults as Chaos Mesh experiments (pure: no I/O).

=========  ==============================================================================
fault      Chaos Mesh experiment
=========  ==============================================================================
latency    ``level="network"``: NetworkChaos ``delay`` (latency + jitter) from the service's
           pods towards the dependency's pods. ``level="http"``, or a ``match`` that narrows
           requests (methods, a path prefix, headers): HTTPChaos ``delay`` on the dependency.
abort      HTTPChaos on the dependency replacing the response status (always HTTP level).
reset      ``level="network"``: NetworkChaos ``loss`` (Chaos Mesh cannot forge a TCP reset;
           the packets are lost instead). ``level="http"``: HTTPChaos ``abort`` (the
           connection is cut).
blackhole  NetworkChaos ``partition`` from the service towards the dependency.
bandwidth  NetworkChaos ``bandwidth`` on the dependency's pods towards the service's pods, so
           the responses are the ones throttled.
cpu        StressChaos ``cpu`` stressor (workers, load) in the service's pods.
memory     StressChaos ``memory`` stressor (one worker holding ``mb``) in the service's pods.
pod_kill   PodChaos ``pod-kill``: ``count`` pods (mode ``fixed``) or ``percent`` of them.
=========  ==============================================================================

Chaos Mesh has no per-request probability. Below 1 it becomes the share of pods that get the
fault (mode ``fixed-percent``), except for ``reset`` at network level, where it is the packet
loss percentage. HTTPChaos has no jitter: the delay is ``ms``.

The service's pods are the endpoint's ``selector``; the dependency's pods are those labelled
``<dependency_label>=<dependency>`` (``app=auth-service`` by default) in the same namespace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from gameday.errors import DriverError
from gameday.faults import (
    AbortFault,
    BandwidthFault,
    BlackholeFault,
    CpuFault,
    LatencyFault,
    Match,
    MemoryFault,
    PodKillFault,
    ResetFault,
)
from gameday.models import Target

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
#: Chaos Mesh kinds the kit creates, and their plural (the API path's resource name).
PLURALS = {"HTTPChaos": "httpchaos", "NetworkChaos": "networkchaos",
           "StressChaos": "stresschaos", "PodChaos": "podchaos"}
Level = Literal["network", "http"]
#: tbf queue sizes for bandwidth faults, in bytes (Chaos Mesh requires both).
BANDWIDTH_LIMIT = 20_971_520
BANDWIDTH_BUFFER = 10_000


@dataclass(frozen=True)
class ChaosOptions:
    """How faults map onto Chaos Mesh for one endpoint."""

    #: ``network`` (NetworkChaos, any TCP traffic) or ``http`` (HTTPChaos) for latency/reset.
    level: Level = "network"
    #: The port the dependency serves HTTP on (HTTPChaos intercepts it).
    http_port: int = 80
    #: The label whose value is the dependency's name on the dependency's pods.
    dependency_label: str = "app"


def kinds_for(fault_kind: str) -> tuple[str, ...]:
    """Every Chaos Mesh kind a fault of ``fault_kind`` may become, at either level."""
    return {
        "latency": ("NetworkChaos", "HTTPChaos"),
        "reset": ("NetworkChaos", "HTTPChaos"),
        "abort": ("HTTPChaos",),
        "blackhole": ("NetworkChaos",),
        "bandwidth": ("NetworkChaos",),
        "cpu": ("StressChaos",),
        "memory": ("StressChaos",),
        "pod_kill": ("PodChaos",),
    }[fault_kind]


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string (``30s``, ``1500ms``, ``250us``)."""
    micros = max(0, round(seconds * 1_000_000))
    if micros % 1_000_000 == 0:
        return f"{micros // 1_000_000}s"
    if micros % 1000 == 0:
        return f"{micros // 1000}ms"
    return f"{micros}us"


def experiment(fault: Any, target: Target, namespace: str, selector: dict[str, str],
               ttl: float, options: ChaosOptions = ChaosOptions()) -> tuple[str, dict[str, Any]]:
    """The Chaos Mesh kind and ``spec`` that inject ``fault`` for ``ttl`` seconds."""
    if not selector:
        raise DriverError("a Chaos Mesh fault needs a non-empty pod selector: an empty one "
                          "would select every pod in the namespace")
    service = {"namespaces": [namespace], "labelSelectors": dict(selector)}
    kind, spec = _build(fault, target, namespace, service, options)
    return kind, {**spec, "duration": go_duration(math.ceil(ttl))}


def _build(fault: Any, target: Target, namespace: str, service: dict[str, Any],
           options: ChaosOptions) -> tuple[str, dict[str, Any]]:
    if isinstance(fault, CpuFault):
        load = max(1, min(100, round(fault.load_percent)))
        return "StressChaos", {**_all(), "selector": service,
                               "stressors": {"cpu": {"workers": fault.workers, "load": load}}}
    if isinstance(fault, MemoryFault):
        return "StressChaos", {**_all(), "selector": service,
                               "stressors": {"memory": {"workers": 1, "size": f"{fault.mb}MB"}}}
    if isinstance(fault, PodKillFault):
        if fault.count is not None:
            mode = {"mode": "fixed", "value": str(fault.count)}
        else:
            mode = {"mode": "fixed-percent",
                    "value": str(max(1, min(100, round(fault.percent or 0))))}
        return "PodChaos", {**mode, "action": "pod-kill", "selector": service}
    dependency = _dependency(target, namespace, options)
    if isinstance(fault, AbortFault):
        return "HTTPChaos", {**_http(fault.match, fault.probability, dependency, options),
                             "target": "Response", "replace": {"code": fault.status}}
    if isinstance(fault, LatencyFault):
        if options.level == "http" or _narrows(fault.match):
            return "HTTPChaos", {**_http(fault.match, fault.probability, dependency, options),
                                 "target": "Request", "delay": go_duration(fault.ms / 1000)}
        delay = {"latency": go_duration(fault.ms / 1000),
                 "jitter": go_duration(fault.jitter_ms / 1000), "correlation": "0"}
        return "NetworkChaos", {**_share(fault.probability), "action": "delay", "delay": delay,
                                **_towards(service, dependency)}
    if isinstance(fault, ResetFault):
        if options.level == "http" or _narrows(fault.match):
            return "HTTPChaos", {**_http(fault.match, fault.probability, dependency, options),
                                 "target": "Request", "abort": True}
        loss = {"loss": f"{fault.probability * 100:g}", "correlation": "0"}
        return "NetworkChaos", {**_all(), "action": "loss", "loss": loss,
                                **_towards(service, dependency)}
    if isinstance(fault, BlackholeFault | BandwidthFault) and _narrows(fault.match):
        raise DriverError(f"Chaos Mesh cannot apply {fault.kind} to some requests only: "
                          "NetworkChaos acts on all traffic (drop the fault's 'match')")
    if isinstance(fault, BlackholeFault):
        return "NetworkChaos", {**_share(fault.probability), "action": "partition",
                                **_towards(service, dependency)}
    if isinstance(fault, BandwidthFault):
        # tc's "bps" is bytes per second; the catalog speaks kilobits per second.
        rate = max(1, round(fault.kbps * 1000 / 8))
        bandwidth = {"rate": f"{rate}bps", "limit": BANDWIDTH_LIMIT, "buffer": BANDWIDTH_BUFFER}
        return "NetworkChaos", {**_all(), "action": "bandwidth", "bandwidth": bandwidth,
                                **_towards(dependency, service)}
    raise DriverError(f"Chaos Mesh driver cannot inject fault kind {fault.kind!r}")


def _dependency(target: Target, namespace: str, options: ChaosOptions) -> dict[str, Any]:
    if target.dependency is None:
        raise DriverError(f"target {target.service!r} names no dependency: network and HTTP "
                          "faults act on the calls to one")
    return {"namespaces": [namespace],
            "labelSelectors": {options.dependency_label: target.dependency}}


def _all() -> dict[str, Any]:
    return {"mode": "all"}


def _share(probability: float) -> dict[str, Any]:
    if probability >= 1:
        return _all()
    return {"mode": "fixed-percent", "value": str(max(1, round(probability * 100)))}


def _towards(source: dict[str, Any], destination: dict[str, Any]) -> dict[str, Any]:
    return {"selector": source, "direction": "to",
            "target": {"mode": "all", "selector": destination}}


def _narrows(match: Match) -> bool:
    return bool(match.methods or match.headers or match.path_prefix != "/")


def _http(match: Match, probability: float, dependency: dict[str, Any],
          options: ChaosOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {**_share(probability), "selector": dependency,
                            "port": options.http_port}
    if len(match.methods) > 1:
        raise DriverError("HTTPChaos matches one HTTP method; the fault lists "
                          f"{', '.join(match.methods)} (give one, or none for any)")
    if match.methods:
        spec["method"] = match.methods[0]
    if match.path_prefix != "/":
        spec["path"] = match.path_prefix + "*"  # HTTPChaos paths take wildcards
    if match.headers:
        spec["request_headers"] = dict(match.headers)
    return spec
