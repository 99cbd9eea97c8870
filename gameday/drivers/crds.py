"""Chaos Mesh's CRD schemas, vendored as package data, and validation of objects against them.

The CRDs live in ``gameday/drivers/crds/chaos-mesh/`` unchanged from Chaos Mesh (see the
README there), with a ``SHA256SUMS`` list; :func:`crd` refuses a file whose sum does not match,
so the kit never validates against a schema it does not know the origin of.

:func:`problems` checks an object the driver would submit against its kind's
``openAPIV3Schema`` the way the API server does, offline: every problem names the field path
(``spec.delay.latency: '300' does not match …``). OpenAPI 3.0 schemas are JSON Schema draft 4
plus Kubernetes extensions; the ``x-kubernetes-*`` keywords (and CEL rules) are not evaluated
here, and none of the kinds the kit creates uses CEL rules (a test keeps it so). Like the
API server, unknown fields are not errors here: the server drops them.

``jsonschema`` (of the ``kubernetes`` extra) is imported only when a validator is first built.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from gameday.errors import ChaosSpecError, ConfigError

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
SUMS_FILE = "SHA256SUMS"
#: Every vendored kind and its plural, which is also its file's name (``<plural>.yaml``).
KINDS = {"HTTPChaos": "httpchaos", "NetworkChaos": "networkchaos", "PodChaos": "podchaos",
         "StressChaos": "stresschaos", "Schedule": "schedules", "StatusCheck": "statuschecks",
         "Workflow": "workflows"}
# libyaml when available: schedules.yaml and workflows.yaml are close to a megabyte each.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SchemaProblem:
    """One reason the API server would refuse an object: the field's path and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def folder() -> Traversable:
    """The vendored CRD folder, inside the installed package."""
    return resources.files("gameday.drivers").joinpath("crds", "chaos-mesh")


@functools.cache
def sums() -> dict[str, str]:
    """File name → sha256 (hex) as ``SHA256SUMS`` lists them."""
    try:
        text = folder().joinpath(SUMS_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the vendored Chaos Mesh CRDs have no {SUMS_FILE} ({exc}): the "
                          "installation is incomplete") from exc
    listed = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        # sha256sum writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
        name = name.removeprefix(" ").removeprefix("*")
        if len(digest) != 64 or not name:
            raise ConfigError(f"{SUMS_FILE} line {number} is not '<sha256>  <file>': {line!r}")
        listed[name] = digest.lower()
    return listed


def checksum_mismatches() -> list[str]:
    """Every disagreement between the folder's files and ``SHA256SUMS``; empty when none."""
    present = {entry.name for entry in folder().iterdir()
               if entry.is_file() and entry.name.endswith(".yaml")}
    listed = sums()
    found = [f"{name}: not listed in {SUMS_FILE}" for name in sorted(present - set(listed))]
    for name, digest in sorted(listed.items()):
        if name not in present:
            found.append(f"{name}: listed in {SUMS_FILE} but missing")
        elif (actual := _sha256(folder().joinpath(name).read_bytes())) != digest:
            found.append(f"{name}: sha256 {actual}, {SUMS_FILE} says {digest}")
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def crd(plural: str) -> dict[str, Any]:
    """The CRD document of ``plural`` (``networkchaos``, …), checked against its sum.

    Cached and shared: callers must not modify it (:func:`schema` returns a copy).
    """
    name = f"{plural}.yaml"
    digest = sums().get(name)
    if digest is None:
        raise ConfigError(f"no vendored Chaos Mesh CRD for {plural!r} (vendored: "
                          f"{', '.join(sorted(n.removesuffix('.yaml') for n in sums()))})")
    try:
        data = folder().joinpath(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the vendored Chaos Mesh CRD {name}: {exc}") from exc
    if _sha256(data) != digest:
        raise ConfigError(f"the vendored Chaos Mesh CRD {name} does not match {SUMS_FILE}: it "
                          "was changed without regenerating the sums (see the README beside it)")
    document: dict[str, Any] = yaml.load(data, Loader=_LOADER)  # a safe loader, C or Python
    return document


def schema(plural: str, version: str = VERSION) -> dict[str, Any]:
    """A copy of the ``openAPIV3Schema`` that ``plural``'s CRD serves for ``version``."""
    return copy.deepcopy(_served(plural, version))


def _served(plural: str, version: str) -> dict[str, Any]:
    versions = crd(plural)["spec"]["versions"]
    for served in versions:
        if served["name"] == version and served.get("served", False):
            found: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return found
    raise ConfigError(f"the vendored CRD {plural} does not serve {version} (serves: "
                      f"{', '.join(v['name'] for v in versions if v.get('served'))})")


def validator(openapi_schema: Mapping[str, Any]) -> Any:
    """A JSON Schema validator for an OpenAPI 3.0 schema (draft 4: boolean exclusive bounds)."""
    from gameday.extras import require

    require("kubernetes", "validating Chaos Mesh objects")
    import jsonschema

    return jsonschema.Draft4Validator(openapi_schema)


@functools.cache
def _validator(plural: str, version: str) -> Any:
    return validator(_served(plural, version))


def field_path(parts: Iterable[str | int]) -> str:
    """``["spec", "containerNames", 0]`` as ``spec.containerNames[0]``; ``<root>`` when empty."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def schema_problems(openapi_schema_validator: Any, obj: Mapping[str, Any]) -> list[SchemaProblem]:
    """Every error ``openapi_schema_validator`` finds in ``obj``, by field path."""
    errors = sorted(openapi_schema_validator.iter_errors(obj),
                    key=lambda e: (field_path(e.absolute_path), e.message))
    return [SchemaProblem(field_path(e.absolute_path), e.message) for e in errors]


def problems(obj: Mapping[str, Any]) -> list[SchemaProblem]:
    """Every reason the API server would refuse Chaos Mesh object ``obj``; empty when none.

    The kind and version come from the object's ``kind`` and ``apiVersion``.
    """
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    group, _, version = str(api_version).partition("/")
    if group != GROUP or not version:
        return [SchemaProblem("apiVersion", f"{api_version!r} is not {GROUP}/<version>")]
    if kind not in KINDS:
        return [SchemaProblem("kind", f"{kind!r} is not a Chaos Mesh kind (known: "
                              f"{', '.join(sorted(KINDS))})")]
    plural = KINDS[kind]
    served = [v["name"] for v in crd(plural)["spec"]["versions"] if v.get("served")]
    if version not in served:
        return [SchemaProblem("apiVersion", f"{plural}.{GROUP} serves {', '.join(served)}, "
                              f"not {version}")]
    return schema_problems(_validator(plural, version), obj)


def check(obj: Mapping[str, Any]) -> None:
    """Raise ``ChaosSpecError`` naming every field Chaos Mesh would refuse in ``obj``."""
    found = problems(obj)
    if found:
        name = (obj.get("metadata") or {}).get("name") or "(unnamed)"
        raise ChaosSpecError(f"{obj.get('kind')} {name}", [str(p) for p in found])
