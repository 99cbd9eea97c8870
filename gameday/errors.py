"""The one error tree of gameday.

::

    GameDayError
    ├── CatalogError        a catalog, mission or environment file is wrong (user mistake)
    ├── ConfigError         a command-line option or setting is wrong (user mistake)
    │   └── MissingExtra    a command needs an optional part of the kit that is not installed
    ├── RefusedError        a run was refused before anything was injected
    ├── InjectorError       the fault injector could not do what it was asked
    ├── DriverError         a driver could not apply, revert or list faults
    │   └── DriverUnreachable   the driver's endpoint did not answer
    ├── GuardError          a guard query failed (counts as a breach: guards fail closed)
    ├── LockError           the environment is held by another live game day
    ├── JournalError        a journal line is not a known event
    └── DemoError           the demo stack could not be started, inspected or stopped

Foreign exceptions (httpx, kubernetes, slack_sdk, Prometheus) are translated into these
where they enter the kit, chained with ``from exc`` so the cause stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass


class GameDayError(Exception):
    """Base of every error the kit raises on purpose."""

    #: Process exit code the command line uses for this error.
    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one place in one file."""

    file: str
    line: int | None
    entry: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        entry = f" {self.entry}:" if self.entry else ""
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{entry}{field} {self.message}"


class CatalogError(GameDayError):
    """One or more catalog, mission or environment files are invalid.

    Carries every problem found, across all files, so a user fixes them in one pass.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the catalog:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class ConfigError(GameDayError):
    """A command-line option, setting or reference is wrong."""

    exit_code = 2


class MissingExtra(ConfigError):
    """A command needs an extra of the kit (``gameday[prefect]``, …) that is not installed."""

    def __init__(self, what: str, extra: str, missing: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs gameday[{extra}] ({missing} is not installed): "
                         f"pip install 'gameday[{extra}]'")


class RefusedError(GameDayError):
    """A game day was refused by its checks; nothing was injected."""

    exit_code = 3


class InjectorError(GameDayError):
    """The fault injector (proxy or transport) could not do what it was asked."""


class DriverError(GameDayError):
    """A driver failed to apply, revert or list faults."""


class DriverUnreachable(DriverError):
    """A driver's endpoint (proxy admin API, Kubernetes API, …) did not answer."""


class GuardError(GameDayError):
    """A guard or signal query failed; guards treat this as a breach."""


class LockError(GameDayError):
    """The environment is locked by another game day that is still alive."""

    exit_code = 3


class JournalError(GameDayError):
    """A journal line is valid JSON but not a known event (another version, or a bug)."""


class DemoError(GameDayError):
    """The demo stack could not be started, inspected or stopped."""

    exit_code = 2
