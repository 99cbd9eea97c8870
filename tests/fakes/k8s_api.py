"""A local fake of the Kubernetes API: just the endpoints the kit's drivers and checks use.

Served over HTTP on 127.0.0.1 from a thread, so a real ``kubernetes`` client talks to it::

    with FakeKubernetes() as fake:
        fake.add_namespace("chaos-testing", {"chaos.gameday.io/enabled": "true"})
        driver = ChaosMeshDriver("chaos-testing", {"app": "web"}, api_client=fake.api_client())

Endpoints: Chaos Mesh custom objects (create, get, list by ``labelSelector``, merge-patch,
delete), namespaces (get), pods (list by ``labelSelector``), ConfigMaps (get, create,
merge-patch with a ``resourceVersion`` precondition), ``selfsubjectaccessreviews`` (create;
``deny`` turns answers to "no") and CRDs (get: the Chaos Mesh CRDs vendored in the package).

Chaos objects are defaulted and validated as the cluster would (``chaos_mesh_rules``):
rejections answer 422 with a ``Status``; ``created`` keeps a copy of each accepted object.
Like Chaos Mesh's controller, the fake puts a finalizer on each chaos object; a deleted one
stays, with a ``deletionTimestamp``, until it is "recovered" ``recover_after`` seconds later,
or forever while ``stick(name)`` holds it.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes import chaos_mesh_rules as rules
from tests.fakes.server import LoopbackServer

FINALIZER = "chaos-mesh/records"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_PLURAL_KIND = {plural: kind for kind, plural in rules.KINDS.items()}
_CHAOS = re.compile(r"^/apis/chaos-mesh\.org/v1alpha1/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?$")
_CONFIGMAP = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$")
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_NAMESPACE = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_CRD = re.compile(r"^/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions/([^/]+)$")
_REVIEW = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


class ApiError(Exception):
    """An answer other than 2xx, as a Kubernetes ``Status``."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        """The ``Status`` body the real server would send."""
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


class FakeKubernetes:
    """The fake API server and its state; tests change the state directly."""

    def __init__(self, recover_after: float = 0.2) -> None:
        self.recover_after = recover_after
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.chaos: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.crds = set(rules.KINDS.values())
        self.denied: set[tuple[str, str]] = set()
        self.stuck: set[str] = set()
        self.writes: list[tuple[str, str]] = []
        #: Every request answered, (method, path): a test can tell that none was made.
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self._recover_at: dict[tuple[str, str, str], float] = {}
        self._versions = itertools.count(1)
        self._lock = threading.RLock()
        self._server = LoopbackServer()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        """Serve on a free port of 127.0.0.1 from a daemon thread."""
        self._server.start(_Handler, self, "fake-kubernetes")
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return self._server.url

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` that talks to this fake."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.retries = False  # a refused connection must fail at once in tests
        return client.ApiClient(configuration)

    # --- state helpers ------------------------------------------------------------------------

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace with ``labels``."""
        self.namespaces[name] = dict(labels or {})

    def add_pods(self, namespace: str, labels: dict[str, str], count: int = 1,
                 ready: bool = True) -> None:
        """Add ``count`` Running pods with ``labels`` (Ready unless ``ready`` is false)."""
        pods = self.pods.setdefault(namespace, [])
        for _ in range(count):
            name = f"{next(iter(labels.values()), 'pod')}-{uuid.uuid4().hex[:5]}"
            pods.append({"metadata": {"name": name, "namespace": namespace,
                                      "labels": dict(labels), "uid": str(uuid.uuid4())},
                         "status": {"phase": "Running", "conditions": [
                             {"type": "Ready", "status": "True" if ready else "False"}]}})

    def add_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Create a ConfigMap."""
        self.configmaps[(namespace, name)] = {
            "apiVersion": "v1", "kind": "ConfigMap", "data": dict(data),
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "resourceVersion": str(next(self._versions))}}

    def deny(self, verb: str, resource: str) -> None:
        """Make access reviews answer "not allowed" for ``verb`` on ``resource``."""
        self.denied.add((verb, resource))

    def stick(self, name: str) -> None:
        """Keep chaos object ``name`` from being recovered after deletion."""
        self.stuck.add(name)

    def release(self, name: str) -> None:
        """Let a stuck object be recovered (at once, if it is already deleting)."""
        self.stuck.discard(name)
        for key in list(self._recover_at):
            if key[2] == name:
                self._recover_at[key] = 0.0

    def chaos_objects(self) -> list[dict[str, Any]]:
        """Every chaos object currently stored (recovered ones are gone)."""
        with self._lock:
            self._recover()
            return [copy.deepcopy(obj) for obj in self.chaos.values()]

    # --- request handling ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any]:
        """Answer one request: (status code, JSON body)."""
        with self._lock:
            self._recover()
            self.requests.append((method, path))
            if method in ("POST", "PUT", "PATCH", "DELETE") and path != _REVIEW:
                self.writes.append((method, path))
            selector = (query.get("labelSelector") or [""])[0]
            if match := _CHAOS.match(path):
                namespace, plural, name = match.groups()
                return self._chaos(method, namespace, plural, name, selector, body)
            if match := _CONFIGMAP.match(path):
                return self._configmap(method, match.group(1), match.group(2), body)
            if (match := _PODS.match(path)) and method == "GET":
                namespace = self._namespace(match.group(1))
                items = [p for p in self.pods.get(namespace, []) if _selects(selector, p)]
                return 200, {"kind": "PodList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": "1"}, "items": items}
            if (match := _NAMESPACE.match(path)) and method == "GET":
                name = self._namespace(match.group(1))
                return 200, {"kind": "Namespace", "apiVersion": "v1",
                             "metadata": {"name": name, "labels": self.namespaces[name]},
                             "status": {"phase": "Active"}}
            if (match := _CRD.match(path)) and method == "GET":
                plural, _, group = match.group(1).partition(".")
                if group != "chaos-mesh.org" or plural not in self.crds:
                    raise ApiError(404, "NotFound", f'customresourcedefinitions '
                                                    f'"{match.group(1)}" not found')
                return 200, rules.crd(plural)
            if path == _REVIEW and method == "POST":
                attributes = body["spec"]["resourceAttributes"]
                denied = (attributes.get("verb"), attributes.get("resource")) in self.denied
                return 201, {**body, "status": {
                    "allowed": not denied, "reason": "denied by the fake" if denied else ""}}
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _namespace(self, name: str) -> str:
        if name not in self.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{name}" not found')
        return name

    def _recover(self) -> None:
        now = time.monotonic()
        for key, when in list(self._recover_at.items()):
            if when <= now and key[2] not in self.stuck:
                self.chaos.pop(key, None)
                del self._recover_at[key]

    def _chaos(self, method: str, namespace: str, plural: str, name: str | None,
               selector: str, body: Any) -> tuple[int, Any]:
        if plural not in self.crds or plural not in _PLURAL_KIND:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._namespace(namespace)
        kind = _PLURAL_KIND[plural]
        if name is None and method == "GET":
            items = [copy.deepcopy(obj) for (ns, p, _), obj in sorted(self.chaos.items())
                     if ns == namespace and p == plural and _selects(selector, obj)]
            return 200, {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": f"{kind}List",
                         "metadata": {"resourceVersion": "1"}, "items": items}
        if name is None and method == "POST":
            return self._create(kind, namespace, plural, body)
        key = (namespace, plural, name or "")
        if key not in self.chaos:
            raise ApiError(404, "NotFound", f'{plural}.chaos-mesh.org "{name}" not found')
        obj = self.chaos[key]
        if method == "GET":
            return 200, copy.deepcopy(obj)
        if method == "DELETE":
            if obj["metadata"].get("finalizers"):
                obj["metadata"].setdefault("deletionTimestamp", _now())
                self._recover_at.setdefault(key, time.monotonic() + self.recover_after)
                return 200, copy.deepcopy(obj)
            del self.chaos[key]
            return 200, copy.deepcopy(obj)
        if method == "PATCH":
            patched = _merge(copy.deepcopy(obj), body)
            if patched.get("spec") != obj.get("spec"):
                raise ApiError(422, "Invalid", f'admission webhook denied the request: '
                                               f'the {kind} "{name}" cannot be updated')
            patched["metadata"]["resourceVersion"] = str(next(self._versions))
            self.chaos[key] = patched
            return 200, copy.deepcopy(patched)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _create(self, kind: str, namespace: str, plural: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        metadata = body.get("metadata") or {}
        name = metadata.get("name", "")
        errors = _metadata_problems(metadata)
        if body.get("kind") != kind or body.get("apiVersion") != "chaos-mesh.org/v1alpha1":
            errors.append(f"kind/apiVersion must be {kind} chaos-mesh.org/v1alpha1")
        if metadata.get("namespace", namespace) != namespace:
            errors.append("metadata.namespace does not match the request's namespace")
        obj = rules.defaults(kind, {**body, "metadata": {**metadata, "namespace": namespace}})
        obj.pop("status", None)
        errors += rules.problems(kind, obj)
        if errors:
            self.rejected.append(f"{kind} {name}: " + "; ".join(errors))
            raise ApiError(422, "Invalid", f'{kind}.chaos-mesh.org "{name}" is invalid: '
                                           + "; ".join(errors))
        key = (namespace, plural, name)
        if key in self.chaos:
            raise ApiError(409, "AlreadyExists", f'{plural}.chaos-mesh.org "{name}" already '
                                                 "exists")
        obj["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1,
                               resourceVersion=str(next(self._versions)),
                               finalizers=[FINALIZER])
        self.chaos[key] = obj
        self.created.append(copy.deepcopy(obj))
        return 201, copy.deepcopy(obj)

    def _configmap(self, method: str, namespace: str, name: str | None,
                   body: Any) -> tuple[int, Any]:
        self._namespace(namespace)
        if name is None and method == "POST":
            name = (body.get("metadata") or {}).get("name", "")
            if (namespace, name) in self.configmaps:
                raise ApiError(409, "AlreadyExists", f'configmaps "{name}" already exists')
            self.add_configmap(namespace, name, body.get("data") or {})
            return 201, copy.deepcopy(self.configmaps[(namespace, name)])
        key = (namespace, name or "")
        if key not in self.configmaps:
            raise ApiError(404, "NotFound", f'configmaps "{name}" not found')
        current = self.configmaps[key]
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "PATCH":
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on configmaps '
                                                f'"{name}": the object has been modified')
            patched = _merge(copy.deepcopy(current), body)
            patched["metadata"]["resourceVersion"] = str(next(self._versions))
            self.configmaps[key] = patched
            return 200, copy.deepcopy(patched)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubernetes
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
            code, answer = self.fake.handle(self.command, url.path, parse_qs(url.query), body)
        except ApiError as exc:
            code, answer = exc.code, exc.status()
        except (ValueError, KeyError, TypeError) as exc:
            code, answer = 400, ApiError(400, "BadRequest", f"bad request: {exc}").status()
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read the fake's state, not its log."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


def _metadata_problems(metadata: dict[str, Any]) -> list[str]:
    name = metadata.get("name", "")
    found = []
    if not name or len(name) > 253 or not _NAME.match(name):
        found.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    for key, value in (metadata.get("labels") or {}).items():
        if not _LABEL_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
            found.append(f"metadata.labels: invalid key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            found.append(f"metadata.labels: invalid value {value!r} for {key!r}")
    for key, value in (metadata.get("annotations") or {}).items():
        if not isinstance(value, str):
            found.append(f"metadata.annotations: value of {key!r} must be a string")
    return found


def _selects(selector: str, obj: dict[str, Any]) -> bool:
    """Whether ``obj``'s labels satisfy a ``labelSelector`` (=, ==, !=, key, !key)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True
