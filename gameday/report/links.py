"""Links a postmortem carries: Prometheus graphs of its queries, the Prefect run (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit


def without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part: a report must not carry it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)).rstrip("/")


def graph_link(prometheus_url: str, queries: Sequence[str], start: float, end: float) -> str:
    """A Prometheus graph page showing ``queries`` (one panel each) from ``start`` to ``end``.

    Uses the ``g0.expr`` parameters of the ``/graph`` page, which Prometheus 2 serves and
    Prometheus 3 redirects to its query page with the same parameters.
    """
    seconds = max(1, round(end - start))
    until = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M:%S")
    params: list[tuple[str, str]] = []
    for index, query in enumerate(queries):
        panel = f"g{index}"
        params += [(f"{panel}.expr", query), (f"{panel}.tab", "0"),
                   (f"{panel}.range_input", f"{seconds}s"), (f"{panel}.end_input", until)]
    return f"{without_credentials(prometheus_url)}/graph?{urlencode(params)}"


def flow_run_link(prefect_api_url: str, run: str) -> str:
    """The Prefect UI page of flow run ``run``, from the server's API URL."""
    base = without_credentials(prefect_api_url).removesuffix("/api")
    return f"{base}/flow-runs/flow-run/{run}"
