"""The demo's environment file, written into the state folder for the stack that runs there.

It follows ``catalog/environments/demo.yaml`` with this stack's ports. The proxies' token is
referenced as ``{env: GAMEDAY_DEMO_TOKEN}``, never written; ``chaosctl demo env`` prints it.
When the stack traces, ``tracing`` names its trace folder and the histogram whose exemplars
link a slow request to its trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gameday.demo import redis_server
from gameday.demo.parts import POINTS, PROXIES, point_rules_file
from gameday.demo.state import TOKEN_VARIABLE, StackState
from gameday.load import load_one
from gameday.models import Environment

#: The latency histogram whose buckets carry trace ids (``gameday.demo.metrics``).
EXEMPLARS = 'service_request_duration_seconds_bucket{service="user-service"}'

_HEADER = """\
# The demo environment of the stack in this folder, written by 'chaosctl demo up' (ports change
# on every start). The proxies' admin token is read from ${variable}:
#   eval "$(chaosctl demo env)"
"""


def document(state: StackState) -> dict[str, Any]:
    """The environment file's content for ``state``."""
    admin = state.proxy_admin_urls
    users_health = f"{state.user_service_url}/health"
    data: dict[str, Any] = {
        "name": "demo",
        "production": False,
        "enabled": True,
        "prometheus": {"url": state.prometheus_url, "timeout": "1s", "scrape_interval": "1s"},
    }
    if state.pushgateway_url:
        data["pushgateway_url"] = state.pushgateway_url
    if state.prefect_api_url:
        data["prefect_api_url"] = state.prefect_api_url
    data |= {
        "guard_interval": "1s",
        "sign_off_severity": 4,
        "requesters": [],
        "allowed_targets": ["user-service", "redis"],
        "endpoints": [
            *({"service": "user-service", "dependency": dependency, "driver": "proxy",
               "protocol": spec.mode, "admin_url": admin[dependency],
               "token": {"env": TOKEN_VARIABLE}, "health_url": users_health}
              for dependency, spec in PROXIES.items()),
            # user-service's own cache and database calls, through its fault points: the
            # same dependencies as the proxies above, faulted from inside the process.
            *({"service": "user-service", "dependency": point, "driver": "transport",
               "rules_file": str(point_rules_file(Path(state.state_dir))), "points": [point],
               "health_url": users_health} for point in POINTS),
            # The cache's CPU: workers pinned to the core Redis is pinned to.
            {"service": "redis", "driver": "stress", "cpus": [redis_server.core()],
             "health_url": f"{state.url('redis-exporter')}/metrics"},
        ],
        "notify": {"console": True},
    }
    if state.alertmanager_url:
        # The default incident matchers (severity page or critical) and silence lease (5m).
        data["alertmanager"] = {"url": state.alertmanager_url, "labels": {"environment": "demo"}}
    if state.traces:
        data["tracing"] = {"files": state.traces, "exemplars": EXEMPLARS}
    return data


def write(state: StackState) -> Environment:
    """Write the environment file and load it back through the catalog loader to validate it."""
    path = state.environment_file
    text = yaml.safe_dump(document(state), sort_keys=False, default_flow_style=False)
    path.write_text(_HEADER.format(variable=TOKEN_VARIABLE) + text, encoding="utf-8")
    return load_one(Environment, path)
