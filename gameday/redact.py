"""Keeping secrets out of what the kit writes: journals, postmortems, chat messages, logs.

Values under secret-looking keys (``token``, ``password``, ``authorization``…) and every
occurrence of a secret-looking environment variable's value become ``[redacted]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"(?i)token|passw(or)?d|secret|api[_-]?key|authorization|credential"
                          r"|cookie|private[_-]?key")
#: Shorter environment values are not treated as secrets: they would redact ordinary words.
_MIN_SECRET_LENGTH = 6


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (``*_TOKEN``, ``*PASSWORD``…)."""
    env = os.environ if environ is None else environ
    return [value for name, value in env.items()
            if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH]


def redact(data: Any, secrets: Iterable[str] = ()) -> Any:
    """``data`` with secret-named keys' values and every occurrence of ``secrets`` replaced."""
    known = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: REDACTED if isinstance(key, str) and _SECRET_NAME.search(key)
                    and node[key] is not None else walk(node[key]) for key in node}
        if isinstance(node, list | tuple):
            return [walk(item) for item in node]
        if isinstance(node, str):
            for secret in known:
                node = node.replace(secret, REDACTED)
        return node

    return walk(data)
