"""Exemplars of the latency histogram, from Prometheus' ``/api/v1/query_exemplars``.

prometheus-api-client has no exemplar query, so this asks with httpx, authenticated as the
guards are (the same token, or the credentials in the URL). Every window is asked once; a
failure becomes the window's reason for having no exemplars, never an exception: the report
is written without them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from gameday.errors import GameDayError
from gameday.models import PrometheusSettings
from gameday.report.links import without_credentials
from gameday.report.trace_parts import Exemplar

#: Exemplar labels that carry the trace id, as instrumentations name it.
TRACE_LABELS = ("trace_id", "traceID", "traceId", "trace.id", "TraceID")
#: Seconds per query, at least (the exemplar store is scanned, as range queries are).
QUERY_TIMEOUT = 15.0


def _scale(metric: str) -> float:
    """Milliseconds per unit of a histogram named ``metric``: Prometheus' base unit is the
    second; a histogram named in milliseconds is already in them."""
    return 1.0 if metric.endswith(("_ms_bucket", "_milliseconds_bucket")) else 1000.0


def parse_exemplars(body: object) -> list[Exemplar]:
    """The exemplars of a ``query_exemplars`` answer that name a trace; ``ValueError`` when
    the answer is not a successful one.

    The documented shape: ``{"status": "success", "data": [{"seriesLabels": {...},
    "exemplars": [{"labels": {"trace_id": "..."}, "value": "0.25", "timestamp": 1.6e9}]}]}``.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"not a JSON object: {str(body)[:120]}")
    if body.get("status") != "success":
        raise ValueError(str(body.get("error") or body.get("status") or "no status")[:200])
    data = body.get("data") or []
    if not isinstance(data, list):
        raise ValueError(f"data is not a list: {str(data)[:120]}")
    found = []
    for series in data:
        if not isinstance(series, Mapping):
            continue
        scale = _scale(str((series.get("seriesLabels") or {}).get("__name__", "")))
        for item in series.get("exemplars") or ():
            try:
                labels: Mapping[str, Any] = item.get("labels") or {}
                trace_id = next((str(labels[k]) for k in TRACE_LABELS if labels.get(k)), "")
                value = float(item["value"]) * scale
                at = float(item["timestamp"])
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
            if trace_id and math.isfinite(value):
                found.append(Exemplar(trace_id=trace_id.lower(), value_ms=value, at=at))
    return found


def _headers(settings: PrometheusSettings) -> dict[str, str]:
    """The headers the guards send, built by the guards' own client (a token that is not set
    raises ``ConfigError`` there, in the guards' words)."""
    from gameday.guards.prometheus import Prometheus

    with Prometheus.from_settings(settings) as prometheus:
        return prometheus.headers


async def fetch_exemplars(settings: PrometheusSettings, selector: str,
                          windows: Sequence[tuple[float, float]]
                          ) -> list[list[Exemplar] | str]:
    """For each ``(start, end)`` window, the exemplars of ``selector`` or why there are none.

    The URL's credentials (``user:password@``) go to httpx as basic auth; messages name the
    URL without them and never carry the headers.
    """
    url = without_credentials(settings.url)
    try:
        headers = _headers(settings)
    except GameDayError as exc:  # a token that is not set: every window says so
        return [str(exc)] * len(windows)
    timeout = httpx.Timeout(max(settings.timeout, QUERY_TIMEOUT))
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:

        async def one(start: float, end: float) -> list[Exemplar] | str:
            params = {"query": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"}
            try:
                answer = await client.get(f"{settings.url.rstrip('/')}/api/v1/query_exemplars",
                                          params=params)
            except httpx.HTTPError as exc:
                return f"Prometheus at {url} did not answer the exemplar query " \
                       f"({type(exc).__name__})"
            if answer.status_code == 404:
                return f"Prometheus at {url} has no exemplar API (/api/v1/query_exemplars)"
            try:
                return parse_exemplars(answer.json())
            except ValueError as exc:
                return f"Prometheus at {url} refused the exemplar query " \
                       f"(HTTP {answer.status_code}: {exc})"

        return list(await asyncio.gather(*(one(start, end) for start, end in windows)))
