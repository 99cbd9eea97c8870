"""Keeping secrets out of what the kit writes: journals, postmortems, chat messages, logs.

The one redaction mechanism of the kit; every writer goes through :func:`redact` (log records
through :class:`RedactingFilter`). ``[redacted]`` replaces:

* values under secret-looking keys (``token``, ``password``, ``webhook_url``, ``dsn``…), and the
  values of environment variables so named (``OTEL_EXPORTER_OTLP_HEADERS`` too) wherever they
  appear;
* the password of a URL (``postgresql://u:[redacted]@h/db``), secret-looking query parameters
  (``?access_token=[redacted]``) and bearer credentials (``Bearer [redacted]``);
* every occurrence of a known secret, wherever it appears: every value a ``SecretRef``
  resolved or held (environment variables, Prefect Secret blocks, GameDayEnvironment blocks),
  and whatever the process handed to :func:`remember_secret`. A new kind of secret (a database
  DSN, ``OTEL_EXPORTER_OTLP_HEADERS``, Alertmanager credentials) is read through a
  ``SecretRef`` or remembered, and is covered.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"(?i)token|passw(or)?d|secret|api[_-]?key|authorization|credential"
                          r"|cookie|private[_-]?key|webhook|dsn|otlp[_-]?headers")
#: Shorter values are not treated as secrets: they would redact ordinary words.
_MIN_SECRET_LENGTH = 6
# scheme://user:password@host: the password runs to the authority's last "@" (an unescaped
# "@" in a password is common), never past whitespace, quotes or the path.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@\"'<>]*:)([^\s/?#\"'<>]+)@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&][\w.-]*(?:token|passw(?:or)?d|pwd|secret|api[_-]?key|signature)[\w.-]*=)"
    r"[^&#\s\"'<>]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[a-z0-9._~+/-]{8,}=*")

_remembered: frozenset[str] = frozenset()
_remembered_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Redact ``value`` by value from now on, in everything this process writes."""
    global _remembered
    if not value:
        return
    found = {value, value.strip()} - _remembered
    if found:
        with _remembered_lock:
            _remembered = _remembered | found


def remembered_secrets() -> frozenset[str]:
    """Every secret this process was handed: remembered ones and those SecretRefs returned."""
    # Imported here: the models are heavy for a process that only installs the log filter,
    # and they may not import this module (the import contracts forbid it).
    from gameday.models.secret_refs import resolved_secrets

    return _remembered | resolved_secrets()


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Known secrets: values of secret-looking environment variables (``*_TOKEN``,
    ``*PASSWORD``, ``*WEBHOOK*``…) and :func:`remembered_secrets`."""
    env = os.environ if environ is None else environ
    found = {value for name, value in env.items()
             if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH}
    return sorted(found | remembered_secrets())


def redact(data: Any, secrets: Iterable[str] = ()) -> Any:
    """``data`` with secret-named keys' values, URL passwords and every occurrence of
    ``secrets`` and of :func:`remembered_secrets` replaced."""
    known = _longest_first(secrets)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: REDACTED if isinstance(key, str) and _SECRET_NAME.search(key)
                    and node[key] is not None else walk(node[key]) for key in node}
        if isinstance(node, list | tuple):
            return [walk(item) for item in node]
        if isinstance(node, str):
            return _scrub(node, known)
        return node

    return walk(data)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and every known secret (and ``secrets``) replaced."""
    return _scrub(text, _longest_first(secrets))


def _longest_first(secrets: Iterable[str]) -> list[str]:
    # Longest first: a secret that contains another is replaced whole.
    values = set(secrets) | remembered_secrets()
    return sorted({s for s in values if len(s.strip()) >= _MIN_SECRET_LENGTH}, key=len,
                  reverse=True)


def _scrub(text: str, known: list[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Redacts a log record (message, arguments, traceback) before any handler formats it.

    A record with nothing to redact is left as it is; one with a secret has its message
    formatted and its arguments dropped (a formatter that reads ``args`` cannot leak them).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place if it holds a secret; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it as it would have
            return True
        known = _longest_first(secret_values())
        clean = _scrub(message, known)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if (clean := _scrub(text, known)) != text:
                record.exc_text = clean
        elif record.exc_text:
            record.exc_text = _scrub(record.exc_text, known)
        if record.stack_info:
            record.stack_info = _scrub(record.stack_info, known)
        return True


_installed = False


def install_log_redaction() -> None:
    """Redact every log record this process makes from now on, whichever handler takes it.

    The filter runs as records are made (a record factory), not on handlers: handlers set up
    later (Prefect sets up its own when imported) would miss it, and a logger's own filter
    does not see the records that propagate to it from the loggers below.
    """
    global _installed
    with _remembered_lock:
        if _installed:
            return
        _installed = True
    make, scrub = logging.getLogRecordFactory(), RedactingFilter()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        scrub.filter(record)
        return record

    logging.setLogRecordFactory(redacted_record)
