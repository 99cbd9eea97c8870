"""Secrets on Prefect: reading the references an environment file makes, and Secret blocks."""

from __future__ import annotations

from typing import cast

from prefect.blocks.system import Secret

from gameday.errors import ConfigError
from gameday.models import SecretRef


def read_reference(ref: SecretRef | None, where: str) -> str | None:
    """The value ``ref`` points at, or ``ConfigError`` naming the reference (never a value)."""
    if ref is None:
        return None
    value = ref.resolve()
    if not value:
        raise ConfigError(f"{where}: {ref.describe()} is not set; set it before importing "
                          "(the block stores its value)")
    return value


def read_secret_block(name: str) -> str:
    """The value of the Prefect Secret block ``name`` (``{block: NAME}`` in a catalog file)."""
    try:
        # Called from sync code, so ``load`` returns the block, not a coroutine.
        block = cast("Secret[str]", Secret.load(name))
        value = block.get()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"secret block {name!r} could not be loaded: {exc}") from exc
    return str(value)
