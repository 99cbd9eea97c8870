"""HTTP faults through a ConfigMap that services mount for their httpx transport.

The ConfigMap (``deploy/k8s/20-fault-rules.yaml``) holds one JSON document under ``rules.json``::

    {"rules": [{"id": "r-1f2e", "fault": {"kind": "latency", "ms": 100, ...},
                "labels": {"run": "r42", "scenario": "...", "environment": "...", "step": 1},
                "target": "user-service/auth-service", "expires_at": 1767225600.0}]}

Each rule is a ``gameday.injector.rules.Rule``: the transport ignores it after ``expires_at``,
so a rule left behind by a killed orchestrator stops by itself. ``revert`` removes the rule
(``{"rules": []}`` when none is left) and ``active`` lists the unexpired ones. Writes are
read-modify-write with the ConfigMap's ``resourceVersion`` as precondition, so two writers
never lose each other's rules.

Kubelet refreshes mounted ConfigMaps periodically (about a minute by default), so a fault
reaches the pods, and leaves them, that much later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from gameday.drivers import _k8s
from gameday.drivers.base import Gone
from gameday.errors import DriverError
from gameday.injector.rules import HTTP_FAULT_KINDS, Rule, new_rule_id, target_name
from gameday.models import Endpoint
from gameday.records import FaultSpec, Handle

DEFAULT_KEY = "rules.json"
#: Attempts of one read-modify-write when another writer keeps changing the ConfigMap.
WRITE_ATTEMPTS = 5


class ConfigMapDriver:
    """Writes transport rules into ConfigMap ``namespace/name`` under ``key``."""

    kind = "configmap"
    #: kubelet refreshes a mounted ConfigMap about once a minute, so a lease of seconds would
    #: make the fault flap: the TTL alone bounds it.
    lease_slack: float | None = None

    def __init__(self, namespace: str, name: str, allowed_namespaces: Sequence[str] = (), *,
                 key: str = DEFAULT_KEY, api_client: Any | None = None,
                 kubeconfig: str | None = None, context: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.key = key
        self.allowed_namespaces = tuple(allowed_namespaces or (namespace,))
        self._client = _k8s.LazyClient(api_client, kubeconfig, context)

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, allowed_namespaces: Sequence[str] = (),
                     **options: Any) -> ConfigMapDriver:
        """The driver for a ``configmap`` endpoint of an environment."""
        if endpoint.namespace is None or endpoint.configmap is None:
            raise DriverError(f"endpoint {endpoint.service!r} needs namespace and configmap")
        return cls(endpoint.namespace, endpoint.configmap, allowed_namespaces, **options)

    @property
    def where(self) -> str:
        """``namespace/name`` of the ConfigMap."""
        return f"{self.namespace}/{self.name}"

    def check(self) -> None:
        """Raise unless the ConfigMap exists and holds a readable rules document."""
        self._allowed()
        self._read()

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Add a rule for ``spec`` that the transport drops after ``ttl`` seconds."""
        if spec.fault.kind not in HTTP_FAULT_KINDS:
            raise DriverError(f"the ConfigMap driver injects HTTP faults "
                              f"({', '.join(HTTP_FAULT_KINDS)}), not {spec.fault.kind!r}")
        self._allowed()
        now = time.time()
        rule = Rule(id=new_rule_id(), fault=spec.fault, labels=spec.labels,
                    target=target_name(spec.target), expires_at=now + ttl)
        self._update(lambda rules: [r for r in rules if r.active(now)] + [rule])
        return Handle(driver=self.kind, id=rule.id, endpoint=self.where, labels=spec.labels,
                      fault=spec.fault.summary(), expires_at=rule.expires_at,
                      extra={"namespace": self.namespace, "configmap": self.name,
                             "key": self.key})

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Nothing to renew: these faults are not leased (their TTL bounds them)."""
        return []

    def revert(self, handle: Handle) -> None:
        """Remove the handle's rule (and any expired ones); a missing rule is not an error."""
        if handle.extra.get("namespace", self.namespace) != self.namespace or \
                handle.extra.get("configmap", self.name) != self.name:
            raise DriverError(f"handle {handle.id!r} lives in {handle.endpoint}, "
                              f"not in {self.where}")
        self._allowed()
        now = time.time()
        self._update(lambda rules: [r for r in rules if r.id != handle.id and r.active(now)])

    def active(self, run: str | None = None) -> list[Handle]:
        """Unexpired rules in the ConfigMap (only ``run``'s when given)."""
        self._allowed()
        rules, _ = self._read()
        now = time.time()
        return [
            Handle(driver=self.kind, id=rule.id, endpoint=self.where, labels=rule.labels,
                   fault=rule.fault.summary(), expires_at=rule.expires_at,
                   extra={"namespace": self.namespace, "configmap": self.name, "key": self.key})
            for rule in rules
            if rule.active(now) and (run is None or rule.labels.run == run)
        ]

    # --- helpers ------------------------------------------------------------------------------

    def _api(self) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self._client.get())

    def _allowed(self) -> None:
        if _k8s.is_system_namespace(self.namespace) or \
                self.namespace not in self.allowed_namespaces:
            raise DriverError(f"namespace {self.namespace!r} is not an allowed chaos namespace "
                              f"({', '.join(self.allowed_namespaces)})")

    def _read(self) -> tuple[list[Rule], str]:
        """The rules and the ConfigMap's resourceVersion."""
        found = _k8s.call(f"read ConfigMap {self.where}", self._api().read_namespaced_config_map,
                          self.name, self.namespace, missing_ok=True)
        if found is None:
            raise DriverError(f"ConfigMap {self.where} does not exist: create it (see "
                              "deploy/k8s/20-fault-rules.yaml) and mount it in the service")
        text = (found.data or {}).get(self.key) or '{"rules": []}'
        try:
            document = json.loads(text)
            rules = [Rule.model_validate(item) for item in document.get("rules", [])]
        except (ValueError, AttributeError, ValidationError) as exc:
            raise DriverError(f"ConfigMap {self.where} key {self.key!r} is not a rules "
                              f"document: {str(exc).splitlines()[0]}") from exc
        return rules, str(found.metadata.resource_version or "")

    def _update(self, change: Callable[[list[Rule]], list[Rule]]) -> None:
        for _ in range(WRITE_ATTEMPTS):
            rules, version = self._read()
            text = json.dumps({"rules": [r.model_dump(mode="json") for r in change(rules)]},
                              indent=1, sort_keys=True)
            # resourceVersion in a merge patch is a precondition: 409 if someone wrote first.
            patch = {"metadata": {"resourceVersion": version}, "data": {self.key: text}}
            try:
                _k8s.call(f"write ConfigMap {self.where}",
                          self._api().patch_namespaced_config_map, self.name, self.namespace,
                          patch, _content_type="application/merge-patch+json")
                return
            except DriverError as exc:
                if _k8s.status_code(exc) != 409:
                    raise
        raise DriverError(f"ConfigMap {self.where} kept changing under us: gave up after "
                          f"{WRITE_ATTEMPTS} attempts")
