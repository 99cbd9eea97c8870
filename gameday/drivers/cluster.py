"""Cluster safety checks run in prepare, before anything is created on Kubernetes.

``preflight_cluster`` refuses a game day (``RefusedError``, nothing created) unless:

1. the endpoint's namespace is in the environment's ``allowed_namespaces``, is not one of
   Kubernetes' own (``kube-system``, ``kube-public``, …), exists and carries the opt-in label
   ``chaos.gameday.io/enabled=true``;
2. Chaos Mesh's CRDs for the fault are installed and serve ``v1alpha1`` (``chaos_mesh``
   endpoints), or the rules ConfigMap exists (``configmap`` endpoints);
3. a ``SelfSubjectAccessReview`` allows every verb the run needs (``required_access``);
4. the targets exist and are ready: the pods the endpoint's selector matches (and, for faults
   on calls, the dependency's pods) are all Running and Ready, and there is at least one.

It only reads, and asks the API about permissions; it never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gameday.drivers import _k8s
from gameday.drivers.chaos_specs import GROUP, PLURALS, VERSION, kinds_for
from gameday.errors import DriverError, RefusedError
from gameday.models import Endpoint, Environment, Scenario

T = TypeVar("T")
#: Fault kinds whose Chaos Mesh experiments also touch the dependency's pods.
ON_CALLS = ("latency", "abort", "reset", "blackhole", "bandwidth")


@dataclass(frozen=True)
class Access:
    """One permission a run needs: ``verb`` on ``group/resource`` in ``namespace``."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str | None = None

    def __str__(self) -> str:
        what = f"{self.group}/{self.resource}" if self.group else self.resource
        named = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {what}{named} in {self.namespace}"


def required_access(environment: Environment, endpoint: Endpoint,
                    fault_kind: str) -> list[Access]:
    """Every permission a run with ``fault_kind`` at ``endpoint`` needs, in check order."""
    namespace = endpoint.namespace or ""
    needed = [Access("list", "", "pods", namespace)]
    if endpoint.driver == "chaos_mesh":
        for kind in kinds_for(fault_kind):
            needed += [Access(verb, GROUP, PLURALS[kind], namespace)
                       for verb in ("create", "get", "delete", "patch")]
        # ``active`` sweeps every allowed namespace for leftovers of the run.
        for swept in dict.fromkeys([namespace, *environment.allowed_namespaces]):
            if not _k8s.is_system_namespace(swept):
                needed += [Access("list", GROUP, plural, swept) for plural in PLURALS.values()]
    elif endpoint.driver == "configmap":
        needed += [Access(verb, "", "configmaps", namespace, endpoint.configmap)
                   for verb in ("get", "patch")]
    return needed


def preflight_cluster(environment: Environment, scenario: Scenario,
                      api_client: Any | None = None, *, kubeconfig: str | None = None,
                      context: str | None = None, dependency_label: str = "app") -> None:
    """Refuse the run (``RefusedError``) unless the cluster is safe and ready for it.

    Endpoints that are not on Kubernetes (proxy, transport, stress) pass without a look.
    """
    endpoint = environment.endpoint_for(scenario.target)
    if endpoint is None:
        target = " → ".join(filter(None, [scenario.target.service, scenario.target.dependency]))
        raise RefusedError(f"environment {environment.name!r} has no endpoint for {target}")
    if endpoint.driver not in ("chaos_mesh", "configmap"):
        return
    namespace = endpoint.namespace or ""
    check_namespace_allowed(environment, namespace)
    try:
        client = _k8s.LazyClient(api_client, kubeconfig, context).get()
    except DriverError as exc:
        raise RefusedError(f"cannot reach Kubernetes: {exc}") from exc
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(client)
    check_namespace_labelled(core, namespace)
    if endpoint.driver == "chaos_mesh":
        check_crds(k8s.ApiextensionsV1Api(client), scenario.fault.kind)
    else:
        _ask(f"read ConfigMap {namespace}/{endpoint.configmap}", core.read_namespaced_config_map,
             endpoint.configmap, namespace,
             missing=f"ConfigMap {namespace}/{endpoint.configmap} does not exist (see "
                     "deploy/k8s/20-fault-rules.yaml)")
    check_access(k8s.AuthorizationV1Api(client),
                 required_access(environment, endpoint, scenario.fault.kind))
    check_pods_ready(core, namespace, endpoint.selector, f"service {endpoint.service!r}")
    dependency = scenario.target.dependency
    if endpoint.driver == "chaos_mesh" and scenario.fault.kind in ON_CALLS and dependency:
        check_pods_ready(core, namespace, {dependency_label: dependency},
                         f"dependency {dependency!r}")


def check_namespace_allowed(environment: Environment, namespace: str) -> None:
    """Refuse Kubernetes' own namespaces and any not in the allow-list (no I/O)."""
    if _k8s.is_system_namespace(namespace):
        raise RefusedError(f"namespace {namespace!r} belongs to Kubernetes itself and is never "
                           "a chaos target")
    if namespace not in environment.allowed_namespaces:
        allowed = ", ".join(environment.allowed_namespaces) or "none"
        raise RefusedError(f"namespace {namespace!r} is not in environment "
                           f"{environment.name!r}'s allowed_namespaces ({allowed})")


def check_namespace_labelled(core: Any, namespace: str) -> None:
    """Refuse unless the namespace exists and opted in with ``chaos.gameday.io/enabled=true``."""
    key, value = _k8s.NAMESPACE_OPT_IN
    found = _ask(f"read namespace {namespace}", core.read_namespace, namespace,
                 missing=f"namespace {namespace!r} does not exist")
    labels = found.metadata.labels or {}
    if labels.get(key) != value:
        raise RefusedError(f"namespace {namespace!r} has not opted in to chaos: label it "
                           f"with {key}={value} (kubectl label namespace {namespace} "
                           f"{key}={value})")


def check_crds(extensions: Any, fault_kind: str) -> None:
    """Refuse unless Chaos Mesh's CRDs for ``fault_kind`` are installed and serve v1alpha1."""
    for kind in kinds_for(fault_kind):
        name = f"{PLURALS[kind]}.{GROUP}"
        found = _ask(f"read CRD {name}", extensions.read_custom_resource_definition, name,
                     missing=f"Chaos Mesh is not installed: CRD {name} is missing "
                             "(install Chaos Mesh, see docs/kubernetes.md)")
        served = [v.name for v in found.spec.versions if v.served]
        if VERSION not in served:
            raise RefusedError(f"CRD {name} does not serve {VERSION} (serves: "
                               f"{', '.join(served) or 'nothing'}): upgrade Chaos Mesh")


def check_access(authorization: Any, needed: list[Access]) -> None:
    """Refuse unless a SelfSubjectAccessReview allows every access in ``needed``."""
    from kubernetes import client as k8s

    denied = []
    for access in needed:
        review = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                verb=access.verb, group=access.group, resource=access.resource,
                namespace=access.namespace, name=access.name)))
        answer = _ask(f"review access {access}",
                      authorization.create_self_subject_access_review, review)
        if not (answer.status and answer.status.allowed):
            reason = answer.status.reason if answer.status and answer.status.reason else ""
            denied.append(f"{access}{f' ({reason})' if reason else ''}")
    if denied:
        raise RefusedError("the kit's Kubernetes identity may not: " + "; ".join(denied)
                           + " (see deploy/k8s/10-rbac.yaml)")


def check_pods_ready(core: Any, namespace: str, selector: dict[str, str], what: str) -> None:
    """Refuse unless at least one pod matches and every matching pod is Running and Ready."""
    if not selector:
        raise RefusedError(f"{what} has an empty pod selector: it would match every pod")
    text = _k8s.selector_string(selector)
    pods = _ask(f"list pods {text} in {namespace}", core.list_namespaced_pod, namespace,
                label_selector=text).items or []
    if not pods:
        raise RefusedError(f"{what}: no pod matches {text} in namespace {namespace!r}")
    not_ready = [pod.metadata.name for pod in pods if not _ready(pod)]
    if not_ready:
        raise RefusedError(f"{what}: pods not ready in {namespace!r}: {', '.join(not_ready)}; "
                           "wait until they are, a game day starts from a healthy system")


def _ready(pod: Any) -> bool:
    status = pod.status
    if pod.metadata.deletion_timestamp is not None or status is None:
        return False
    conditions = {c.type: c.status for c in (status.conditions or [])}
    return status.phase == "Running" and conditions.get("Ready") == "True"


def _ask(what: str, fn: Callable[..., T], *args: Any, missing: str | None = None,
         **kwargs: Any) -> T:
    """One read for a check; any failure is a refusal naming what was being checked."""
    try:
        found = _k8s.call(what, fn, *args, missing_ok=missing is not None, **kwargs)
    except DriverError as exc:
        raise RefusedError(f"cannot {what}: {exc}") from exc
    if found is None:
        raise RefusedError(missing or f"{what}: nothing found")
    return found
