"""Schemathesis against the proxy's /openapi.json: no 5xx, and rejected calls change nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.injector.conftest import TOKEN, Proxy

pytestmark = pytest.mark.integration
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def listed(proxy: Proxy) -> list[dict[str, Any]]:
    """The rules as the admin API lists them."""
    rules: list[dict[str, Any]] = httpx.get(
        f"{proxy.admin_url}/rules", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()["rules"]
    return rules


def check_case(proxy: Proxy, case: Any) -> None:
    """One generated call: no 5xx, conformant answer, and a rejected call changes nothing."""
    before = listed(proxy)
    response = case.call(base_url=proxy.admin_url,
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        after = listed(proxy)
        now = time.time()
        # Only rules that expired by themselves in the meantime may be missing.
        assert all(rule in before for rule in after), (case.method, case.path)
        assert all(rule["expires_at"] <= now + 0.5 for rule in before if rule not in after)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_admin_api_conforms(proxy: Proxy, mode: GenerationMode) -> None:
    """Generated calls to every operation never get a 5xx; rejected ones leave rules alone."""
    schema = schemathesis.openapi.from_url(f"{proxy.admin_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"GET /rules", "PUT /rules", "POST /rules", "DELETE /rules",
            "DELETE /rules/{rule_id}", "GET /health"} <= labels
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            check_case(proxy, case)

        try:
            run()
        except Unsatisfiable:
            # Nothing to break: an operation without parameters has no negative cases.
            assert mode == GenerationMode.NEGATIVE
