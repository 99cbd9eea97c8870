"""A Slack sink: one parent message per run with its story in the thread, or a webhook.

With a bot token (``chat:write``) the run's first message — the start — is posted to the
channel and every later notice is a reply in its thread, so the channel shows one line per
game day. A failed rollback is also broadcast to the channel and mentions the on-call group.
An incoming webhook cannot thread: each notice is its own message.

The sink runs in the notifier's worker, never on the safety path. Rate limits (429, honouring
``Retry-After``), server errors and timeouts become ``SinkRetry``; what Slack refuses for good
(bad token, unknown channel) becomes ``SinkError``. Neither carries a secret: slack_sdk's own
log lines (which name the request URL, and a webhook's URL *is* its secret) are silenced, and
errors are described from their status and Slack's error code only.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gameday.errors import ConfigError
from gameday.notify.core import Notice, SinkError, SinkRetry
from gameday.notify.notices import SweepNotice
from gameday.notify.slack_layout import Layout, Message

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.webhook import WebhookClient

    from gameday.models import SecretRef, SlackSettings

DEFAULT_API_URL = "https://slack.com/api/"
#: Slack error codes that a later try may get past.
_RETRYABLE_ERRORS = frozenset({"ratelimited", "rate_limited", "service_unavailable",
                               "fatal_error", "internal_error", "request_timeout"})
#: Notices that may come before the run's start (prepare sweeps leftovers first); they wait
#: for the start message so that it is the thread's parent.
PRELUDE = (SweepNotice,)


def _quiet_logger() -> logging.Logger:
    # slack_sdk logs request URLs and bodies at debug level and on retries; a webhook URL is a
    # secret, so its client gets a logger that goes nowhere. Failures are reported by the sink.
    logger = logging.getLogger("gameday.notify.slack.client")
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


@dataclass(frozen=True)
class SlackConfig:
    """How to reach Slack; a ``SlackChannel`` block or an environment's settings build it.

    ``token`` (a bot token) posts threads to ``channel``; ``webhook_url`` (an incoming webhook)
    posts without threads. With both, the token is used. Secrets stay out of ``repr``.
    """

    channel: str | None = None
    token: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)
    oncall_group: str | None = None
    api_url: str | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.token and not self.webhook_url:
            raise ConfigError("slack: give a bot token (with a channel) or a webhook URL")
        if self.token and not self.channel:
            raise ConfigError("slack: a bot token needs a channel to post to")
        if not 0 < self.timeout <= 60:
            raise ConfigError(f"slack: timeout must be between 0 and 60 s (got {self.timeout:g})")

    @property
    def threads(self) -> bool:
        """Whether messages are threaded (bot token) rather than posted one by one (webhook)."""
        return bool(self.token)

    @classmethod
    def from_settings(cls, settings: SlackSettings) -> SlackConfig:
        """Resolve the environment's secret references; ``ConfigError`` names a missing one."""
        token = _resolve(settings.token, "token")
        webhook = None if token else _resolve(settings.webhook_url, "webhook_url")
        return cls(channel=settings.channel, token=token, webhook_url=webhook,
                   oncall_group=settings.oncall_group, api_url=settings.api_url)


def _resolve(ref: SecretRef | None, name: str) -> str | None:
    if ref is None:
        return None
    value = ref.resolve()
    if not value:
        raise ConfigError(f"notify.slack.{name}: {ref.describe()} is not set")
    return value


def _retry_after(headers: Any) -> float | None:
    value = None
    if headers is not None:
        value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _refusal(status: int, error: object, headers: Any, where: str) -> Exception:
    """The exception for a failed answer: ``SinkRetry`` if a later try may work."""
    code = error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,60}", error) else None
    detail = f"HTTP {status}" + (f", {code}" if code else "")
    if status == 429 or code in {"ratelimited", "rate_limited"}:
        return SinkRetry(f"{where}: rate limited ({detail})", after=_retry_after(headers))
    if status >= 500 or code in _RETRYABLE_ERRORS:
        return SinkRetry(f"{where}: server error ({detail})")
    return SinkError(f"{where} refused the message ({detail})")


class SlackSink:
    """Posts a run's notices to Slack (see the module docstring)."""

    name = "slack"

    def __init__(self, config: SlackConfig, run_url: str | None = None) -> None:
        self.config = config
        self.layout = Layout(oncall=config.oncall_group, run_url=run_url)
        self._web: WebClient | None = None
        self._webhook: WebhookClient | None = None
        #: Per run: the channel ID and ``ts`` of the parent message.
        self._parents: dict[str, tuple[str, str]] = {}
        self._prelude: list[Notice] = []

    def message(self, notice: Notice) -> Message:
        """The Slack message for ``notice``, with every known secret value blanked out.

        Notices carry driver and Prometheus errors verbatim; like the journal, chat hides the
        values of secret-looking environment variables and the sink's own credentials.
        """
        from gameday.redact import redact, secret_values

        message = self.layout.message(notice)
        secrets = [*secret_values(), self.config.token or "", self.config.webhook_url or ""]
        text, blocks = redact([message.text, message.blocks], secrets)
        return Message(text, blocks, message.broadcast)

    def send(self, notice: Notice) -> None:
        """Post one notice: the parent, a reply in its thread, or a webhook message."""
        if not self.config.threads:
            self._send_webhook(self.message(notice))
            return
        parent = self._parents.get(notice.run)
        if parent is None and isinstance(notice, PRELUDE):
            self._prelude.append(notice)
            return
        if parent is not None:  # the start is the parent; what waited for it follows it
            self._post_prelude()
        self._post(notice, parent)

    def close(self) -> None:
        """Post what still waits for a parent (a run refused after its sweep has none)."""
        with contextlib.suppress(SinkRetry, SinkError):
            self._post_prelude()
        self._prelude.clear()

    def _post_prelude(self) -> None:
        # Each waiting notice leaves the list only once posted (or refused for good), so a
        # retry of the current notice never posts one twice.
        while self._prelude:
            waiting = self._prelude[0]
            try:
                self._post(waiting, self._parents.get(waiting.run))
            except SinkError:
                self._prelude.pop(0)
                raise
            self._prelude.pop(0)

    # --- Web API (threads) -----------------------------------------------------------------

    def _client(self) -> WebClient:
        if self._web is None:
            from slack_sdk import WebClient

            base = (self.config.api_url or DEFAULT_API_URL).rstrip("/") + "/"
            # No retry handlers: the notifier retries, so deadlines and drops stay in one place.
            self._web = WebClient(token=self.config.token, base_url=base,
                                  timeout=int(max(1, round(self.config.timeout))),
                                  logger=_quiet_logger(), retry_handlers=[])
        return self._web

    def _post(self, notice: Notice, parent: tuple[str, str] | None) -> None:
        from slack_sdk.errors import SlackApiError, SlackClientError

        message = self.message(notice)
        assert self.config.channel is not None  # SlackConfig checked it
        extra: dict[str, Any] = {}
        if parent is not None:
            extra = {"thread_ts": parent[1], "reply_broadcast": message.broadcast}
        try:
            response = self._client().chat_postMessage(
                channel=parent[0] if parent else self.config.channel, text=message.text,
                blocks=message.blocks, unfurl_links=False, unfurl_media=False, **extra)
        except SlackApiError as exc:
            answer = exc.response
            data = answer.data if isinstance(answer.data, dict) else {}
            raise _refusal(answer.status_code, data.get("error"), answer.headers,
                           "slack") from exc
        except (OSError, http.client.HTTPException, SlackClientError) as exc:
            raise SinkRetry(f"slack: no answer ({type(exc).__name__})") from exc
        if parent is None:
            channel, ts = response.get("channel"), response.get("ts")
            if isinstance(channel, str) and isinstance(ts, str):
                self._parents[notice.run] = (channel, ts)

    # --- incoming webhook (no threads) -----------------------------------------------------

    def _send_webhook(self, message: Message) -> None:
        if self._webhook is None:
            from slack_sdk.webhook import WebhookClient

            assert self.config.webhook_url is not None  # SlackConfig checked it
            self._webhook = WebhookClient(self.config.webhook_url,
                                          timeout=int(max(1, round(self.config.timeout))),
                                          logger=_quiet_logger(), retry_handlers=[])
        try:
            response = self._webhook.send(text=message.text, blocks=message.blocks,
                                          unfurl_links=False, unfurl_media=False)
        except (OSError, http.client.HTTPException) as exc:
            # Not chained: a urllib error may quote the request, and the URL is the secret.
            raise SinkRetry(f"slack webhook: no answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise _refusal(response.status_code, (response.body or "").strip(),
                           response.headers, "slack webhook")
