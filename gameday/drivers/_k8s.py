"""What the Kubernetes drivers share: a lazily built client, error translation, fault labels.

The ``kubernetes`` package is imported only when a client is first needed, so importing the
drivers stays cheap and nothing connects at import time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from gameday.errors import DriverError, DriverUnreachable
from gameday.records import Labels

T = TypeVar("T")

#: Label keys every object the kit creates carries (``kubectl get -l`` finds them).
LABEL_PREFIX = "chaos.gameday.io/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gameday"}
#: Annotations that let a fresh driver rebuild a handle from the object alone.
FAULT_ANNOTATION = LABEL_PREFIX + "fault"
EXPIRES_ANNOTATION = LABEL_PREFIX + "expires-at"
#: Namespaces opt in to chaos with this label; the kit refuses every other namespace.
NAMESPACE_OPT_IN = (LABEL_PREFIX + "enabled", "true")
#: Per-request timeout (connect, read) in seconds: an unreachable API fails fast.
REQUEST_TIMEOUT = (5.0, 30.0)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_system_namespace(namespace: str) -> bool:
    """Kubernetes' own namespaces (``kube-system``, ``kube-public``, …) are never targets."""
    return namespace.startswith("kube-")


class LazyClient:
    """An ``ApiClient`` given by the caller, or built from kubeconfig on first use."""

    def __init__(self, api_client: Any | None = None, kubeconfig: str | None = None,
                 context: str | None = None) -> None:
        self._client = api_client
        self._kubeconfig = kubeconfig
        self._context = context

    def get(self) -> Any:
        """The ``kubernetes.client.ApiClient``; ``DriverUnreachable`` if none can be built."""
        if self._client is None:
            self._client = build_api_client(self._kubeconfig, self._context)
        return self._client


def build_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A client from the pod's service account when running in a cluster, else kubeconfig."""
    from kubernetes import client, config

    # Typed as Any: these loaders carry no annotations.
    load_incluster: Any = config.load_incluster_config
    from_kubeconfig: Any = config.new_client_from_config
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            load_incluster(client_configuration=configuration)
            return client.ApiClient(configuration)
        return from_kubeconfig(config_file=kubeconfig, context=context)
    except (config.ConfigException, OSError, TypeError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise DriverUnreachable(f"no Kubernetes credentials: could not load {where}"
                                f"{f' (context {context})' if context else ''}: {exc}") from exc


def call(what: str, fn: Callable[..., T], *args: Any, missing_ok: bool = False,
         **kwargs: Any) -> T | None:
    """Call one API method; Kubernetes and urllib3 errors become ``DriverError``.

    With ``missing_ok`` a 404 returns None instead of raising (deleting something already
    gone, reading something that may not exist).
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404 and missing_ok:
            return None
        if not exc.status:
            raise DriverUnreachable(f"{what}: Kubernetes API did not answer: {exc.reason}") from exc
        raise DriverError(f"{what}: Kubernetes API answered {exc.status} "
                          f"{status_message(exc)}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise DriverUnreachable(f"{what}: Kubernetes API did not answer: {exc}") from exc


def status_code(exc: BaseException) -> int | None:
    """The HTTP status behind a translated error, when there was one."""
    cause = exc.__cause__
    status = getattr(cause, "status", None)
    return status if isinstance(status, int) else None


def status_message(exc: Any) -> str:
    """The ``message`` of the API's ``Status`` answer, else its reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return f"{exc.reason}: {body['message']}"
    return str(exc.reason)


def fault_labels(labels: Labels) -> dict[str, str]:
    """The Kubernetes labels of a fault: run, scenario, environment, step, managed-by."""
    values = {"run": labels.run, "scenario": labels.scenario,
              "environment": labels.environment, "step": str(labels.step)}
    for name, value in values.items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise DriverError(f"label {name}={value!r} is not a valid Kubernetes label value "
                              "(at most 63 letters, digits, '-', '_' or '.', alphanumeric at "
                              "both ends)")
    return {LABEL_PREFIX + name: value for name, value in values.items()} | MANAGED_BY


def labels_from(metadata_labels: dict[str, str]) -> Labels | None:
    """Rebuild ``Labels`` from an object's labels; None when they are not the kit's."""
    try:
        return Labels(run=metadata_labels[LABEL_PREFIX + "run"],
                      scenario=metadata_labels[LABEL_PREFIX + "scenario"],
                      environment=metadata_labels[LABEL_PREFIX + "environment"],
                      step=int(metadata_labels[LABEL_PREFIX + "step"]))
    except (KeyError, ValueError):
        return None


def run_selector(run: str | None) -> str:
    """Label selector for the kit's objects, optionally only one run's."""
    parts = [f"{key}={value}" for key, value in MANAGED_BY.items()]
    if run is not None:
        if len(run) > 63 or not _LABEL_VALUE.match(run):
            raise DriverError(f"run {run!r} is not a valid Kubernetes label value")
        parts.append(f"{LABEL_PREFIX}run={run}")
    return ",".join(parts)


def object_name(labels: Labels, suffix: str) -> str:
    """A DNS-1123 name that says which run and step an object belongs to."""
    run = re.sub(r"[^a-z0-9-]+", "-", labels.run.lower()).strip("-")[:40] or "run"
    return f"gameday-{run}-s{labels.step}-{suffix}"


def selector_string(selector: dict[str, str]) -> str:
    """``{"app": "web"}`` as the API's ``labelSelector`` (``app=web``)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
