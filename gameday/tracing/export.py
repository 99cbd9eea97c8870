"""Getting spans out of the process without ever slowing what is traced.

:class:`BoundedProcessor` takes finished spans into a bounded queue (an append; a full queue
drops the span and counts it) and a daemon thread exports them at least every
``FLUSH_SECONDS``, and at exit. The sinks write OTLP JSON: :class:`FileSink` one line per batch
into this process's own file, in a folder capped in size; :class:`HttpSink` a POST to an OTLP/
HTTP collector with a short timeout and no retry, so an unreachable collector costs dropped
spans, never a delayed request, guard or rollback.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gameday.tracing.otlp import encode

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

FLUSH_SECONDS = 0.5
MAX_QUEUE = 8192
MAX_BATCH = 1024
#: The trace folder's default cap, all processes' files together.
DEFAULT_FOLDER_MB = 256
HTTP_TIMEOUT = 2.0


class Sink(Protocol):
    def write(self, document: dict[str, object]) -> None:
        """Send one OTLP JSON document; raise ``OSError`` when it could not be sent."""


class FileSink:
    """OTLP JSON lines in ``folder/<service>-<pid>.otlp.jsonl``; nothing is written once the
    folder holds ``max_mb`` (the spans are dropped and counted instead)."""

    def __init__(self, folder: Path, service: str, max_mb: float = DEFAULT_FOLDER_MB) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / f"{service}-{os.getpid()}.otlp.jsonl"
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._size = 0
        self._measured = 0.0

    def write(self, document: dict[str, object]) -> None:
        line = (json.dumps(document, separators=(",", ":")) + "\n").encode()
        if self._folder_size() + len(line) > self.max_bytes:
            raise OSError(f"the trace folder {self.folder} is full ({self.max_bytes} bytes)")
        with open(self.path, "ab") as out:
            out.write(line)
        self._size += len(line)

    def _folder_size(self) -> int:
        # Other processes write beside us: measure the folder now and then, add ours between.
        now = time.monotonic()
        if now - self._measured > 5:
            self._measured = now
            total = 0
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.is_file():
                        total += entry.stat().st_size
            self._size = total
        return self._size


class HttpSink:
    """POST to an OTLP/HTTP collector (``…/v1/traces``, JSON encoding)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        import httpx  # a core dependency; imported here so the module stays light

        self.url = url
        self._client = httpx.Client(timeout=HTTP_TIMEOUT, headers=headers or {})
        self._errors: tuple[type[Exception], ...] = (httpx.HTTPError,)

    def write(self, document: dict[str, object]) -> None:
        try:
            response = self._client.post(self.url, json=document)
        except self._errors as exc:
            raise OSError(f"the OTLP endpoint did not take the spans: {exc}") from exc
        if response.status_code >= 300:
            raise OSError(f"the OTLP endpoint answered {response.status_code}")


class BoundedProcessor:
    """A span processor (the SDK's interface) that never blocks the traced code."""

    def __init__(self, sinks: Sequence[Sink], on_drop: Callable[[int], None] | None = None,
                 max_queue: int = MAX_QUEUE, interval: float = FLUSH_SECONDS) -> None:
        self.sinks = list(sinks)
        self.on_drop = on_drop
        self.max_queue = max_queue
        self.interval = interval
        self.dropped = 0
        self.exported = 0
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()  # one export at a time: the thread's, or a flush's
        self._thread = threading.Thread(target=self._run, name="gameday-spans", daemon=True)
        self._thread.start()

    # --- the SDK's SpanProcessor interface ------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped or len(self._queue) >= self.max_queue:
            self._drop(1)
            return
        self._queue.append(span)  # atomic in CPython: no lock on the traced path

    def _on_ending(self, span: Span) -> None:
        pass

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._export_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._export_all()
        return True

    # --- the export thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._export_all()

    def _export_all(self) -> None:
        with self._lock:
            while self._queue:
                batch: list[ReadableSpan] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                document = encode(batch)
                for sink in self.sinks:
                    try:
                        sink.write(document)
                        self.exported += len(batch)
                    except (OSError, ValueError):
                        self._drop(len(batch))  # per destination that did not get them

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)
