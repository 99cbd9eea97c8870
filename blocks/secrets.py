"""Reading the secrets an environment file references, once, when it is imported as blocks."""

from __future__ import annotations

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
