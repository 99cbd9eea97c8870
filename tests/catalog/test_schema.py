"""The JSON Schema accepts the repo's catalog and rejects what JSON Schema can express."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gameday.cli import main
from tests.catalog.cases import CASES, Case

REPO = Path(__file__).resolve().parents[2]


def schema(kind: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["catalog", "schema", kind]) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("kind", ["scenario", "mission", "environment"])
def test_schema_accepts_repo_catalog(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file of the repo's catalog is valid under its kind's JSON Schema."""
    validator = jsonschema.Draft202012Validator(schema(kind, capsys))
    files = sorted((REPO / "catalog" / f"{kind}s").glob("*.yaml"))
    assert files
    for path in files:
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path, [e.message for e in errors])


@pytest.mark.parametrize("case", [c for c in CASES if c.schema_rejects], ids=lambda c: c.id)
def test_schema_rejects_bad_input(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad inputs whose rule JSON Schema can express are rejected by the schema too."""
    kind = case.file.split("/")[0].rstrip("s")
    validator = jsonschema.Draft202012Validator(schema(kind, capsys))
    assert list(validator.iter_errors(yaml.safe_load(case.files[case.file])))
