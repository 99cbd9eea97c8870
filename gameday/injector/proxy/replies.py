"""Responses the proxy writes itself: injected aborts, 502 for an unreachable upstream, 4xx."""

from __future__ import annotations

import json
from http import HTTPStatus

from gameday.injector.decide import Decision, fault_headers


def status_line(status: int) -> bytes:
    """``HTTP/1.1 503 Service Unavailable`` (a generic phrase for codes without a name)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"HTTP/1.1 {status} {phrase}".encode()


def header_lines(pairs: list[tuple[str, str]]) -> list[bytes]:
    """Header lines from name/value pairs."""
    return [f"{name}: {value}".encode("latin-1") for name, value in pairs]


def fault_lines(decision: Decision) -> list[bytes]:
    """The chaos marker header lines for a decision (none when no rule fired)."""
    return header_lines(fault_headers(decision)) if decision.rules else []


def json_reply(status: int, data: object, extra: list[bytes] | None = None,
               close: bool = False, head_only: bool = False) -> bytes:
    """A complete response with a JSON body (the head alone, for a ``HEAD`` request: a body
    there would be read as the next response on a kept-alive connection)."""
    body = json.dumps(data).encode()
    lines = [status_line(status), b"Content-Type: application/json",
             b"Content-Length: %d" % len(body), *(extra or [])]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)


def abort_body(decision: Decision) -> dict[str, object]:
    """What an injected abort answers."""
    rule = decision.rules[-1]
    return {"error": "fault injected", "fault": "abort", "status": decision.status,
            "rule": rule.id, "scenario": rule.labels.scenario}
