"""The Game Day Environment block stores the engine's environment and the secrets it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocks.environment import GameDayEnvironment
from gameday.errors import ConfigError
from gameday.load import load_one
from gameday.models import Environment

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cret-token-value"


def _demo() -> Environment:
    return load_one(Environment, REPO / "catalog" / "environments" / "demo.yaml")


def test_the_block_holds_the_environment_and_its_secrets_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The definition keeps references; the value sits only in the secret dict, by path."""
    monkeypatch.setenv("GAMEDAY_DEMO_TOKEN", SECRET)
    environment = _demo()
    block = GameDayEnvironment.from_environment(environment)
    assert block.definition == environment
    assert SECRET not in block.definition.model_dump_json()
    stored = block.secrets.get_secret_value()
    tokens = [i for i, e in enumerate(environment.endpoints) if e.token is not None]
    assert tokens and set(stored) == {f"endpoints[{i}].token" for i in tokens}
    assert set(stored.values()) == {SECRET}
    assert SECRET not in json.dumps(block.model_dump(mode="json"))


def test_the_block_gives_back_the_engine_model_with_secrets_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Read back, every field is the file's and each token resolves with no variable set."""
    monkeypatch.setenv("GAMEDAY_DEMO_TOKEN", SECRET)
    environment = _demo()
    block = GameDayEnvironment.from_environment(environment)
    monkeypatch.delenv("GAMEDAY_DEMO_TOKEN")
    back = block.environment()
    assert back.model_dump(exclude={"endpoints"}) == environment.model_dump(
        exclude={"endpoints"})
    for before, after in zip(environment.endpoints, back.endpoints, strict=True):
        assert after.model_dump(exclude={"token"}) == before.model_dump(exclude={"token"})
        if before.token is not None:
            assert after.token is not None and after.token.resolve() == SECRET
            assert "block" in after.token.describe()


def test_an_unset_reference_is_refused_by_name_not_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing with the token variable unset names the field and the variable."""
    monkeypatch.delenv("GAMEDAY_DEMO_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.token: env:GAMEDAY_DEMO_TOKEN"):
        GameDayEnvironment.from_environment(_demo())
