"""Lease checks both proxy modes run: the admin API's renewal, lapse and refusal, by a real proxy.

Each mode's test module supplies a leased rule of its own kind; what "the fault acts" means on
the data plane is checked there.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from gameday.drivers.base import LEASE_EXPIRED
from gameday.drivers.proxy import ProxyDriver
from gameday.records import Handle
from tests.injector.conftest import LABELS, Proxy, samples, wait_for

#: Generous for a loaded two-core machine: a lease of 0.5 s lapses well within it.
LAPSE_BOUND = 5.0


def leased(stored_rule: dict[str, Any], lease: float) -> dict[str, Any]:
    """``stored_rule`` (a rule input) with a lease."""
    return {**stored_rule, "lease": lease}


def renew(proxy: Proxy, ids: list[str] | None = None, run: str = str(LABELS["run"])
          ) -> httpx.Response:
    """One ``POST /leases``."""
    body: dict[str, Any] = {"run": run}
    if ids is not None:
        body["ids"] = ids
    with proxy.admin() as admin:
        return admin.post("/leases", json=body)


def listed(proxy: Proxy) -> set[str]:
    """Ids of the stored rules."""
    return {str(r["id"]) for r in proxy.rules()}


def check_lapse_with_no_traffic(proxy: Proxy, rule_input: dict[str, Any]) -> str:
    """A leased rule nobody renews is removed by the proxy's timer, logged and counted."""
    before = sum(v for labels, v in samples(proxy, "chaos_lease_expired_total")
                 if labels.get("run") == LABELS["run"])
    stored = proxy.put(leased(rule_input, 0.5))[0]
    assert stored["lease"] == 0.5 and stored["expires_at"] - time.time() > 30
    wait_for(lambda: stored["id"] not in listed(proxy), LAPSE_BOUND, "lease lapse")
    lapsed = [e for e in proxy.events("lease_expired") if e["rule"]["id"] == stored["id"]]
    assert len(lapsed) == 1 and lapsed[0]["lateness_ms"] >= 0
    after = sum(v for labels, v in samples(proxy, "chaos_lease_expired_total")
                if labels.get("run") == LABELS["run"])
    assert after == before + 1
    return str(stored["id"])


def check_renewal_keeps_it(proxy: Proxy, rule_input: dict[str, Any]) -> None:
    """Renewed every 0.2 s for three leases' time, a 0.6 s lease holds; one call renews all."""
    proxy.put(leased({**rule_input, "id": "lease-a"}, 0.6),
              leased({**rule_input, "id": "lease-b"}, 0.6))
    ends = time.monotonic() + 1.8
    while time.monotonic() < ends:
        answer = renew(proxy, ["lease-a", "lease-b"])
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["renewed"]) == {"lease-a", "lease-b"}
        time.sleep(0.2)
    assert listed(proxy) == {"lease-a", "lease-b"}
    assert renew(proxy).status_code == 200  # no ids: every rule of the run


def check_lapsed_stays_gone(proxy: Proxy, rule_input: dict[str, Any]) -> None:
    """Renewing a lapsed lease answers 410 with the reason, and the rule does not come back;
    the driver reports it as a lapsed lease."""
    stored = proxy.put(leased(rule_input, 0.3))[0]
    wait_for(lambda: stored["id"] not in listed(proxy), LAPSE_BOUND, "lease lapse")
    answer = renew(proxy, [stored["id"]])
    assert answer.status_code == 410
    assert answer.json()["gone"] == [{"id": stored["id"], "reason": LEASE_EXPIRED}]
    assert stored["id"] not in listed(proxy)
    handle = Handle(driver="proxy", id=stored["id"], endpoint=proxy.admin_url, labels=LABELS,
                    fault="x", expires_at=stored["expires_at"], lease_s=0.3)
    with ProxyDriver(proxy.admin_url, proxy.token) as driver:
        gone = driver.renew([handle])
    assert [(g.handle.id, g.reason) for g in gone] == [(stored["id"], LEASE_EXPIRED)]
    unknown = renew(proxy, ["never-was"])
    assert unknown.status_code == 410 and unknown.json()["gone"][0]["reason"] == "unknown"
    assert renew(proxy).status_code == 410  # the run has nothing left to renew


def check_bad_renewals(proxy: Proxy) -> None:
    """Malformed renewals are answered 400 and change nothing; without the token, 401."""
    with proxy.admin() as admin:
        for body in ({}, {"run": ""}, {"run": "-x"}, {"run": "r", "ids": "a"},
                     {"run": "r", "ids": ["a"] * 1025}, {"run": "r", "extra": 1}, [1]):
            assert admin.post("/leases", json=body).status_code == 400, body
        assert admin.post("/leases", content=b"{").status_code == 400
        assert admin.get("/leases").status_code == 405
    assert httpx.post(f"{proxy.admin_url}/leases", json={"run": "r"}).status_code == 401


def check_replace_is_not_renewal(proxy: Proxy, rule_input: dict[str, Any]) -> None:
    """PUTting the same rule set again keeps the lease deadline; the rule still lapses."""
    item = leased({**rule_input, "id": "same"}, 0.8)
    proxy.put(item)
    ends = time.monotonic() + 1.2
    while time.monotonic() < ends:
        proxy.put(item)
        time.sleep(0.1)
    wait_for(lambda: "same" not in listed(proxy), LAPSE_BOUND, "lease lapse despite PUTs")
