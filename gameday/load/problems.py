"""Validation into models, every pydantic error turned into a Problem at its YAML line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gameday.errors import Problem
from gameday.load.yaml_lines import Document, Path_, child_of, dotted

Model = TypeVar("Model", bound=BaseModel)
_SECRETIVE = re.compile(r"(?i)token|passw|secret|webhook|api[_-]?key|credential|held")


def _fields_at(model: Any, loc: Iterable[str | int]) -> list[str] | None:
    """Field names of the model found at ``loc`` below ``model`` (for "allowed: …")."""
    kind: Any = model
    for part in loc:
        kind = _unwrap(kind)
        origin, args = get_origin(kind), get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif origin in (list, dict):
            kind = args[-1]
        elif origin in (Union, UnionType):
            members = [m for m in args if getattr(m, "model_fields", {}).get("kind") is not None
                       and m.model_fields["kind"].default == part]
            if not members:
                return None
            kind = members[0]
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [f.alias or name for name, f in kind.model_fields.items()]
    return None


def _unwrap(kind: Any) -> Any:
    """Strip ``Annotated`` and ``None`` from a field type."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
            continue
        if get_origin(kind) in (Union, UnionType):
            members = [m for m in get_args(kind) if m is not type(None)]
            if len(members) == 1:
                kind = members[0]
                continue
        return kind


def _problems(exc: ValidationError, doc: Document, base: Path_, entry: str | None,
              model: type[BaseModel]) -> Iterator[Problem]:
    for error in exc.errors(include_url=False):
        loc = (*base, *error["loc"], *error.get("ctx", {}).get("path", ()))
        # Drop discriminator tags and validator names that are not in the YAML.
        shown = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-",
                 "tagged-union", "dict[", "list[", "nullable[")))]
        shown += list(error.get("ctx", {}).get("path", ()))
        shown = _strip_tags(doc, base, shown)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            allowed = _fields_at(model, error["loc"][:-1])
            message = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        # A value under a secret-looking key may be a real secret: never echo it.
        secretive = any(isinstance(p, str) and _SECRETIVE.search(p) for p in error["loc"])
        if not secretive and error["type"] not in {"inline_secret", "located", "missing"} \
                and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
        yield Problem(doc.file, doc.line_of(loc), entry, dotted(shown), message)


def _strip_tags(doc: Document, base: Path_, parts: list[str | int]) -> list[str | int]:
    """Remove union tags (like the ``latency`` in ``fault.latency.ms``) that are not YAML keys."""
    node: Any = doc.data
    for part in base:
        node = child_of(node, part)[1]
    kept: list[str | int] = []
    for part in parts:
        found, child = child_of(node, part)
        if not found and isinstance(node, dict) and node.get("kind") == part:
            continue
        node = child
        kept.append(part)
    return kept


def validate(model: type[Model], data: Any, doc: Document, base: Path_ = (),
             entry: str | None = None) -> tuple[Model | None, list[Problem]]:
    """Validate ``data`` into ``model``; problems point into ``doc``."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, list(_problems(exc, doc, base, entry, model))


def display(path: Path) -> str:
    """How problems name a file: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
