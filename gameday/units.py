"""Durations and comparisons as the catalog writes them (``100ms``, ``30s``, ``<= 350``)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"


def parse_duration(value: Any) -> float:
    """Return seconds for ``100ms``, ``30s``, ``5m``, ``1h`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 100ms, 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _SCALE[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 100ms, 30s, 5m or 1h, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest catalog spelling of a duration (``1.5s``, ``250ms``, ``7m``)."""
    if seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    for unit, scale in (("h", 3600), ("m", 60)):
        if seconds >= scale and seconds % scale == 0:
            return f"{int(seconds // scale)}{unit}"
    return f"{seconds:g}s"


#: Seconds, written in YAML as ``100ms``/``30s``/``5m``/``1h`` or a number of seconds.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "duration: 100ms, 30s, 5m, 1h, or seconds",
        }
    ),
]

Op = Literal["<", "<=", ">", ">=", "==", "!="]
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_comparison(text: str) -> tuple[str, float]:
    """Split ``"<= 350"`` into ``("<=", 350.0)``."""
    match = _COMPARISON.match(text)
    if not match:
        raise ValueError(
            f"expected a comparison like '<= 350' (operators: {', '.join(OPS)}), got {text!r}"
        )
    return match.group(1), float(match.group(2))


def compare(value: float, op: str, threshold: float) -> bool:
    """Whether ``value op threshold`` holds."""
    return OPS[op](value, threshold)
