"""Pieces every catalog model shares: the slug type and errors that point at a nested place."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_core import PydanticCustomError

Slug = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="lowercase letters, digits, dashes"),
]


def located(path: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A validation error about ``path`` below the model being validated."""
    return PydanticCustomError("located", "{detail}", {"detail": message, "path": path})
