"""``SlackChannel``: where on-call follows a game day, with the bot token or webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.secrets import read_reference
from gameday.models import SecretRef, SlackSettings

if TYPE_CHECKING:
    from gameday.notify.slack import SlackConfig, SlackSink


class SlackChannel(Block):
    """A Slack channel: a bot token (threads) or an incoming webhook (no threads)."""

    _block_type_name: ClassVar[str] = "Slack Channel"
    _description: ClassVar[str] = (
        "Where gameday posts a run's story: a channel with a bot token (one thread per run) "
        "or an incoming webhook.")

    channel: str | None = Field(None, description="Channel name or ID, e.g. #gameday")
    token: SecretStr | None = Field(None, description="Bot token (chat:write)")
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL (a secret)")
    oncall_group: str | None = Field(None, description="Mentioned on breaches, e.g. "
                                     "<!subteam^S0123>")
    api_url: str | None = Field(None, pattern=r"^https?://",
                                description="Slack Web API base URL (default Slack's own)")

    @classmethod
    def from_settings(cls, settings: SlackSettings) -> SlackChannel:
        """The block for an environment file's ``notify.slack`` (its secrets read now)."""
        token = read_reference(settings.token, "notify.slack.token")
        webhook = read_reference(settings.webhook_url, "notify.slack.webhook_url")
        return cls(channel=settings.channel, oncall_group=settings.oncall_group,
                   api_url=settings.api_url,
                   token=SecretStr(token) if token is not None else None,
                   webhook_url=SecretStr(webhook) if webhook is not None else None)

    def settings(self, origin: str = "a Slack Channel block") -> SlackSettings:
        """The engine's settings model, the secrets held in memory (never written anywhere)."""
        def held(value: SecretStr | None, field: str) -> SecretRef | None:
            if value is None:
                return None
            return SecretRef.held(value.get_secret_value(), f"{origin} ({field})")

        return SlackSettings(channel=self.channel, token=held(self.token, "token"),
                             webhook_url=held(self.webhook_url, "webhook_url"),
                             oncall_group=self.oncall_group, api_url=self.api_url)

    def config(self) -> SlackConfig:
        """How the Slack sink reaches Slack."""
        from gameday.notify.slack import SlackConfig

        return SlackConfig.from_settings(self.settings())

    def get_client(self, run_url: str | None = None) -> SlackSink:
        """A sink that posts notices here; nothing connects until the first notice."""
        from gameday.notify.slack import SlackSink

        return SlackSink(self.config(), run_url)
