"""A local fake of Slack: ``chat.postMessage`` of the Web API and one incoming webhook.

Served over HTTP on 127.0.0.1 from a thread, so slack_sdk's real clients talk to it::

    with FakeSlack(token="xoxb-test") as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        slack.fail(429, retry_after=1)      # the next request is rate limited
        slack.hang()                        # requests get no answer until release()

It checks what Slack checks and a little more: the bearer token (``not_authed``,
``invalid_auth``), the payload's shape (a channel, a fallback ``text``, Block Kit blocks within
Slack's limits) and ``thread_ts`` (it must name a parent message of the same channel; a reply
cannot be a parent). Accepted messages are kept in ``messages``; every request body, accepted
or not, is kept in ``bodies`` so a test can look for secrets in what left the process.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.server import LoopbackServer

CHANNEL_ID = "C0GAMEDAY"
WEBHOOK_PATH = "/services/T0GAMEDAY/B0GAMEDAY/webhooksecretpart0001"
_BLOCK_TYPES = {"section", "header", "context", "divider", "actions", "image", "rich_text"}
_TEXT_TYPES = {"mrkdwn", "plain_text"}


@dataclass(frozen=True)
class Posted:
    """One message Slack accepted."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    via: str = "api"
    at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    status: int
    retry_after: float | None


class FakeSlack:
    """The fake and its state; tests read ``messages``, ``problems``, ``attempts``, ``bodies``."""

    def __init__(self, token: str = "xoxb-fake-token", channel: str = "#gameday") -> None:
        self.token, self.channel = token, channel
        self.messages: list[Posted] = []
        #: Why requests were refused (bad shape, bad token, unknown thread).
        self.problems: list[str] = []
        #: (time, path, status) of every request, answered or failed on purpose.
        self.attempts: list[tuple[float, str, int]] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._failures: list[_Failure] = []
        self._hanging = threading.Event()
        self._released = threading.Event()
        self._ts = itertools.count(1)
        self._lock = threading.RLock()
        self._server = LoopbackServer()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Serve on a free port of 127.0.0.1 from a daemon thread."""
        self._server.start(_Handler, self, "fake-slack")
        return self

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self.release()
        self._server.stop()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the fake."""
        return self._server.url

    @property
    def api_url(self) -> str:
        """The Web API base, as slack_sdk's ``base_url`` wants it."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL (which is its secret)."""
        return f"{self.url}{WEBHOOK_PATH}"

    # --- behaviour ----------------------------------------------------------------------------

    def fail(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (429 sends ``Retry-After``)."""
        with self._lock:
            self._failures += [_Failure(status, retry_after) for _ in range(times)]

    def hang(self) -> None:
        """Give no answer to any request until ``release()``."""
        self._released.clear()
        self._hanging.set()

    def release(self) -> None:
        """Answer again; requests held so far get a 503 (their clients gave up long ago)."""
        self._hanging.clear()
        self._released.set()

    # --- reading ------------------------------------------------------------------------------

    def parents(self) -> list[Posted]:
        """Messages that are not replies."""
        return [m for m in self.messages if m.thread_ts is None]

    def thread(self, parent: Posted) -> list[Posted]:
        """Replies to ``parent``, in the order they arrived."""
        return [m for m in self.messages if m.thread_ts == parent.ts]

    # --- serving ------------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], raw: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        """One request: status, extra headers and body."""
        with self._lock:
            self.bodies.append(raw)
            self.headers.append(headers)
            failure = self._failures.pop(0) if self._failures else None
        if self._hanging.is_set():
            self._released.wait(300)
            self._attempt(path, 503)
            return 503, {}, b"released"
        if failure is not None:
            self._attempt(path, failure.status)
            extra = {} if failure.retry_after is None else {
                "Retry-After": f"{failure.retry_after:g}"}
            if failure.status == 429:
                return 429, extra, json.dumps({"ok": False, "error": "ratelimited"}).encode()
            return failure.status, extra, b"fake failure"
        if path == "/api/chat.postMessage":
            status, answer = 200, self._post_message(headers, raw)
            self._attempt(path, status)
            return status, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        if path == WEBHOOK_PATH:
            status, text = self._webhook(raw)
            self._attempt(path, status)
            return status, {"Content-Type": "text/plain"}, text.encode()
        self._attempt(path, 404)
        return 404, {}, b"no_service"

    def _attempt(self, path: str, status: int) -> None:
        with self._lock:
            self.attempts.append((time.time(), path, status))

    def _refuse(self, error: str, detail: str) -> dict[str, Any]:
        with self._lock:
            self.problems.append(f"{error}: {detail}")
        return {"ok": False, "error": error}

    def _post_message(self, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self._refuse("not_authed", "no bearer token")
        if auth.removeprefix("Bearer ") != self.token:
            return self._refuse("invalid_auth", "wrong token")
        try:
            body = _body(headers, raw)
        except ValueError as exc:
            return self._refuse("invalid_arguments", str(exc))
        channel = body.get("channel")
        if channel not in {self.channel, CHANNEL_ID}:
            return self._refuse("channel_not_found", repr(channel))
        problems = message_problems(body)
        thread_ts = body.get("thread_ts")
        with self._lock:
            if thread_ts is not None and not any(
                    m.ts == thread_ts and m.thread_ts is None for m in self.messages):
                problems.append(f"thread_ts {thread_ts!r} names no parent message")
            if body.get("reply_broadcast") and thread_ts is None:
                problems.append("reply_broadcast without thread_ts")
            if problems:
                return self._refuse("invalid_blocks", "; ".join(problems))
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            self.messages.append(Posted(CHANNEL_ID, ts, body["text"], body.get("blocks") or [],
                                        thread_ts, bool(body.get("reply_broadcast"))))
        return {"ok": True, "channel": CHANNEL_ID, "ts": ts,
                "message": {"text": body["text"], "ts": ts}}

    def _webhook(self, raw: bytes) -> tuple[int, str]:
        try:
            body = json.loads(raw)
        except ValueError:
            self._refuse("invalid_payload", "not JSON")
            return 400, "invalid_payload"
        problems = message_problems(body, needs_channel=False)
        if problems:
            self._refuse("invalid_blocks", "; ".join(problems))
            return 400, "invalid_blocks"
        with self._lock:
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            self.messages.append(Posted(CHANNEL_ID, ts, body["text"], body.get("blocks") or [],
                                        via="webhook"))
        return 200, "ok"


def _body(headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    kind = headers.get("content-type", "")
    if kind.startswith("application/json"):
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the JSON body is not an object")
        return data
    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    if "blocks" in form:
        form["blocks"] = json.loads(form["blocks"])
    return form


def _text_problems(where: str, obj: Any, limit: int, types: set[str] = _TEXT_TYPES
                   ) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in types:
        return [f"{where}: a text object of type {sorted(types)} is needed"]
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return [f"{where}: empty text"]
    return [f"{where}: {len(text)} characters, more than {limit}"] if len(text) > limit else []


def message_problems(body: dict[str, Any], needs_channel: bool = True) -> list[str]:
    """What Slack would reject (or render badly) in a message payload."""
    problems = []
    if needs_channel and not body.get("channel"):
        problems.append("no channel")
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        problems.append("no fallback text (notifications and screen readers show it)")
    blocks = body.get("blocks") or []
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*problems, "blocks must be a list of at most 50"]
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"blocks[{i}] ({kind})"
        if kind not in _BLOCK_TYPES:
            problems.append(f"{where}: unknown block type")
        elif kind == "header":
            problems += _text_problems(where, block.get("text"), 150, {"plain_text"})
        elif kind == "section":
            fields = block.get("fields")
            if "text" not in block and not fields:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                problems += _text_problems(where, block["text"], 3000)
            if fields is not None:
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{where}: 1 to 10 fields")
                else:
                    for j, item in enumerate(fields):
                        problems += _text_problems(f"{where}.fields[{j}]", item, 2000)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}: 1 to 10 elements")
            else:
                for j, item in enumerate(elements):
                    problems += _text_problems(f"{where}.elements[{j}]", item, 3000)
    return problems


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        """Serve one request; a client that gave up (hang, timeout) is not an error here."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, body = self.fake.handle(urlparse(self.path).path, headers, raw)
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read the fake's state, not its log."""
