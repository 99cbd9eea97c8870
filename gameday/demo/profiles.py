"""profile-store: user profiles over HTTP, kept in SQLite.

``GET /profiles/{id}`` reads one profile, ``PUT /profiles/{id}`` writes one. The database is
seeded with ``users`` profiles at start. Queries run on the event loop: an indexed SQLite
lookup takes microseconds, less than handing it to a thread would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gameday.demo.http import Handler, Request, Response, error_response, json_response
from gameday.demo.metrics import ServiceMetrics

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    plan TEXT NOT NULL
)
"""
_PLANS = ("free", "team", "enterprise")


def open_store(path: Path | str, users: int) -> sqlite3.Connection:
    """The profile database at ``path`` with at least ``users`` seeded profiles."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(_SCHEMA)
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR IGNORE INTO profiles (id, name, email, plan) VALUES (?, ?, ?, ?)",
        ((str(n), f"User {n}", f"user{n}@example.test", _PLANS[n % len(_PLANS)])
         for n in range(1, users + 1)),
    )
    db.execute("COMMIT")
    return db


def _row(row: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(("id", "name", "email", "plan"), row, strict=True))


def profile_handler(metrics: ServiceMetrics, db: sqlite3.Connection) -> Handler:
    """The profile-store's routes."""

    def read(profile_id: str) -> Response:
        row = db.execute("SELECT id, name, email, plan FROM profiles WHERE id = ?",
                         (profile_id,)).fetchone()
        if row is None:
            return error_response(404, f"no profile {profile_id!r}")
        return json_response(_row(row))

    def write(profile_id: str, request: Request) -> Response:
        try:
            data = request.json()
            fields = (str(data["name"]), str(data["email"]), str(data.get("plan", "free")))
        except (ValueError, KeyError, TypeError):
            return error_response(400, 'body must be JSON with "name" and "email"')
        db.execute("INSERT OR REPLACE INTO profiles (id, name, email, plan) VALUES (?, ?, ?, ?)",
                   (profile_id, *fields))
        return json_response(_row((profile_id, *fields)))

    async def handler(request: Request) -> Response:
        if request.path == "/health":
            return json_response({"status": "ok"})
        prefix, _, profile_id = request.path.rpartition("/")
        if prefix != "/profiles" or not profile_id:
            return error_response(404, "not found")
        if request.method in ("GET", "HEAD"):
            return read(profile_id)
        if request.method == "PUT":
            return write(profile_id, request)
        return Response(405, json.dumps({"error": "use GET or PUT"}).encode(),
                        headers=(("Allow", "GET, PUT"),))

    return metrics.instrument(handler)
