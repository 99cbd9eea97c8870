"""The one error tree of gameday.

::

    GameDayError
    ├── CatalogError        a catalog, mission or environment file is wrong (user mistake)
    │   └── InputRefused    a file too large, not UTF-8, too deep or expanding past a limit
    ├── ConfigError         a command-line option or setting is wrong (user mistake)
    │   └── MissingExtra    a command needs an optional part of the kit that is not installed
    ├── RefusedError        a run was refused before anything was injected
    ├── InjectorError       the fault injector could not do what it was asked
    │   ├── RuleProblem     a rule input cannot be stored (names the field; also a ValueError)
    │   ├── ParseError      the proxy got a malformed HTTP message (answered with its status)
    │   └── RulesFileError  a transport rules file cannot be used (``reason`` names why)
    ├── DriverError         a driver could not apply, revert or list faults
    │   ├── DriverUnreachable   the driver's endpoint did not answer
    │   └── ChaosSpecError      an object the driver built fails its Chaos Mesh CRD schema
    ├── GuardError          a guard query failed (counts as a breach: guards fail closed)
    ├── LockError           the environment is held by another live game day
    ├── JournalError        a journal line is not a known event
    ├── SinkError           a notice cannot be delivered and another try would not help
    ├── SinkRetry           a sink asks the notifier for another try
    ├── PushError           a push to the Pushgateway failed (the next heartbeat tries again)
    └── DemoError           the demo stack could not be started, inspected or stopped
        ├── DependencyFailed    a demo service's call to a dependency failed
        └── BadRequest          a demo service cannot read a request (answered with its status)

Foreign exceptions (httpx, kubernetes, slack_sdk, Prometheus) are translated into these
where they enter the kit, chained with ``from exc`` so the cause stays visible.

``RuleProblem``, ``ParseError``, ``SinkRetry``, ``DependencyFailed`` and ``BadRequest`` are
caught inside the kit, where they are answered, retried or logged; they sit here all the same,
so that every exception the kit raises is in one tree and ``except GameDayError`` sees them all.
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


class InputRefused(CatalogError):
    """A YAML or JSON file the loader will not read whole: larger, deeper or expanding further
    than its limits, or not UTF-8. Refused before the work it would cost is done.

    ``reason`` is one of ``too_large``, ``not_utf8``, ``too_deep``, ``too_many_nodes``,
    ``alias`` (aliases where none are allowed, or an alias that contains itself).
    """

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__([problem])
        self.reason = reason


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


class RuleProblem(InjectorError, ValueError):
    """A rule input that cannot be stored; ``field`` is its dotted location.

    Also a ``ValueError``, as it was before it joined the tree: callers may catch it as one.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class ParseError(InjectorError):
    """A malformed HTTP message at the proxy; ``status`` is what to answer a client with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RulesFileError(InjectorError):
    """A transport rules file that cannot be used; the transport injects nothing for it.

    ``reason`` labels the failure in ``gameday_transport_rules_errors_total``: ``unreadable``,
    ``syntax``, ``invalid`` (not a rules document), or an :class:`InputRefused` reason.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DriverError(GameDayError):
    """A driver failed to apply, revert or list faults."""


class DriverUnreachable(DriverError):
    """A driver's endpoint (proxy admin API, Kubernetes API, …) did not answer."""


class ChaosSpecError(DriverError):
    """A Chaos Mesh object the driver built fails its CRD schema: the cluster would refuse it.

    Raised before anything is submitted; ``problems`` holds one ``field: reason`` per error.
    """

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{what}: Chaos Mesh would refuse it: {'; '.join(problems)}")


class GuardError(GameDayError):
    """A guard or signal query failed; guards treat this as a breach."""


class LockError(GameDayError):
    """The environment is locked by another game day that is still alive."""

    exit_code = 3


class JournalError(GameDayError):
    """A journal line is valid JSON but not a known event (another version, or a bug)."""


class SinkError(GameDayError):
    """A sink cannot deliver a notice and another try would not help (bad credentials, an
    unknown channel, a rejected payload). The notice is dropped and the drop journaled."""


class SinkRetry(GameDayError):
    """Raised by a sink to ask for another try, after ``after`` seconds if the peer said so.

    The notifier's lane catches it and retries until the notice's deadline; it never reaches
    a caller. Not a ``SinkError``: code that gives up on ``SinkError`` must not catch it.
    """

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class PushError(GameDayError):
    """A push to (or delete from) the Pushgateway did not succeed; the next heartbeat tries
    again, and the run goes on either way."""


class DemoError(GameDayError):
    """The demo stack could not be started, inspected or stopped."""

    exit_code = 2


class DependencyFailed(DemoError):
    """A demo service's call to a dependency failed after its retries, or was refused by its
    breaker; the service answers 502, 503 or 504 for it."""

    def __init__(self, dependency: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{dependency}: {reason}" + (f" {status}" if status else ""))
        self.dependency = dependency
        self.reason = reason
        self.status = status


class BadRequest(DemoError):
    """A demo service cannot read a request; ``status`` is what it answers (400, 411, 413, …)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
