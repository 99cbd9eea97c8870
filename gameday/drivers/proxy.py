"""The proxy driver: applies faults as rules through a gameday proxy's admin API.

``apply`` posts a rule with a TTL (the proxy removes it by itself at expiry), ``revert``
deletes it by id (404 means it is already gone), ``active`` lists rules by their ``run`` label,
so a driver that never saw the ``apply`` still finds and reverts them. With a ``lease`` the
rule also ends once the run stops renewing it; ``renew`` renews all of one run's rules at a
proxy in one ``POST /leases``, and the proxy's own timer ends a lapsed rule with no traffic.

One driver serves both proxy modes: it asks ``/health`` once which mode the proxy runs in
(``http``, or ``tcp`` in front of a database or cache; a proxy that does not say is HTTP),
refuses a fault that mode cannot inject before sending it, and reads the mode's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from gameday.drivers.base import Gone
from gameday.errors import DriverError, DriverUnreachable
from gameday.faults import PROTOCOLS, protocol_problems
from gameday.injector.rules import Rule, RuleBase
from gameday.injector.tcp.rules import TcpRule
from gameday.models import Endpoint
from gameday.records import FaultSpec, Handle


class ProxyDriver:
    """Drives one gameday proxy through its admin API at ``admin_url``.

    ``target`` is sent as each rule's target when given; otherwise the proxy applies its own
    (``chaosctl proxy --target``).
    """

    kind = "proxy"
    #: The proxy's timer ends a lapsed rule on time; its loop is all the lateness there is.
    lease_slack = 0.05

    def __init__(self, admin_url: str, token: str | None = None, *, target: str | None = None,
                 timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.target = target
        self._mode: str | None = None
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.admin_url, headers=headers, timeout=timeout,
                                    transport=transport)

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> ProxyDriver:
        """A driver for an environment's proxy endpoint (token resolved from its reference)."""
        if not endpoint.admin_url:
            raise DriverError(f"endpoint {endpoint.service}: the proxy driver needs admin_url")
        token = endpoint.token.resolve() if endpoint.token else None
        if endpoint.token and token is None:
            raise DriverError(f"endpoint {endpoint.service}: token {endpoint.token.describe()} "
                              "is not set")
        return cls(endpoint.admin_url, token)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> ProxyDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the driver contract --------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``DriverUnreachable`` unless the proxy answers ``/health``."""
        self._health()

    def mode(self) -> str:
        """The proxy's mode, ``http`` or ``tcp`` (asked once)."""
        if self._mode is None:
            self._health()
        assert self._mode is not None
        return self._mode

    def _health(self) -> None:
        response = self._call("GET", "/health")
        if response.status_code != 200:
            raise DriverUnreachable(f"proxy {self.admin_url}: /health answered "
                                    f"{response.status_code}")
        try:
            mode = response.json().get("mode", "http")
        except (ValueError, AttributeError) as exc:
            raise DriverError(f"proxy {self.admin_url}: unexpected /health answer") from exc
        if mode not in PROTOCOLS:
            raise DriverError(f"proxy {self.admin_url} runs in mode {mode!r}, which this kit "
                              f"does not know (known: {', '.join(PROTOCOLS)})")
        self._mode = mode

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Add the spec's fault as a rule that expires after ``ttl`` seconds (or ``lease``
        seconds after its last renewal)."""
        fault = spec.fault
        if not fault.protocols:
            raise DriverError(f"the proxy injects HTTP faults (and TCP faults in TCP mode) "
                              f"only, not {fault.kind!r}")
        mode = self.mode()
        for name, message in protocol_problems(fault, mode):
            raise DriverError(f"proxy {self.admin_url} runs in {mode} mode: fault.{name}: "
                              f"{message}")
        body: dict[str, Any] = {
            # Unset optional fields stay out: an earlier proxy knows no TCP field, even as null.
            "fault": fault.model_dump(mode="json", exclude_none=True),
            "labels": spec.labels.model_dump(mode="json"),
            "ttl": ttl,
        }
        if lease is not None:
            body["lease"] = lease
        if self.target is not None:
            body["target"] = self.target
        response = self._call("POST", "/rules", json=body)
        self._expect(response, 201, "apply")
        return self._handle(self._rule(response.json()))

    def revert(self, handle: Handle) -> None:
        """Delete the handle's rule; already gone (404) is fine."""
        if handle.driver != self.kind:
            raise DriverError(f"handle of driver {handle.driver!r} given to the proxy driver")
        if handle.endpoint.rstrip("/") != self.admin_url:
            raise DriverError(f"handle {handle.id} lives at {handle.endpoint}, this driver "
                              f"talks to {self.admin_url}")
        response = self._call("DELETE", f"/rules/{handle.id}")
        if response.status_code != 404:
            self._expect(response, 200, "revert")

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Renew the handles' leases, one call per run; the handles the proxy says are gone."""
        by_run: dict[str, list[Handle]] = {}
        for handle in handles:
            by_run.setdefault(handle.labels.run, []).append(handle)
        gone: list[Gone] = []
        for run, held in by_run.items():
            # A short timeout: a renewal that hangs must leave time to retry within the lease.
            response = self._call("POST", "/leases", timeout=min(self._timeout, 1.0),
                                  json={"run": run, "ids": [h.id for h in held]})
            if response.status_code == 410:
                try:
                    reasons = {item["id"]: item["reason"] for item in response.json()["gone"]}
                except (ValueError, KeyError, TypeError) as exc:
                    raise DriverError(f"proxy {self.admin_url}: unexpected /leases "
                                      "answer") from exc
                gone += [Gone(h, reasons[h.id]) for h in held if h.id in reasons]
                continue
            self._expect(response, 200, "renew")
        return gone

    def active(self, run: str | None = None) -> list[Handle]:
        """Rules in place on the proxy, optionally only ``run``'s, as handles."""
        response = self._call("GET", "/rules", params={"run": run} if run else None)
        self._expect(response, 200, "list")
        try:
            items = response.json()["rules"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DriverError(f"proxy {self.admin_url}: unexpected /rules answer") from exc
        return [self._handle(self._rule(item)) for item in items
                if run is None or item.get("labels", {}).get("run") == run]

    # -- helpers --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DriverUnreachable(f"proxy admin API {self.admin_url} did not answer: "
                                    f"{exc}") from exc
        except httpx.HTTPError as exc:
            raise DriverError(f"proxy admin API {self.admin_url}: {exc}") from exc

    def _expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code == status:
            return
        if response.status_code == 401:
            raise DriverError(f"proxy {self.admin_url} refused the token ({what})")
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        raise DriverError(f"proxy {self.admin_url}: {what} failed with "
                          f"{response.status_code}: {detail}")

    def _rule(self, data: Any) -> RuleBase:
        model: type[RuleBase] = TcpRule if self.mode() == "tcp" else Rule
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise DriverError(f"proxy {self.admin_url} answered a rule this kit cannot "
                              f"read: {exc}") from exc

    def _handle(self, rule: RuleBase) -> Handle:
        return Handle(driver=self.kind, id=rule.id, endpoint=self.admin_url, labels=rule.labels,
                      fault=rule.fault.summary(), expires_at=rule.expires_at,
                      lease_s=rule.lease, extra={"target": rule.target})
