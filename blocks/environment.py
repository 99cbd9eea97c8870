"""``GameDayEnvironment``: the engine's ``Environment`` as a Prefect block, its secrets with it.

``chaosctl env import FILE`` reads the file, resolves every secret it references (environment
variables or Secret blocks) and saves one block under the environment's name: the file's
``Environment`` as it is (secret *references*, never values) and, beside it, the value of each
referenced secret in ``secrets`` — Prefect's ``SecretDict``, keyed by the field's path (e.g.
``endpoints[0].token``), because Prefect masks and encrypts only top-level secret fields and
``SecretDict`` values, never secrets nested inside a model. There is no second copy of the
environment's fields to keep in step: a new field of ``Environment`` is stored as it comes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar, cast

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import BaseModel, Field, ValidationError

from blocks.secrets import read_reference
from gameday.environments import load_environment as load_from_files
from gameday.errors import ConfigError
from gameday.models import Environment, SecretRef

logger = logging.getLogger(__name__)


class GameDayEnvironment(Block):
    """Where game days may run, and their rules: the environment model as a block."""

    _block_type_name: ClassVar[str] = "Game Day Environment"
    _description: ClassVar[str] = (
        "A gameday environment: Prometheus, fault endpoints, allow-lists, requesters, sign-off "
        "severity and the kill switch. Imported with 'chaosctl env import FILE'.")

    definition: Environment = Field(description="The environment as its file defines it; "
                                    "secrets appear as references (env:/block:), not values")
    secrets: SecretDict = Field(default_factory=lambda: SecretDict({}),
                                description="The value of every secret the definition "
                                "references, by field path (e.g. endpoints[0].token)")

    @classmethod
    def from_environment(cls, environment: Environment) -> GameDayEnvironment:
        """The block for ``environment``, every secret it references read now.

        Raises ``ConfigError`` naming a reference that is not set; values are never shown.
        """
        values: dict[str, str] = {}

        def read(path: str, ref: SecretRef) -> SecretRef:
            value = read_reference(ref, path)
            if value is not None:
                values[path] = value
            return ref

        _map_secrets(environment, "", read)
        return cls(definition=environment, secrets=SecretDict(values))

    def environment(self) -> Environment:
        """The engine's model; secrets are held in memory and never written anywhere."""
        origin = f"Game Day Environment block {self.definition.name!r}"
        stored: dict[str, Any] = self.secrets.get_secret_value()

        def hold(path: str, ref: SecretRef) -> SecretRef:
            if path not in stored:
                return ref
            return SecretRef.held(str(stored[path]), f"{ref.describe()} as stored in the "
                                  f"{origin} ({path})")

        return cast(Environment, _map_secrets(self.definition, "", hold))


def _map_secrets(node: Any, path: str, change: Callable[[str, SecretRef], SecretRef]) -> Any:
    """``node`` with every ``SecretRef`` inside it replaced by ``change(path, ref)``."""
    if isinstance(node, SecretRef):
        return change(path, node)
    if isinstance(node, BaseModel):
        updates = {}
        for name in type(node).model_fields:
            value = getattr(node, name)
            new = _map_secrets(value, f"{path}.{name}" if path else name, change)
            if new is not value:
                updates[name] = new
        return node.model_copy(update=updates) if updates else node
    if isinstance(node, list):
        items = [_map_secrets(item, f"{path}[{index}]", change) for index, item in enumerate(node)]
        return items if any(a is not b for a, b in zip(items, node, strict=True)) else node
    return node


def save_environment(environment: Environment, overwrite: bool = True) -> list[str]:
    """Save ``environment`` as a block named after it; the slugs saved, e.g.
    ``game-day-environment/demo``. Secrets are read now and never printed."""
    block = GameDayEnvironment.from_environment(environment)
    block.save(environment.name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    return [f"game-day-environment/{environment.name}"]


def prefect_api_url() -> str | None:
    """The configured Prefect API, or None (then no block is looked up)."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    from prefect.settings import get_current_settings  # the active profile may name one

    configured = get_current_settings().api.url
    return str(configured) if configured else None


def environment_block(name: str) -> Environment | None:
    """The ``GameDayEnvironment`` block called ``name``, or None when there is none.

    Without a configured Prefect API nothing is asked (Prefect would otherwise start a
    temporary server). A server that does not answer is logged and treated as "no block":
    commands such as ``chaosctl status`` and ``stop`` must still work from the file.
    """
    if prefect_api_url() is None:
        return None
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        # Called from sync and async code alike: force the synchronous client.
        block = cast(GameDayEnvironment, GameDayEnvironment.load(
            name, _sync=True))  # type: ignore[call-arg]
        return block.environment()
    except ValidationError as exc:  # a block edited into something the model refuses
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"Game Day Environment block {name!r}: {where}: {first['msg']}"
                          ) from exc
    except ValueError:  # no such block document (or its type is not registered)
        return None
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as exc:
        logger.warning("Prefect blocks not readable (%s); using the environment file for %r",
                       type(exc).__name__, name)
        return None


def load_environment(name_or_path: str) -> Environment:
    """The environment ``name_or_path``: a block of that name first, then the files."""
    return load_from_files(name_or_path, lookup=environment_block)
