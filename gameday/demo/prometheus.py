"""Prometheus for the demo: its configuration, command line and target health.

Every part is scraped each second (the guards judge staleness by it) with the recording rules
of ``deploy/prometheus/rules.yml``. The proxies' admin ``/metrics`` is scraped with the stack's
bearer token, read from the token file so it never appears in the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from gameday.demo.programs import program
from gameday.errors import DemoError

#: The checkout's recording rules and the kit's alerts; the demo runs from a checkout.
RULES_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
#: The demo services' own alerts (the page a catalog scenario is designed to raise).
DEMO_ALERTS_FILE = RULES_FILE.with_name("demo-alerts.yml")
#: The label every alert of the demo carries (the demo environment's ``alertmanager.labels``).
ENVIRONMENT_LABEL = {"environment": "demo"}


@dataclass(frozen=True)
class ScrapeTarget:
    """One job: a part's ``/metrics`` on ``127.0.0.1:port``."""

    job: str
    port: int
    bearer: bool = False
    honor_labels: bool = False


def binary() -> str:
    """Path of the ``prometheus`` binary, or a ``DemoError`` saying how to install it."""
    return program("prometheus", package="prometheus")


def rules_file() -> Path:
    """The recording rules file, or a ``DemoError`` when the checkout lacks it."""
    for path in (RULES_FILE, DEMO_ALERTS_FILE):
        if not path.is_file():
            raise DemoError(f"rules not found at {path}; run the demo from a gameday checkout")
    return RULES_FILE


def config(targets: list[ScrapeTarget], rules: Path, token_file: Path,
           alertmanager_port: int | None = None) -> dict[str, Any]:
    """The Prometheus configuration as a mapping; alerts go to the Alertmanager on
    ``alertmanager_port``, each labelled with the demo's environment."""
    jobs: list[dict[str, Any]] = []
    for target in targets:
        job: dict[str, Any] = {
            "job_name": target.job,
            "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
        }
        if target.bearer:
            job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
        if target.honor_labels:
            job["honor_labels"] = True
        jobs.append(job)
    found: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                   # Sent with every alert (queries never see them): the environment's label.
                   "external_labels": dict(ENVIRONMENT_LABEL)},
        "rule_files": [str(rules), str(rules.with_name(DEMO_ALERTS_FILE.name))],
        "scrape_configs": jobs,
    }
    if alertmanager_port is not None:
        found["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    return found


def write_config(path: Path, targets: list[ScrapeTarget], rules: Path, token_file: Path,
                 alertmanager_port: int | None = None) -> None:
    """Write the configuration to ``path``."""
    text = yaml.safe_dump(config(targets, rules, token_file, alertmanager_port),
                          sort_keys=False)
    path.write_text("# Written by 'chaosctl demo up'; rewritten on every start.\n" + text,
                    encoding="utf-8")


def argv(config_file: Path, data_dir: Path, port: int) -> list[str]:
    """Command line of a Prometheus serving on 127.0.0.1:``port``."""
    return [
        binary(),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        # The services' latency buckets carry trace ids (scraped as OpenMetrics): keep them,
        # so /api/v1/query_exemplars links a slow bucket to a trace.
        "--enable-feature=exemplar-storage",
        # A firing alert is re-sent each second rather than each minute: Alertmanager learns
        # of it, and of its end, within the demo's one-second rhythm.
        "--rules.alert.resend-delay=1s",
    ]


def target_health(url: str, timeout: float = 2.0) -> dict[str, str]:
    """Each active job's health (``up``, ``down``, ``unknown``) with its last error, if any."""
    response = httpx.get(f"{url}/api/v1/targets", params={"state": "active"},
                         timeout=timeout, trust_env=False)
    response.raise_for_status()
    health: dict[str, str] = {}
    for target in response.json()["data"]["activeTargets"]:
        job = target["labels"]["job"]
        state = target.get("health", "unknown")
        error = target.get("lastError") or ""
        health[job] = f"{state}: {error}" if state != "up" and error else state
    return health
