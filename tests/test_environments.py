"""Finding an environment: a file path wins, a name asks Prefect only when one is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday import environments
from gameday.errors import CatalogError
from gameday.load import load_one
from gameday.models import Environment, SecretRef

REPO = Path(__file__).resolve().parents[1]


def test_a_file_path_never_asks_for_blocks() -> None:
    """An explicit file is the environment, whatever blocks exist."""
    def boom(name: str) -> None:
        raise AssertionError("looked up a block for a file path")

    path = str(REPO / "catalog" / "environments" / "demo.yaml")
    found = environments.load_environment(path, lookup=boom)
    assert found.name == "demo"


def test_a_name_asks_the_lookup_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored environment wins over the catalog's file of the same name."""
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path))
    stored = environments.load_environment("staging").model_copy(update={"guard_interval": 2.0})
    asked: list[str] = []

    def lookup(name: str) -> Environment:
        asked.append(name)
        return stored

    assert environments.load_environment("staging", lookup=lookup).guard_interval == 2.0
    assert asked == ["staging"]


def test_without_a_stored_one_a_name_is_read_from_files(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """No lookup, or a lookup that finds nothing: the catalog's file."""
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path))
    assert environments.load_environment("staging").prometheus.scrape_interval == 15.0
    found = environments.load_environment("staging", lookup=lambda name: None)
    assert found.prometheus.scrape_interval == 15.0
    with pytest.raises(CatalogError, match="no environment named 'nowhere'"):
        environments.load_environment("nowhere", lookup=lambda name: None)


def test_a_held_secret_never_comes_from_a_file(tmp_path: Path) -> None:
    """Only code holds a secret's value; a file that tries to set one is refused."""
    held = SecretRef.held("s3cret-value", "a block")
    assert held.resolve() == "s3cret-value" and held.describe() == "a block"
    assert "s3cret" not in repr(held)
    text = (REPO / "catalog" / "environments" / "demo.yaml").read_text().replace(
        "token: {env: GAMEDAY_DEMO_TOKEN}", "token: {env: GAMEDAY_DEMO_TOKEN, _held: s3cret-x}", 1)
    path = tmp_path / "env.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError, match="_held: unknown field"):
        load_one(Environment, path)
