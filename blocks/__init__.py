"""Prefect blocks: configuration and secrets that flows load by name.

``PrometheusSource`` and ``SlackChannel`` hold a connection and its secrets (``SecretStr``);
``GameDayEnvironment`` is the engine's environment as a block, with the values of the secrets
it references. Nothing here connects when imported; ``get_client`` builds clients.

Importing this package hands the engine its way to read ``{block: NAME}`` secrets, and turns
on log redaction: flows a worker runs never pass through ``chaosctl``, which does the same.
"""

from blocks.environment import (
    GameDayEnvironment,
    environment_block,
    load_environment,
    save_environment,
)
from blocks.prometheus import PrometheusSource
from blocks.secrets import read_secret_block
from blocks.slack import SlackChannel
from gameday.redact import install_log_redaction
from gameday.secrets import use_block_reader

use_block_reader(read_secret_block)
install_log_redaction()

#: Every block type the kit registers (``chaosctl blocks register``).
BLOCK_TYPES = (PrometheusSource, SlackChannel, GameDayEnvironment)

__all__ = ["BLOCK_TYPES", "GameDayEnvironment", "PrometheusSource", "SlackChannel",
           "environment_block", "load_environment", "save_environment"]
