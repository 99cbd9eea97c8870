"""References to secrets: catalog files name where a secret lives, never the secret itself."""

from __future__ import annotations

import os
import threading
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PrivateAttr, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from gameday.faults import Strict

# Every value a SecretRef has read or been handed in this process. ``gameday.redact`` redacts
# them by value wherever the kit writes; they live here because the models may not import the
# layers above them (see pyproject's import contracts).
_resolved: frozenset[str] = frozenset()
_resolved_lock = threading.Lock()


def resolved_secrets() -> frozenset[str]:
    """The secret values SecretRefs have returned so far."""
    return _resolved


def _remember(value: str | None) -> str | None:
    global _resolved
    if value and value not in _resolved:
        with _resolved_lock:
            _resolved = _resolved | {value}
    return value


def _reject_inline_secret(value: Any) -> Any:
    if isinstance(value, str):
        # The value itself is never echoed: it may be a real secret.
        raise PydanticCustomError(
            "inline_secret",
            "secrets are never written in catalog files: reference one with "
            "{env: VARIABLE} or {block: BLOCK_NAME}",
        )
    return value


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a Prefect Secret block."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    block: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # A value already read, from a GameDayEnvironment block. Private attributes are not
    # fields, so no catalog file can ever fill them.
    _held: SecretStr | None = PrivateAttr(None)
    _origin: str = PrivateAttr("")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if self._held is None and (self.env is None) == (self.block is None):
            raise ValueError("give exactly one of 'env' or 'block'")
        return self

    @classmethod
    def held(cls, value: str, origin: str) -> SecretRef:
        """A secret whose value is already known; ``origin`` names where it came from."""
        ref = cls.model_construct()
        _remember(value)
        ref._held = SecretStr(value)
        ref._origin = origin
        return ref

    def describe(self) -> str:
        """Where the secret is read from, without the secret."""
        if self._origin:
            return self._origin
        return f"env:{self.env}" if self.env else f"block:{self.block}"

    def resolve(self) -> str | None:
        """The secret's value, or None when it is not set."""
        if self._held is not None:
            return self._held.get_secret_value()
        if self.env:
            return _remember(os.environ.get(self.env))
        from gameday.secrets import read_block_secret  # Prefect is imported only when needed

        return _remember(read_block_secret(self.block or ""))


SecretField = Annotated[SecretRef, BeforeValidator(_reject_inline_secret)]
