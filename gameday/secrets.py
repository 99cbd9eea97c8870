"""Reading secrets that an environment names by reference to a Prefect Secret block.

The engine does not import Prefect: the Prefect layer hands its reader in with
:func:`use_block_reader` when it is loaded (``blocks/__init__.py``). Without it a
``{block: NAME}`` reference cannot be read, and says how to make it readable.
"""

from __future__ import annotations

from collections.abc import Callable

from gameday.errors import ConfigError

_reader: Callable[[str], str] | None = None


def use_block_reader(reader: Callable[[str], str] | None) -> None:
    """Read ``{block: NAME}`` secrets with ``reader`` (None: refuse them again)."""
    global _reader
    _reader = reader


def read_block_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name``."""
    if _reader is None:
        raise ConfigError(f"secret block {name!r}: Secret blocks are read by the Prefect layer "
                          "(pip install 'gameday[prefect]' and run from the gameday checkout), "
                          "or reference the secret as {env: VARIABLE}")
    return _reader(name)
