"""Reading what the demo's processes wrote to a trace folder since a test began.

The session stack writes spans all session long; a test reads only what its files gained
since it started (each file only grows), so its cost does not grow with the session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gameday.tracing.otlp import SpanRecord, decode
from gameday.tracing.read import PATTERN

T = TypeVar("T")


class TraceTail:
    """The spans a trace folder's files gained since this was made."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets = {path: path.stat().st_size for path in folder.glob(PATTERN)}

    def spans(self) -> list[SpanRecord]:
        """Every span written since; a line cut at either end is skipped."""
        found: list[SpanRecord] = []
        for path in sorted(self.folder.glob(PATTERN)):
            with path.open("rb") as lines:
                lines.seek(self._offsets.get(path, 0))
                data = lines.read()
            for line in data.split(b"\n"):
                try:
                    document = json.loads(line)
                except ValueError:
                    continue
                if isinstance(document, dict):
                    found.extend(decode(document))
        return found

    def wait(self, find: Callable[[list[SpanRecord]], T | None], what: str,
             timeout: float = 90.0) -> T:
        """What ``find`` returns for the spans written so far, once it returns something.

        Spans reach the files within a second of ending; the timeout allows for two shared
        cores under a whole test run."""
        deadline = time.monotonic() + timeout
        while True:
            found = find(self.spans())
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"no {what} in {self.folder} in {timeout:g}s"
            time.sleep(0.5)


def by_trace(spans: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """Spans grouped by trace id."""
    traces: dict[str, list[SpanRecord]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def children(spans: Iterable[SpanRecord], parent: SpanRecord) -> list[SpanRecord]:
    """The direct children of ``parent``."""
    return [span for span in spans if span.parent_id == parent.span_id]


def url_of(span: SpanRecord) -> str:
    """The URL of an HTTP client span, whichever semantic conventions wrote it."""
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


def status_of(span: SpanRecord) -> int | None:
    """The HTTP status of a span, whichever semantic conventions wrote it."""
    status = span.attributes.get("http.response.status_code",
                                 span.attributes.get("http.status_code"))
    return int(status) if isinstance(status, int | str) else None


@dataclass(frozen=True)
class LoadTrace:
    """One load request's trace, from the load generator down to the stores."""

    root: SpanRecord  # loadgen's client span
    server: SpanRecord  # user-service's server span
    auth_call: SpanRecord  # user-service's client span to auth-service (through its proxy)
    auth_server: SpanRecord  # auth-service's server span
    between: tuple[SpanRecord, ...]  # spans between auth_call and auth_server (the proxy's)
    stores: tuple[SpanRecord, ...]  # user-service's Redis and PostgreSQL calls

    @property
    def spans(self) -> tuple[SpanRecord, ...]:
        return (self.root, self.server, self.auth_call, *self.between, self.auth_server,
                *self.stores)


def load_trace(spans: list[SpanRecord], through_proxy: bool = False) -> LoadTrace | None:
    """The first load request whose trace is all there, parent by parent; with
    ``through_proxy``, only one whose auth call went through the proxy's span."""
    for trace in by_trace(spans).values():
        found = _load_trace(trace)
        if found is not None and (found.between or not through_proxy):
            return found
    return None


def _load_trace(trace: list[SpanRecord]) -> LoadTrace | None:
    roots = [span for span in trace if span.service == "loadgen" and span.kind == "client"
             and not span.parent_id]
    for root in roots:
        servers = [span for span in children(trace, root)
                   if span.service == "user-service" and span.kind == "server"]
        for server in servers:
            below = children(trace, server)
            calls = [span for span in below if span.kind == "client" and "/verify" in url_of(span)]
            stores = tuple(span for span in below if span.kind == "client"
                           and span.attributes.get("db.system") in ("redis", "postgresql"))
            for call in calls:
                found = _auth_server(trace, call)
                if found is not None and stores:
                    auth_server, between = found
                    return LoadTrace(root, server, call, auth_server, between, stores)
    return None


def _auth_server(trace: list[SpanRecord], call: SpanRecord,
                 ) -> tuple[SpanRecord, tuple[SpanRecord, ...]] | None:
    """auth-service's server span below ``call``, directly or through proxy spans."""
    for child in children(trace, call):
        if child.service == "auth-service" and child.kind == "server":
            return child, ()
        if child.service != "auth-service":
            deeper = _auth_server(trace, child)
            if deeper is not None:
                return deeper[0], (child, *deeper[1])
    return None
