"""The proxy's admin API: JSON over HTTP/1.1 on its own port (asyncio streams).

====================  =======================================================================
``GET /health``       200 ``{"status": "ok", "mode": "http"|"tcp", "rules": n, "upstream": ...,
                      "target": ...}``
``GET /rules``        ``{"rules": [rule, ...]}``; ``?run=X`` lists one run's rules only
``PUT /rules``        body ``{"rules": [input, ...]}``: atomic replace (all valid, or none
                      applied); 200 ``{"rules": [rule, ...]}``
``POST /rules``       body one rule input: 201 with the stored rule; 409 if the id exists
``DELETE /rules/ID``  200 ``{"removed": 1}``; 404 when there is no such rule
``DELETE /rules``     ``?run=X`` (required): 200 ``{"removed": n}``
``POST /leases``      body ``{"run": X, "ids"?: [id, ...]}``: renew the leases of the run's
                      rules (the listed ones); 200 ``{"renewed": {id: lease_until}}``; 410
                      with ``"gone": [{"id", "reason"}]`` when a listed rule (or, with no
                      ``ids``, every rule of the run) is gone: a lapsed lease never comes back
``GET /metrics``      Prometheus text
``GET /openapi.json`` OpenAPI 3.1 description of all of the above
====================  =======================================================================

A rule input is ``{"id"?: str, "fault": {"kind": ..., ...}, "labels": {"run", "scenario",
"environment", "step"}, "target"?: str, "ttl": seconds | "expires_at": epoch seconds}``; a
stored rule has ``id``, ``fault``, ``labels``, ``target`` and ``expires_at``. An input may
add ``"lease": seconds``: the rule then also ends once no ``POST /leases`` renewed it for that
long (a run that died or froze), which the proxy's own timer enforces. Invalid input is
answered 400 with ``{"error": ..., "field": "rules.0.fault.ms", "problems": [...]}`` and
changes nothing. With a token configured, ``/rules`` needs ``Authorization: Bearer TOKEN``
(401 otherwise); ``/health``, ``/metrics`` and ``/openapi.json`` stay open.

Both proxy modes serve this API; the :class:`~gameday.injector.rules.RuleFormat` it is given
says which rules it takes (HTTP faults, or TCP faults) and ``/openapi.json`` describes those.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from gameday import __version__
from gameday.injector.proxy.http1 import Head, ParseError, parse_request
from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.openapi import openapi_document
from gameday.injector.proxy.store import RuleStore, log_event
from gameday.injector.rules import (
    RuleFormat,
    RuleProblem,
    StoredRule,
    problems_of,
    rule_json,
)
from gameday.records import Labels

MAX_BODY = 1024 * 1024
#: Most rule ids one renewal may name (a run has a handful of faults per proxy).
MAX_RENEW_IDS = 1024
_RUN_PATTERN = re.compile(Labels.model_fields["run"].metadata[-1].pattern)
_IDLE = 60.0
_JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One admin response."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(data).encode(), headers=headers)


def _invalid(problems: list[RuleProblem]) -> Reply:
    first = problems[0]
    return _json(400, {"error": str(first), "field": first.field,
                       "problems": [{"field": p.field, "message": p.message} for p in problems]})


class AdminAPI(Generic[StoredRule]):
    """Routes admin requests to the rule store; auth, validation and limits live here."""

    def __init__(self, store: RuleStore[StoredRule], metrics: ProxyMetrics, *,
                 rules: RuleFormat[StoredRule], token: str | None, max_ttl: float, target: str,
                 upstream: str) -> None:
        self.store = store
        self.format = rules
        self.metrics = metrics
        self._token = token.encode() if token else None
        self.max_ttl = max_ttl
        self.target = target
        self.upstream = upstream
        self.started = time.time()
        self._openapi = json.dumps(openapi_document(max_ttl, rules)).encode()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one admin connection (keep-alive) until it closes or idles out."""
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IDLE)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                        ConnectionError):
                    return
                try:
                    head = parse_request(raw)
                except ParseError as exc:
                    await self._send(writer, _json(exc.status, {"error": str(exc)}), False)
                    return
                if head.chunked:
                    await self._send(writer, _json(411, {"error": "send a Content-Length"}), False)
                    return
                length = head.length or 0
                if length > MAX_BODY:
                    await self._send(writer, _json(413, {"error": "body too large"}), False)
                    return
                try:
                    body = await asyncio.wait_for(reader.readexactly(length), _IDLE) if length \
                        else b""
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                try:
                    reply = self.handle(head, body)
                except Exception as exc:
                    # A bug here must cost one answer, not the connection without a reply.
                    log_event("admin_error", error=repr(exc)[:500])
                    reply = _json(500, {"error": "internal error; the proxy's log has it"})
                await self._send(writer, reply, head.keep_alive)
                if not head.keep_alive:
                    return
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply, keep: bool) -> None:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Status"
        lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Content-Type: {reply.content_type}",
                 f"Content-Length: {len(reply.body)}", *(f"{k}: {v}" for k, v in
                                                        reply.headers.items())]
        if not keep:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    # -- routing --------------------------------------------------------------------------------

    def handle(self, head: Head, body: bytes) -> Reply:
        """Answer one request."""
        url = urlsplit(head.target.decode("latin-1"))
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        method = head.method.decode("latin-1")
        if path == "/health":
            return self._only(method, "GET") or self._health()
        if path == "/metrics":
            return self._only(method, "GET") or Reply(200, self.metrics.render(),
                                                      CONTENT_TYPE_LATEST)
        if path == "/openapi.json":
            return self._only(method, "GET") or Reply(200, self._openapi)
        if path in ("/rules", "/leases") or path.startswith("/rules/"):
            if not self._authorized(head):
                return _json(401, {"error": "missing or wrong bearer token"},
                             **{"WWW-Authenticate": 'Bearer realm="gameday-proxy"'})
            if path == "/rules":
                return self._rules(method, query, body)
            if path == "/leases":
                return self._only(method, "POST") or self._renew(body)
            rule_id = unquote(path[len("/rules/"):])
            return self._only(method, "DELETE") or self._delete_one(rule_id)
        return _json(404, {"error": f"no such path: {path}"})

    @staticmethod
    def _only(method: str, *allowed: str) -> Reply | None:
        if method in allowed:
            return None
        return _json(405, {"error": f"method {method} not allowed"}, Allow=", ".join(allowed))

    def _authorized(self, head: Head) -> bool:
        if self._token is None:
            return True
        given = head.header(b"authorization") or b""
        scheme, _, credentials = given.partition(b" ")
        # compare_digest takes the same time whatever the mismatch, so timing reveals nothing.
        ok = hmac.compare_digest(credentials.strip(), self._token)
        return scheme.lower() == b"bearer" and ok

    def _rules(self, method: str, query: dict[str, str], body: bytes) -> Reply:
        if method == "GET":
            return _json(200, {"rules": [rule_json(r) for r in self.store.rules(query.get("run"))]})
        if method == "PUT":
            return self._replace(body)
        if method == "POST":
            return self._add(body)
        if method == "DELETE":
            run = query.get("run")
            if not run:
                return _json(400, {"error": "run: give ?run=RUN (PUT an empty list to clear all)",
                                   "field": "run"})
            return _json(200, {"removed": self.store.remove_run(run)})
        return _json(405, {"error": f"method {method} not allowed"},
                     Allow="GET, PUT, POST, DELETE")

    def _health(self) -> Reply:
        return _json(200, {"status": "ok", "mode": self.format.protocol,
                           "rules": len(self.store.snapshot),
                           "upstream": self.upstream, "target": self.target,
                           "max_ttl": self.max_ttl, "version": __version__,
                           "uptime_s": round(time.time() - self.started, 3)})

    def _delete_one(self, rule_id: str) -> Reply:
        if self.store.remove(rule_id):
            return _json(200, {"removed": 1})
        return _json(404, {"error": f"no rule with id {rule_id!r}"})

    def _renew(self, body: bytes) -> Reply:
        data, error = self._parse_body(body)
        if error:
            return error
        if not isinstance(data, dict) or not set(data) <= {"run", "ids"} or "run" not in data:
            return _invalid([RuleProblem("body", 'expected {"run": RUN, "ids"?: [id, ...]}')])
        run, ids = data["run"], data.get("ids")
        if not isinstance(run, str) or not _RUN_PATTERN.fullmatch(run) or len(run) > 63:
            return _invalid([RuleProblem("run", "a run id: letters, digits, . _ -, at most "
                                                "63 characters")])
        if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_RENEW_IDS or
                                not all(isinstance(i, str) and len(i) <= 64 for i in ids)):
            return _invalid([RuleProblem("ids", f"a list of at most {MAX_RENEW_IDS} rule ids")])
        renewal = self.store.renew(run, ids)
        gone = [{"id": rule_id, "reason": reason} for rule_id, reason in renewal.gone.items()]
        if gone or not (renewal.renewed or ids or self.store.rules(run)):
            return _json(410, {"error": f"run {run}: " + (
                ", ".join(f"{g['id']} {g['reason']}" for g in gone) or "no rule to renew"),
                "gone": gone, "renewed": renewal.renewed})
        return _json(200, {"renewed": renewal.renewed})

    # -- validation -----------------------------------------------------------------------------

    def _parse_body(self, body: bytes) -> tuple[Any, Reply | None]:
        try:
            return json.loads(body), None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, _invalid([RuleProblem("body", f"not valid JSON: {exc}")])

    def _build(self, data: Any, prefix: tuple[str | int, ...], now: float
               ) -> tuple[StoredRule | None, list[RuleProblem]]:
        try:
            item = self.format.input.model_validate(data)
        except ValidationError as exc:
            return None, problems_of(exc, prefix)
        where = ".".join(str(part) for part in prefix)
        dotted = f"{where}." if where else ""
        if item.target and self.target and item.target != self.target:
            return None, [RuleProblem(f"{dotted}target", f"this proxy serves target "
                                                        f"{self.target!r}, not {item.target!r}")]
        if not item.target:
            item = item.model_copy(update={"target": None})
        try:
            rule = self.format.build(item, now, max_ttl=self.max_ttl,
                                     default_target=self.target)
        except RuleProblem as problem:
            return None, [RuleProblem(f"{dotted}{problem.field}", problem.message)]
        return rule, []

    def _replace(self, body: bytes) -> Reply:
        data, error = self._parse_body(body)
        if error:
            return error
        if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(
                data["rules"], list):
            return _invalid([RuleProblem("rules", 'expected {"rules": [rule, ...]}')])
        now = time.time()
        rules: list[StoredRule] = []
        problems: list[RuleProblem] = []
        seen: set[str] = set()
        for index, item in enumerate(data["rules"]):
            rule, found = self._build(item, ("rules", index), now)
            problems.extend(found)
            if rule is not None:
                if rule.id in seen:
                    problems.append(RuleProblem(f"rules.{index}.id", f"duplicate id {rule.id!r}"))
                seen.add(rule.id)
                rules.append(rule)
        if problems:
            return _invalid(problems)
        self.store.replace(rules)
        return _json(200, {"rules": [rule_json(r) for r in rules]})

    def _add(self, body: bytes) -> Reply:
        data, error = self._parse_body(body)
        if error:
            return error
        rule, problems = self._build(data, (), time.time())
        if problems or rule is None:
            return _invalid(problems)
        if self.store.get(rule.id) is not None:
            return _json(409, {"error": f"id: a rule with id {rule.id!r} exists", "field": "id"})
        self.store.add(rule)
        return _json(201, rule_json(rule))
