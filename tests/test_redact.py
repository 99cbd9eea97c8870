"""The one redaction mechanism: by key, in URLs, by value for every secret the kit was handed."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.journal import Journal
from gameday.models import SecretRef
from gameday.notes import ErrorNote
from gameday.redact import (
    REDACTED,
    RedactingFilter,
    redact,
    redact_text,
    remember_secret,
    secret_values,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://u:p@h/db", f"postgresql://u:{REDACTED}@h/db"),
    ("dsn=postgresql://app:p@ss:w0rd@db.internal:5432/x ok",
     f"dsn=postgresql://app:{REDACTED}@db.internal:5432/x ok"),
    ('{"url": "redis://:only-a-password@cache"}', f'{{"url": "redis://:{REDACTED}@cache"}}'),
    ("GET https://api.example/v1?user=me&access_token=abc123def&page=2",
     f"GET https://api.example/v1?user=me&access_token={REDACTED}&page=2"),
    ("Authorization: Bearer eyJhbGciOi.J9x-1", f"Authorization: Bearer {REDACTED}"),
], ids=["dsn", "at-in-password", "empty-user", "query-token", "bearer"])
def test_credentials_inside_text_are_redacted(text: str, expected: str) -> None:
    """URL passwords, secret query parameters and bearer credentials become [redacted]."""
    assert redact_text(text) == expected
    assert redact({"note": [text]}) == {"note": [expected]}


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:9090/api/v1/query?query=up",
    "mail ops@example.com about http://host:8080/x",
    "the bearer of bad news",
    "prometheus https://ops@prom.example/graph",
])
def test_text_without_credentials_is_left_alone(text: str) -> None:
    """Ports, e-mail addresses, a user without password and the word 'bearer' stay as they are."""
    assert redact_text(text) == text


def test_names_containing_webhook_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook_url key is redacted, and so is the value of a *WEBHOOK* variable anywhere."""
    hook = "https://hooks.slack.example/services/T0/B0/webhooksecretpart"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook)
    assert redact({"webhook_url": hook, "channel": "#gd"}) == {"webhook_url": REDACTED,
                                                              "channel": "#gd"}
    assert hook in secret_values()
    assert redact(f"posting to {hook}", secret_values()) == f"posting to {REDACTED}"


def test_secret_ref_values_are_redacted_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value read through a SecretRef is redacted even under an innocent-looking name, and
    after the variable is gone."""
    monkeypatch.setenv("PROFILE_DB", "profiles-dsn-value-7c1e")  # not a secret-looking name
    assert SecretRef(env="PROFILE_DB").resolve() == "profiles-dsn-value-7c1e"
    monkeypatch.delenv("PROFILE_DB")
    assert "profiles-dsn-value-7c1e" in secret_values()
    assert redact({"detail": "db profiles-dsn-value-7c1e down"}) == {
        "detail": f"db {REDACTED} down"}


def test_block_and_held_secrets_are_redacted_by_value() -> None:
    """Values of Prefect Secret blocks, and values held from a block, are remembered too."""
    from gameday.secrets import use_block_reader

    use_block_reader(lambda name: f"block-value-of-{name}")
    try:
        assert SecretRef(block="alertmanager").resolve() == "block-value-of-alertmanager"
    finally:
        use_block_reader(None)
    held = SecretRef.held("held-from-environment-block-93d", "block gd-env (token)")
    assert held.describe() == "block gd-env (token)"
    assert redact_text("a block-value-of-alertmanager b held-from-environment-block-93d") == \
        f"a {REDACTED} b {REDACTED}"


def test_remembered_secrets_share_the_mechanism() -> None:
    """remember_secret() covers any later secret: redact(), secret_values() and log records."""
    headers = "authorization=Basic b3RlbDpvdGVsLXNlY3JldA=="  # OTEL_EXPORTER_OTLP_HEADERS
    remember_secret(f"{headers}\n")  # as read from a file: the stripped value counts too
    remember_secret("short")  # too short to redact without mangling ordinary words
    assert headers in secret_values()
    assert redact(["exporting with " + headers]) == [f"exporting with {REDACTED}"]
    assert redact_text("a short word") == "a short word"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose only handler writes to a buffer through a RedactingFilter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("gameday.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_log_filter_redacts_messages_arguments_and_tracebacks(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Secrets in a record's arguments or its exception never reach the handler's output."""
    logger, stream = captured
    remember_secret("remembered-log-secret-55")
    logger.warning("connecting to %s", "postgresql://app:log-pw-1@db/x")
    try:
        raise RuntimeError("auth failed with remembered-log-secret-55")
    except RuntimeError:
        logger.exception("call failed")
    out = stream.getvalue()
    assert "log-pw-1" not in out and "remembered-log-secret-55" not in out
    assert f"postgresql://app:{REDACTED}@db/x" in out
    assert f"RuntimeError: auth failed with {REDACTED}" in out


def test_log_filter_leaves_clean_records_untouched() -> None:
    """A record with no secret keeps its arguments (formatters that read them still work)."""
    record = logging.LogRecord("gameday", logging.INFO, __file__, 1, "%s %d", ("a", 1), None)
    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("%s %d", ("a", 1))


def test_chaosctl_redacts_logs_through_handlers_set_up_later() -> None:
    """chaosctl installs redaction for the process: a handler configured afterwards (as Prefect
    configures its own on import) gets redacted records too."""
    script = (
        "import logging, sys\n"
        "from gameday.cli import main\n"
        "main(['catalog', 'schema', 'mission'])\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        "logging.getLogger('gameday.x').warning('dsn %s', 'mysql://u:late-pw-9@h/db')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=True)
    assert "late-pw-9" not in done.stderr
    assert f"dsn mysql://u:{REDACTED}@h/db" in done.stderr


SECRET_DSN = "postgresql://gameday:dsn-pass-4f1a@db.internal:5432/profiles"
OTEL_HEADERS = "x-honeycomb-team=otel-key-8b2d9e"


def test_journal_and_postmortem_never_hold_a_url_password_or_remembered_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round trip: journal file, postmortem file and markdown hold neither secret."""
    from gameday.journal import read_journal
    from gameday.report import build_report, observed_from_json, render_markdown, write_report

    remember_secret(OTEL_HEADERS)
    note = ErrorNote(message=f"profile store {SECRET_DSN} refused; exporter {OTEL_HEADERS}")
    journal = Journal(tmp_path / "run.jsonl", fsync=False)
    journal.write(note)
    written = (tmp_path / "run.jsonl").read_text()
    assert "dsn-pass-4f1a" not in written and "otel-key-8b2d9e" not in written
    assert f"postgresql://gameday:{REDACTED}@db.internal" in written

    monkeypatch.setenv("GAMEDAY_HISTORY", str(tmp_path / "history"))
    data = ROOT / "tests" / "report" / "data"
    events = [*read_journal(data / "aborted.journal.jsonl"), note]  # in memory: unredacted
    built = build_report(events, observed=observed_from_json(
        (data / "aborted.observed.json").read_text(encoding="utf-8")))
    path = write_report(built, tmp_path / "out")
    for text in (path.read_text(), render_markdown(built)):
        assert "dsn-pass-4f1a" not in text and "otel-key-8b2d9e" not in text
        assert REDACTED in text


def test_later_secrets_named_in_the_environment_are_redacted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A DSN or OTLP headers variable is a secret by its name, like a token is."""
    monkeypatch.setenv("PROFILE_STORE_DSN", "sqlite:///profiles-4e1b.db")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=otlp-9c3d1a")
    assert redact_text("stores sqlite:///profiles-4e1b.db, sends api-key=otlp-9c3d1a",
                       secret_values()) == f"stores {REDACTED}, sends {REDACTED}"
    assert redact({"dsn": "sqlite:///x.db"}) == {"dsn": REDACTED}
