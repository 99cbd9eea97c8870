"""``GameDayEnvironment``: an environment file as a Prefect block, its secrets stored with it.

``chaosctl env import FILE`` reads the file, resolves every secret it references (environment
variables or Secret blocks) and saves three blocks under the environment's name: a
``PrometheusSource``, a ``SlackChannel`` (when the file has ``notify.slack``) and the
``GameDayEnvironment`` that refers to both. Prometheus and Slack secrets are ``SecretStr``
fields of their blocks; endpoint tokens live in ``secrets`` (Prefect's ``SecretDict``, keyed by
the reference the file names), because Prefect masks and encrypts only top-level secret fields
and ``SecretDict`` values, never secrets nested inside a list.
"""

from __future__ import annotations

from typing import Any, ClassVar

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field

from blocks.prometheus import PrometheusSource
from blocks.secrets import read_reference
from blocks.slack import SlackChannel
from gameday.models import Endpoint, Environment, Notify, SecretRef


class GameDayEnvironment(Block):
    """Where game days may run, and their rules: the environment model as a block."""

    _block_type_name: ClassVar[str] = "Game Day Environment"
    _description: ClassVar[str] = (
        "A gameday environment: Prometheus, fault endpoints, allow-lists, requesters, sign-off "
        "severity and the kill switch. Imported with 'chaosctl env import FILE'.")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Environment name")
    production: bool = Field(False, description="Production needs an explicit allow at start")
    enabled: bool = Field(True, description="Kill switch: off refuses every run")
    prometheus: PrometheusSource = Field(description="The Prometheus guards and signals query")
    pushgateway_url: str | None = Field(None, description="Pushgateway for run metrics")
    prefect_api_url: str | None = Field(None, description="The Prefect API game days run on")
    endpoints: list[Endpoint] = Field(default_factory=list,
                                      description="How faults reach each target")
    allowed_targets: list[str] = Field(default_factory=list, description="Services that may be "
                                       "targeted (empty: none)")
    allowed_namespaces: list[str] = Field(default_factory=list,
                                          description="Kubernetes namespaces faults may touch")
    sign_off_severity: int | None = Field(None, ge=1, description="From this step on a second "
                                          "person must approve")
    requesters: list[str] = Field(default_factory=list, description="Who may start game days "
                                  "(empty: anyone)")
    guard_interval: float = Field(1.0, description="Seconds between guard evaluations")
    console: bool = Field(True, description="Print notices on the run's console")
    slack: SlackChannel | None = Field(None, description="Where on-call follows the run")
    secrets: SecretDict = Field(default_factory=lambda: SecretDict({}),
                                description="Endpoint tokens, by the reference the environment "
                                "file names (env:VARIABLE or block:NAME)")

    @classmethod
    def from_environment(cls, environment: Environment) -> GameDayEnvironment:
        """The block for ``environment``, every secret it references read now.

        Raises ``ConfigError`` naming a reference that is not set; values are never shown.
        """
        secrets: dict[str, str] = {}
        for index, endpoint in enumerate(environment.endpoints):
            value = read_reference(endpoint.token, f"endpoints[{index}].token")
            if endpoint.token is not None and value is not None:
                secrets[endpoint.token.describe()] = value
        slack = environment.notify.slack
        return cls(
            name=environment.name, production=environment.production,
            enabled=environment.enabled,
            prometheus=PrometheusSource.from_settings(environment.prometheus),
            pushgateway_url=environment.pushgateway_url,
            prefect_api_url=environment.prefect_api_url, endpoints=environment.endpoints,
            allowed_targets=environment.allowed_targets,
            allowed_namespaces=environment.allowed_namespaces,
            sign_off_severity=environment.sign_off_severity,
            requesters=environment.requesters, guard_interval=environment.guard_interval,
            console=environment.notify.console,
            slack=SlackChannel.from_settings(slack) if slack is not None else None,
            secrets=SecretDict(secrets))

    def environment(self) -> Environment:
        """The engine's model; secrets are held in memory and never written anywhere."""
        origin = f"Game Day Environment block {self.name!r}"
        stored: dict[str, Any] = self.secrets.get_secret_value()
        endpoints = []
        for endpoint in self.endpoints:
            ref = endpoint.token
            if ref is not None and ref.describe() in stored:
                held = SecretRef.held(str(stored[ref.describe()]),
                                      f"{ref.describe()} as stored in the {origin}")
                endpoint = endpoint.model_copy(update={"token": held})
            endpoints.append(endpoint)
        notify = Notify(console=self.console,
                        slack=self.slack.settings(f"{origin} (slack)") if self.slack else None)
        return Environment(
            name=self.name, production=self.production, enabled=self.enabled,
            prometheus=self.prometheus.settings(f"{origin} (prometheus)"),
            pushgateway_url=self.pushgateway_url, prefect_api_url=self.prefect_api_url,
            endpoints=endpoints, allowed_targets=self.allowed_targets,
            allowed_namespaces=self.allowed_namespaces,
            sign_off_severity=self.sign_off_severity, requesters=self.requesters,
            guard_interval=self.guard_interval, notify=notify)


def save_environment(environment: Environment, overwrite: bool = True) -> list[str]:
    """Save ``environment`` as blocks named after it; the slugs saved, e.g.
    ``game-day-environment/demo``. Secrets are read now and never printed."""
    block = GameDayEnvironment.from_environment(environment)
    saved = []
    # The parts first, under the same name, so the UI shows them as blocks of their own that
    # the environment refers to (a nested block saved with its parent would be anonymous).
    block.prometheus.save(environment.name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    saved.append(f"prometheus-source/{environment.name}")
    if block.slack is not None:
        block.slack.save(environment.name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
        saved.append(f"slack-channel/{environment.name}")
    block.save(environment.name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    saved.append(f"game-day-environment/{environment.name}")
    return saved
