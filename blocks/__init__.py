"""Prefect blocks: configuration and secrets that flows load by name.

``PrometheusSource`` and ``SlackChannel`` hold a connection and its secrets (``SecretStr``);
``GameDayEnvironment`` is an environment file as a block, referring to both. Nothing here
connects when imported; ``get_client`` builds clients.
"""

from blocks.environment import GameDayEnvironment, save_environment
from blocks.prometheus import PrometheusSource
from blocks.slack import SlackChannel

#: Every block type the kit registers (``chaosctl blocks register``).
BLOCK_TYPES = (PrometheusSource, SlackChannel, GameDayEnvironment)

__all__ = ["BLOCK_TYPES", "GameDayEnvironment", "PrometheusSource", "SlackChannel",
           "save_environment"]
