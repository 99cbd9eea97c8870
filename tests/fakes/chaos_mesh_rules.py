"""What Chaos Mesh's admission webhooks and CRD schemas accept, for the fake API server.

``problems(kind, obj)`` returns every reason the real cluster would answer 422 to ``obj``:
first the CRD's ``openAPIV3Schema`` (the CRDs vendored in the package, read by the same loader
as the driver's own check, ``gameday.drivers.crds``), then the webhook's rules that a schema
cannot express. It is stricter than the API server in one way on purpose: unknown fields are
errors (the server would drop them silently, hiding a typo in the driver).

``defaults(kind, obj)`` applies what Chaos Mesh's mutating webhook fills in.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from gameday.drivers import crds

KINDS = {"HTTPChaos": "httpchaos", "NetworkChaos": "networkchaos",
         "StressChaos": "stresschaos", "PodChaos": "podchaos"}
MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT")
# Go's time.ParseDuration: "0", or a sequence of decimal numbers, each with a unit.
_GO_UNIT = r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
GO_DURATION = re.compile(rf"^[-+]?(0|({_GO_UNIT})+)$")
_BANDWIDTH_RATE = re.compile(r"^\s*(\d+)\s*(tbps|gbps|mbps|kbps|bps)\s*$", re.IGNORECASE)
_MEMORY_SIZE = re.compile(r"^(\d+(\.\d+)?(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?|\d+(\.\d+)?%)$")
#: The fields each NetworkChaos action reads its parameters from.
NETWORK_ACTION_FIELDS = {"delay": "delay", "loss": "loss", "duplicate": "duplicate",
                         "corrupt": "corrupt", "bandwidth": "bandwidth"}
SELECTOR_FIELDS = ("labelSelectors", "expressionSelectors", "annotationSelectors",
                   "fieldSelectors", "pods", "nodes", "nodeSelectors", "podPhaseSelectors")


def crd(plural: str) -> dict[str, Any]:
    """The CRD document for ``plural`` (``networkchaos``, …) as shipped by Chaos Mesh."""
    return crds.crd(plural)


@functools.cache
def _validator(plural: str) -> Any:
    return crds.validator(_closed(crds.schema(plural)))


def _closed(schema: Any) -> Any:
    """The schema with unknown properties forbidden wherever it lists the known ones."""
    if isinstance(schema, dict):
        for value in schema.values():
            _closed(value)
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _closed(item)
    return schema


def defaults(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with what Chaos Mesh's mutating webhook sets when it is absent."""
    obj = copy.deepcopy(obj)
    spec = obj.setdefault("spec", {})
    namespace = obj.get("metadata", {}).get("namespace")
    if isinstance(spec.get("selector"), dict) and namespace:
        spec["selector"].setdefault("namespaces", [namespace])
    if kind == "NetworkChaos":
        spec.setdefault("direction", "to")
        if isinstance(spec.get("target"), dict) and isinstance(spec["target"].get("selector"),
                                                               dict) and namespace:
            spec["target"]["selector"].setdefault("namespaces", [namespace])
        for name in ("delay", "loss", "duplicate", "corrupt"):
            if isinstance(spec.get(name), dict):
                spec[name].setdefault("correlation", "0")
        if isinstance(spec.get("delay"), dict):
            spec["delay"].setdefault("jitter", "0ms")
    return obj


def problems(kind: str, obj: dict[str, Any]) -> list[str]:
    """Every reason Chaos Mesh would reject ``obj`` (after defaulting); empty when valid."""
    plural = KINDS[kind]
    found = [str(problem) for problem in crds.schema_problems(_validator(plural), obj)]
    if found:
        return found  # the webhook never sees what the schema refused
    spec = obj.get("spec", {})
    found += _common(spec, kind)
    found += {"NetworkChaos": _network, "HTTPChaos": _http, "PodChaos": _pod,
              "StressChaos": _stress}[kind](spec)
    return found


def _common(spec: dict[str, Any], kind: str) -> list[str]:
    found = []
    if "duration" in spec and not GO_DURATION.match(str(spec["duration"])):
        found.append(f"spec.duration: parse duration field error: {spec['duration']!r} is not "
                     "a Go duration")
    selector = spec.get("selector") or {}
    if not any(selector.get(name) for name in SELECTOR_FIELDS):
        found.append("spec.selector: the selector selects no pods by labels, expressions, "
                     "annotations, fields, names or nodes (it is empty)")
    found += _mode(spec.get("mode"), spec.get("value"), "spec.value")
    return found


def _mode(mode: Any, value: Any, where: str) -> list[str]:
    if mode not in MODES:
        return [f"{where.rsplit('.', 1)[0]}.mode: mode {mode!r} not supported"]
    if mode == "fixed":
        if not _is_int(value) or int(value) <= 0:
            return [f"{where}: value must be a positive integer with mode fixed, got {value!r}"]
    elif mode in ("fixed-percent", "random-max-percent") and (
            not _is_int(value) or not 0 < int(value) <= 100):
        return [f"{where}: value must be an integer in (0,100] with mode {mode}, got {value!r}"]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value) is not None


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _network(spec: dict[str, Any]) -> list[str]:
    found = []
    action = spec.get("action")
    needed = NETWORK_ACTION_FIELDS.get(action or "")
    if needed and not spec.get(needed):
        found.append(f"spec.{needed}: action {action} needs spec.{needed}")
    if action == "netem" and not any(spec.get(n) for n in (*NETWORK_ACTION_FIELDS, "rate")):
        found.append("spec: action netem needs one of delay, loss, duplicate, corrupt, rate")
    delay = spec.get("delay")
    if isinstance(delay, dict):
        for name in ("latency", "jitter"):
            if name in delay and not GO_DURATION.match(str(delay[name])):
                found.append(f"spec.delay.{name}: parse {name} field error: {delay[name]!r}")
    for name in ("delay", "loss", "duplicate", "corrupt"):
        part = spec.get(name)
        if isinstance(part, dict):
            for field in ("correlation", *(() if name == "delay" else (name,))):
                if field in part and not _is_float(part[field]):
                    found.append(f"spec.{name}.{field}: parse {field} field error: "
                                 f"{part[field]!r} is not a number")
    bandwidth = spec.get("bandwidth")
    if isinstance(bandwidth, dict) and not _BANDWIDTH_RATE.match(str(bandwidth.get("rate"))):
        found.append(f"spec.bandwidth.rate: parse rate field error: {bandwidth.get('rate')!r} "
                     "(an integer with tbps, gbps, mbps, kbps or bps)")
    target = spec.get("target")
    if isinstance(target, dict):
        found += _mode(target.get("mode"), target.get("value"), "spec.target.value")
    direction = spec.get("direction", "to")
    if action != "partition" and direction in ("from", "both"):
        if target is None:
            found.append("spec.direction: `from` and `both` direction cannot be used when "
                         "targets is empty in netem action")
        if spec.get("externalTargets"):
            found.append("spec.direction: external targets cannot be used with `from` and "
                         "`both` direction in netem action yet")
    return found


def _http(spec: dict[str, Any]) -> list[str]:
    found = []
    if not isinstance(spec.get("port"), int) or spec["port"] <= 0:
        found.append(f"spec.port: port {spec.get('port')!r} is not supported")
    if spec.get("target") == "Request" and "method" in spec and spec["method"] not in HTTP_METHODS:
        found.append(f"spec.method: method {spec['method']} is not supported")
    if "delay" in spec and not GO_DURATION.match(str(spec["delay"])):
        found.append(f"spec.delay: parse delay field error: {spec['delay']!r}")
    if not any(spec.get(name) for name in ("abort", "delay", "replace", "patch")):
        found.append("spec: no action: give abort, delay, replace or patch")
    return found


def _pod(spec: dict[str, Any]) -> list[str]:
    action = spec.get("action")
    if action == "container-kill" and not spec.get("containerNames"):
        return ["spec.containerNames: the name of container is empty on container-kill action"]
    if action == "pod-failure" and not spec.get("duration"):
        return ["spec.duration: pod-failure action needs a duration"]
    return []


def _stress(spec: dict[str, Any]) -> list[str]:
    stressors = spec.get("stressors") or {}
    if not (stressors.get("cpu") or stressors.get("memory")) and not spec.get("stressngStressors"):
        return ["spec.stressors: missing stressors: give cpu or memory (or stressngStressors)"]
    memory = stressors.get("memory")
    if isinstance(memory, dict) and "size" in memory and not _MEMORY_SIZE.match(memory["size"]):
        return [f"spec.stressors.memory.size: cannot parse {memory['size']!r}"]
    return []
