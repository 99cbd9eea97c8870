"""The demo's pager: where its Alertmanager sends notifications, instead of a phone.

Each webhook notification is appended as one JSON line to ``pages.jsonl`` in the stack's
folder, so ``chaosctl demo pages`` (and tests) can tell what on-call would have been paged
with, and what a game day's silence kept from them. It listens on 127.0.0.1 only, reads at
most :data:`MAX_BODY` of a request and answers what it cannot read with 4xx.

Routes: ``POST /notify`` (Alertmanager's webhook), ``GET /pages``, ``GET /health``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gameday.demo.alertmanager import PAGES_FILE

#: Largest notification kept: Alertmanager's are a few KB; a bigger body is not one of them.
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class PagedAlert:
    """One alert of a notification."""

    alertname: str
    status: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Page:
    """One notification as the pager received it."""

    receiver: str
    status: str
    alerts: tuple[PagedAlert, ...]
    at: float


def _page(data: Any, at: float) -> Page | None:
    if not isinstance(data, dict):
        return None
    alerts = []
    for item in data.get("alerts") or []:
        if isinstance(item, dict) and isinstance(item.get("labels"), dict):
            labels = {str(k): str(v) for k, v in item["labels"].items()}
            alerts.append(PagedAlert(labels.get("alertname", ""), str(item.get("status", "")),
                                     labels))
    return Page(str(data.get("receiver", "")), str(data.get("status", "")), tuple(alerts), at)


def read_pages(folder: Path) -> list[Page]:
    """Every notification recorded in ``folder`` (a torn last line is skipped)."""
    path = Path(folder) / PAGES_FILE
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        page = _page(record.get("body"), float(record.get("at", 0))) if isinstance(
            record, dict) else None
        if page is not None:
            found.append(page)
    return found


async def _body(request: Request) -> bytes | None:
    """The request's body, or None past :data:`MAX_BODY` (read no further)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def pager_app(record: Path) -> Starlette:
    """The pager, appending each notification to ``record``."""
    record.parent.mkdir(parents=True, exist_ok=True)

    async def notify(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await _body(request)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(data, dict):
            return JSONResponse({"error": "not a notification"}, status_code=400)
        line = json.dumps({"at": time.time(), "body": data}, separators=(",", ":"))
        with record.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
        return JSONResponse({"ok": True})

    async def pages(request: Request) -> Response:
        found = [{"at": p.at, "receiver": p.receiver, "status": p.status,
                  "alerts": [{"alertname": a.alertname, "status": a.status, "labels": a.labels}
                             for a in p.alerts]} for p in read_pages(record.parent)]
        return JSONResponse(found)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/notify", notify, methods=["POST"]),
                             Route("/pages", pages, methods=["GET"]),
                             Route("/health", health, methods=["GET"])])
