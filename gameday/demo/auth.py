"""auth-service: checks a user's bearer token.

Tokens are ``<user>.<signature>``, signed with HMAC-SHA256 under a key the demo shares between
the auth-service and the load generator. They exist to give the service real work to do; they
guard nothing and are not secrets (the proxies' admin token is).

Routes: ``GET|POST /verify`` with ``Authorization: Bearer <token>`` (200 ``{"user": id}`` or
401), ``/health``, ``/metrics``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gameday.demo.metrics import ServiceMetrics
from gameday.demo.web import error_response, json_response, service_app

#: Signing key of demo user tokens.
DEMO_KEY = "gameday-demo"


def issue_token(user: str, key: str = DEMO_KEY) -> str:
    """A token for ``user`` that the auth-service accepts."""
    signature = hmac.new(key.encode(), user.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{user}.{signature}"


def check_token(token: str, key: str = DEMO_KEY) -> str | None:
    """The user a valid token belongs to, or None."""
    user = token.rpartition(".")[0]
    if not user or not hmac.compare_digest(issue_token(user, key), token):
        return None
    return user


def auth_app(metrics: ServiceMetrics, work_ms: float = 3.0, key: str = DEMO_KEY) -> Starlette:
    """The auth-service."""

    async def verify(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # The lookup a real service would make (a session store, a key fetch) takes a few ms
        # of waiting, not of CPU: the demo shares two cores with everything else.
        await asyncio.sleep(work_ms / 1000)
        user = check_token(token.strip(), key) if scheme.lower() == "bearer" else None
        if user is None:
            return error_response(401, "invalid or missing bearer token")
        return json_response({"user": user})

    return service_app([Route("/verify", verify, methods=["GET", "POST"])], metrics)
