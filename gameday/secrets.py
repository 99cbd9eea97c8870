"""Reading secrets that an environment names by reference."""

from __future__ import annotations

from typing import cast

from gameday.errors import ConfigError


def read_block_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name``."""
    try:
        from prefect.blocks.system import Secret
    except ImportError as exc:  # pragma: no cover - prefect is a runtime dependency
        raise ConfigError("reading a secret block needs prefect: pip install prefect") from exc
    try:
        # Called from sync code, so ``load`` returns the block, not a coroutine.
        block = cast("Secret[str]", Secret.load(name))
        value = block.get()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"secret block {name!r} could not be loaded: {exc}") from exc
    return str(value)
