"""gameday: chaos game days for backend services.

The engine is importable without Prefect; the Prefect layer lives in ``flows/``, ``tasks/``
and ``blocks/`` beside it.
"""

from gameday.errors import (
    CatalogError,
    ConfigError,
    DriverError,
    DriverUnreachable,
    GameDayError,
    GuardError,
    InjectorError,
    JournalError,
    LockError,
    RefusedError,
)

__all__ = [
    "CatalogError",
    "ConfigError",
    "DriverError",
    "DriverUnreachable",
    "GameDayError",
    "GuardError",
    "InjectorError",
    "JournalError",
    "LockError",
    "RefusedError",
]
__version__ = "0.1.0"
