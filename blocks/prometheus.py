"""``PrometheusSource``: the Prometheus an environment's guards and signals query."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.secrets import read_reference
from gameday.guards import Prometheus
from gameday.models import PrometheusSettings, SecretRef


class PrometheusSource(Block):
    """A Prometheus server: its URL, timeouts and an optional bearer token."""

    _block_type_name: ClassVar[str] = "Prometheus Source"
    _description: ClassVar[str] = (
        "The Prometheus that gameday's guards and signals query, with an optional bearer token.")

    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. http://prometheus:9090")
    timeout: float = Field(5.0, gt=0, description="Per-query timeout in seconds (capped by the "
                           "environment's guard interval)")
    scrape_interval: float = Field(15.0, gt=0, description="Scrape interval in seconds; samples "
                                   "older than a few intervals count as stale")
    rate_window: float | None = Field(None, gt=0, description="Range of rate() in signal "
                                      "templates, in seconds (default: 4 scrape intervals)")
    token: SecretStr | None = Field(None, description="Bearer token, if Prometheus needs one")

    @classmethod
    def from_settings(cls, settings: PrometheusSettings) -> PrometheusSource:
        """The block for an environment file's ``prometheus`` (its token read now)."""
        token = read_reference(settings.token, "prometheus.token")
        return cls(url=settings.url, timeout=settings.timeout,
                   scrape_interval=settings.scrape_interval, rate_window=settings.rate_window,
                   token=SecretStr(token) if token is not None else None)

    def settings(self, origin: str = "a Prometheus Source block") -> PrometheusSettings:
        """The engine's settings model, the token held in memory (never written anywhere)."""
        token = (SecretRef.held(self.token.get_secret_value(), f"{origin} (token)")
                 if self.token is not None else None)
        return PrometheusSettings(url=self.url, timeout=self.timeout,
                                  scrape_interval=self.scrape_interval,
                                  rate_window=self.rate_window, token=token)

    def get_client(self, guard_interval: float | None = None) -> Prometheus:
        """A query client; nothing connects until the first query."""
        return Prometheus.from_settings(self.settings(), guard_interval)

