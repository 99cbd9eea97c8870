"""The fault as the proxy sees it: its rule list, polled every 50 ms from a thread of its own.

Both tools are timed by this one poller, so "fault gone" means the same for both: the first
answer of ``GET /rules`` that no longer lists the rule. It runs in its own thread with a
blocking client so that neither the hold's event loop nor a busy peer process delays it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx

PERIOD = 0.05


@dataclass
class _Seen:
    """When one rule id was first listed, and when it was first missing after that."""

    asked_before: float  # when the last poll that did not list it yet was sent
    first: float  # when the first answer that listed it came
    gone: float | None = None


@dataclass
class RulePoller:
    """Polls ``admin_url``'s ``GET /rules`` every ``period`` seconds while started."""

    admin_url: str
    token: str
    period: float = PERIOD
    errors: int = 0
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _listed: frozenset[str] = frozenset()
    _last_sent: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RulePoller:
        self._thread = threading.Thread(target=self._run, name="rule-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def listed(self) -> frozenset[str]:
        """Rule ids of the latest answer."""
        with self._lock:
            return self._listed

    def appeared(self, rule_id: str) -> tuple[float, float] | None:
        """``(sent, answered)``: the poll before the rule was listed, and the first listing."""
        with self._lock:
            seen = self._seen.get(rule_id)
            return None if seen is None else (seen.asked_before, seen.first)

    async def wait_seen(self, rule_id: str, timeout: float) -> tuple[float, float]:
        """Wait until the rule has been listed; ``appeared`` then."""
        deadline = time.monotonic() + timeout
        while (found := self.appeared(rule_id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxy never listed rule {rule_id} within {timeout:g}s")
            await asyncio.sleep(self.period / 2)
        return found

    async def wait_gone(self, rule_id: str, timeout: float) -> float:
        """When the first answer after the rule was listed came without it."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._seen.get(rule_id)
                gone = None if seen is None else seen.gone
            if gone is not None:
                return gone
            if time.monotonic() > deadline:
                raise TimeoutError(f"rule {rule_id} still listed (or never seen) after "
                                   f"{timeout:g}s")
            await asyncio.sleep(self.period / 2)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.admin_url, headers=headers, timeout=1.0,
                          trust_env=False) as client:
            origin = time.monotonic()
            ticks = 0
            while not self._stop.is_set():
                self._poll(client)
                # On a fixed grid, so a slow answer does not stretch the period.
                ticks = max(ticks + 1, int((time.monotonic() - origin) / self.period))
                self._stop.wait(max(0.0, origin + ticks * self.period - time.monotonic()))

    def _poll(self, client: httpx.Client) -> None:
        sent = time.time()
        try:
            answer = client.get("/rules")
            answer.raise_for_status()
            ids = frozenset(str(rule["id"]) for rule in answer.json()["rules"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            # A failed poll says nothing about the rule: neither listed nor gone.
            with self._lock:
                self.errors += 1
            return
        answered = time.time()
        with self._lock:
            for rule_id in ids - self._seen.keys():
                self._seen[rule_id] = _Seen(asked_before=self._last_sent, first=answered)
            for rule_id, seen in self._seen.items():
                if seen.gone is None and rule_id not in ids:
                    seen.gone = answered
            self._listed = ids
            self._last_sent = sent
