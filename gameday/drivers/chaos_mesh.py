"""Faults on Kubernetes through Chaos Mesh experiments (``chaos-mesh.org/v1alpha1``).

Each applied fault is one namespaced object (HTTPChaos, NetworkChaos, StressChaos or PodChaos,
see ``gameday.drivers.chaos_specs`` for the mapping) whose ``duration`` is the step's TTL, so
Chaos Mesh recovers the targets by itself if the orchestrator dies. Every object carries the
run's labels (``chaos.gameday.io/run``, ``…/scenario``, ``…/environment``, ``…/step`` and
``app.kubernetes.io/managed-by=gameday``), which is how ``active`` finds them again.

Every object is validated against Chaos Mesh's CRD schema (``gameday.drivers.crds``) before it
is submitted: one the cluster would refuse raises ``ChaosSpecError`` naming the field, and
nothing is sent. ``check_plan`` does the same offline for every step of a run, for prepare
(so ``chaosctl start --dry-run``) and ``chaosctl catalog validate``.

Reverting deletes the object and waits until it is gone: Chaos Mesh's finalizer keeps it until
the targets are recovered. If that takes longer than ``revert_timeout`` the experiment is paused
(annotation ``experiment.chaos-mesh.org/pause: "true"``, which also recovers its targets) and
``DriverError`` says so. Finalizers are never removed by force: that would hide a target that
was not recovered.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gameday.drivers import _k8s, crds
from gameday.drivers.base import Driver, Gone
from gameday.drivers.chaos_specs import GROUP, PLURALS, VERSION, ChaosOptions, Level, experiment
from gameday.errors import DriverError, RefusedError
from gameday.models import Endpoint
from gameday.records import FaultSpec, Handle

PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"


class ChaosMeshDriver:
    """Applies, reverts and lists Chaos Mesh experiments for one endpoint.

    ``namespace`` and ``selector`` say where the service's pods are; ``allowed_namespaces``
    (the environment's allow-list) bounds where it creates objects and where ``active`` looks.
    The client is ``api_client`` when given, else built from kubeconfig (or the pod's service
    account) on first use.
    """

    kind = "chaos_mesh"
    #: Chaos Mesh has no lease primitive: a fault keeps its ``duration`` (the TTL).
    lease_slack: float | None = None

    def __init__(self, namespace: str, selector: dict[str, str],
                 allowed_namespaces: Sequence[str] = (), *, api_client: Any | None = None,
                 kubeconfig: str | None = None, context: str | None = None,
                 level: Level = "network", http_port: int = 80, dependency_label: str = "app",
                 revert_timeout: float = 120.0, poll_interval: float = 0.5) -> None:
        self.namespace = namespace
        self.selector = dict(selector)
        self.allowed_namespaces = tuple(dict.fromkeys(allowed_namespaces or (namespace,)))
        self.options = ChaosOptions(level=level, http_port=http_port,
                                    dependency_label=dependency_label)
        self.revert_timeout = revert_timeout
        self.poll_interval = poll_interval
        self._client = _k8s.LazyClient(api_client, kubeconfig, context)

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, allowed_namespaces: Sequence[str] = (),
                     **options: Any) -> ChaosMeshDriver:
        """The driver for a ``chaos_mesh`` endpoint of an environment."""
        if endpoint.namespace is None:
            raise DriverError(f"endpoint {endpoint.service!r} has no namespace")
        settings = {"level": endpoint.level, "http_port": endpoint.http_port,
                    "dependency_label": endpoint.dependency_label}
        return cls(endpoint.namespace, endpoint.selector, allowed_namespaces,
                   **(settings | options))

    # --- the driver contract ------------------------------------------------------------------

    def check(self) -> None:
        """Raise unless the API answers and Chaos Mesh's kinds can be listed in the namespace."""
        self._allowed(self.namespace)
        for plural in PLURALS.values():
            _k8s.call(f"list {plural} in {self.namespace}",
                      self._api().list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                      plural, limit=1)

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Create the experiment for ``spec``; Chaos Mesh ends it by itself after ``ttl``.

        ``ChaosSpecError`` (nothing sent) when the object fails Chaos Mesh's CRD schema.
        """
        self._allowed(self.namespace)
        expires_at = time.time() + ttl
        body = self.manifest(spec, ttl, expires_at)
        # Checked here, offline, so a refused object names its field and the API sees nothing.
        crds.check(body)
        kind, name = body["kind"], body["metadata"]["name"]
        plural = PLURALS[kind]
        summary = spec.fault.summary()
        _k8s.call(f"create {kind} {self.namespace}/{name}",
                  self._api().create_namespaced_custom_object, GROUP, VERSION, self.namespace,
                  plural, body)
        return Handle(driver=self.kind, id=name, endpoint=f"{self.namespace}/{kind}",
                      labels=spec.labels, fault=summary, expires_at=expires_at,
                      extra={"namespace": self.namespace, "kind": kind, "plural": plural})

    def manifest(self, spec: FaultSpec, ttl: float,
                 expires_at: float | None = None) -> dict[str, Any]:
        """The object ``apply`` submits for ``spec`` (pure: the cluster is not asked).

        ``DriverError`` when Chaos Mesh cannot express the fault or a label is invalid.
        """
        kind, body_spec = experiment(spec.fault, spec.target, self.namespace, self.selector,
                                     ttl, self.options)
        plural = PLURALS[kind]
        if expires_at is None:
            expires_at = time.time() + ttl
        name = _k8s.object_name(spec.labels, f"{plural[:-5]}-{secrets.token_hex(3)}")
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": _k8s.fault_labels(spec.labels),
                "annotations": {_k8s.FAULT_ANNOTATION: spec.fault.summary(),
                                _k8s.EXPIRES_ANNOTATION: f"{expires_at:.3f}"},
            },
            "spec": body_spec,
        }

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Nothing to renew: these faults are not leased (their TTL bounds them)."""
        return []

    def revert(self, handle: Handle) -> None:
        """Delete the experiment and wait until Chaos Mesh has recovered its targets."""
        namespace, plural, name = self._locate(handle)
        api = self._api()
        what = f"{handle.extra.get('kind', plural)} {namespace}/{name}"
        _k8s.call(f"delete {what}", api.delete_namespaced_custom_object, GROUP, VERSION,
                  namespace, plural, name, missing_ok=True)
        deadline = time.monotonic() + self.revert_timeout
        while True:
            found = _k8s.call(f"read {what}", api.get_namespaced_custom_object, GROUP, VERSION,
                              namespace, plural, name, missing_ok=True)
            if found is None:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_interval)
        # Stuck behind its finalizer: pausing makes Chaos Mesh recover the targets, and the
        # object stays visible (to ``active`` and to people) until it really is recovered.
        paused = _k8s.call(f"pause {what}", api.patch_namespaced_custom_object, GROUP, VERSION,
                           namespace, plural, name,
                           {"metadata": {"annotations": {PAUSE_ANNOTATION: "true"}}},
                           missing_ok=True, _content_type="application/merge-patch+json")
        if paused is None:
            return  # it went away between the last look and the pause
        finalizers = ", ".join(found.get("metadata", {}).get("finalizers") or []) or "none"
        raise DriverError(
            f"{what} was still deleting after {self.revert_timeout:g}s (finalizers: "
            f"{finalizers}): Chaos Mesh has not recovered its targets. Paused it with "
            f"{PAUSE_ANNOTATION}=\"true\"; check the chaos-controller-manager and the pods. "
            "Do not remove the finalizers by hand: that hides targets that were not recovered."
        )

    def active(self, run: str | None = None) -> list[Handle]:
        """The kit's experiments that still exist in every allowed namespace (``run``'s only)."""
        selector = _k8s.run_selector(run)
        api = self._api()
        found = []
        for namespace in self.allowed_namespaces:
            if _k8s.is_system_namespace(namespace):
                continue
            for kind, plural in PLURALS.items():
                listing = _k8s.call(f"list {plural} in {namespace}",
                                    api.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                    plural, label_selector=selector) or {}
                for item in listing.get("items", []):
                    handle = self._handle_from(item, namespace, kind, plural)
                    if handle is not None:
                        found.append(handle)
        return found

    # --- helpers ------------------------------------------------------------------------------

    def _api(self) -> Any:
        from kubernetes.client import CustomObjectsApi

        return CustomObjectsApi(self._client.get())

    def _allowed(self, namespace: str) -> None:
        if _k8s.is_system_namespace(namespace):
            raise DriverError(f"namespace {namespace!r} belongs to Kubernetes itself: never a "
                              "chaos target")
        if namespace not in self.allowed_namespaces:
            raise DriverError(f"namespace {namespace!r} is not in the environment's "
                              f"allowed_namespaces ({', '.join(self.allowed_namespaces)})")

    def _locate(self, handle: Handle) -> tuple[str, str, str]:
        namespace = handle.extra.get("namespace", "")
        plural = handle.extra.get("plural", "")
        if handle.driver != self.kind or plural not in PLURALS.values():
            raise DriverError(f"handle {handle.id!r} is not a Chaos Mesh experiment "
                              f"(driver {handle.driver!r}, extra {handle.extra})")
        self._allowed(namespace)
        return namespace, plural, handle.id

    def _handle_from(self, item: dict[str, Any], namespace: str, kind: str,
                     plural: str) -> Handle | None:
        metadata = item.get("metadata", {})
        labels = _k8s.labels_from(metadata.get("labels") or {})
        if labels is None:
            return None  # not made by this kit (or its labels were edited): leave it alone
        annotations = metadata.get("annotations") or {}
        try:
            expires_at = float(annotations.get(_k8s.EXPIRES_ANNOTATION, "0"))
        except ValueError:
            expires_at = 0.0
        return Handle(driver=self.kind, id=metadata.get("name", ""),
                      endpoint=f"{namespace}/{kind}", labels=labels,
                      fault=annotations.get(_k8s.FAULT_ANNOTATION, kind), expires_at=expires_at,
                      extra={"namespace": namespace, "kind": kind, "plural": plural})


# --- checking a run's plan offline ----------------------------------------------------------


@dataclass(frozen=True)
class StepProblem:
    """Why one step of a plan would not reach the cluster, or would be refused by it."""

    step: int
    fault: str
    #: The Chaos Mesh kind of the step's object; None when the driver could not build one.
    kind: str | None
    #: The refused field's path (``spec.delay.latency``); empty when no field is to blame.
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.kind} {self.field}: " if self.kind else ""
        return f"step {self.step} ({self.fault}): {where}{self.message}"


def check_plan(driver: Driver, steps: Iterable[tuple[FaultSpec, float]]) -> list[StepProblem]:
    """Every step (fault spec, TTL) whose object Chaos Mesh would refuse, checked offline.

    Empty for other drivers, which build no Kubernetes objects. The object of each step is the
    one ``apply`` would submit, built the same way; only its random name differs.
    """
    if not isinstance(driver, ChaosMeshDriver):
        return []
    found = []
    for spec, ttl in steps:
        step, fault = spec.labels.step, spec.fault.summary()
        try:
            body = driver.manifest(spec, ttl)
        except DriverError as exc:
            found.append(StepProblem(step, fault, None, "", str(exc)))
            continue
        found += [StepProblem(step, fault, body["kind"], problem.field, problem.message)
                  for problem in crds.problems(body)]
    return found


def refuse_invalid_plan(driver: Driver, steps: Iterable[tuple[FaultSpec, float]]) -> None:
    """Raise ``RefusedError`` listing every step Chaos Mesh would refuse (see ``check_plan``).

    Prepare calls it first, before anything asks the cluster: a dry run shows the problem
    offline, and a real run stops before step 1 rather than half-way up its ladder.
    """
    planned = list(steps)
    found = check_plan(driver, planned)
    if found:
        labels = planned[0][0].labels
        raise RefusedError(f"refused, nothing injected: Chaos Mesh would refuse objects of "
                           f"scenario {labels.scenario!r} in {labels.environment!r}:\n"
                           + "\n".join(f"  - {p}" for p in found))
