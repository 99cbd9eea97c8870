"""The demo's pager: it records Alertmanager's notifications, and answers hostile input with
4xx without growing or falling over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from gameday.demo import alertmanager, prometheus
from gameday.demo.pager import MAX_BODY, PAGES_FILE, pager_app, read_pages
from gameday.demo.prometheus import ScrapeTarget


class Client:
    """Requests to the pager app in this process (through httpx's ASGI transport)."""

    def __init__(self, record: Path) -> None:
        self.app = pager_app(record)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://pager") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(go())

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._send("POST", path, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return self._send("GET", path)


NOTIFICATION = {"receiver": "pager", "status": "firing", "alerts": [
    {"status": "firing", "labels": {"alertname": "AuthServiceRejecting", "severity": "page"}}]}


def test_a_notification_is_recorded_and_read_back(tmp_path: Path) -> None:
    client = Client(tmp_path / PAGES_FILE)
    assert client.post("/notify", json=NOTIFICATION).status_code == 200
    (page,) = read_pages(tmp_path)
    assert (page.receiver, page.status) == ("pager", "firing")
    assert [(a.alertname, a.labels["severity"]) for a in page.alerts] == [
        ("AuthServiceRejecting", "page")]
    listed = client.get("/pages").json()
    assert listed[0]["alerts"][0]["alertname"] == "AuthServiceRejecting"


def test_hostile_bodies_get_4xx_and_nothing_is_recorded(tmp_path: Path) -> None:
    client = Client(tmp_path / PAGES_FILE)
    assert client.post("/notify", content=b"{not json").status_code == 400
    assert client.post("/notify", content=b"\xff\xfe").status_code == 400
    assert client.post("/notify", json=[1, 2]).status_code == 400
    assert client.post("/notify", content=b"x" * (MAX_BODY + 1)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: it stops reading
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    assert client.post("/notify", content=chunks()).status_code == 413
    assert read_pages(tmp_path) == []
    assert client.get("/health").status_code == 200


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    line = json.dumps({"at": 1.0, "body": NOTIFICATION})
    (tmp_path / PAGES_FILE).write_text(line + "\n" + line[:20])
    assert len(read_pages(tmp_path)) == 1


def test_alertmanager_routes_everything_to_the_pager_quickly() -> None:
    config = alertmanager.config("http://127.0.0.1:1")
    assert config["receivers"][0]["webhook_configs"] == [
        {"url": "http://127.0.0.1:1/notify", "send_resolved": True}]
    assert config["route"]["group_wait"] == "1s"
    argv = alertmanager.argv(Path("/c.yml"), Path("/s"), 9)
    assert "--web.listen-address=127.0.0.1:9" in argv and "--cluster.listen-address=" in argv


def test_prometheus_sends_its_alerts_labelled_with_the_environment(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    config = prometheus.config([ScrapeTarget("x", 1)], rules, tmp_path / "t", 9093)
    assert config["global"]["external_labels"] == {"environment": "demo"}
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [
        {"targets": ["127.0.0.1:9093"]}]
    assert config["rule_files"] == [str(rules), str(tmp_path / "demo-alerts.yml")]
