"""Whatever YAML arrives, loading yields a catalog or a ``CatalogError``, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gameday.errors import CatalogError
from gameday.load import load_catalog
from tests.catalog.cases import GOOD_SCENARIO

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load(GOOD_SCENARIO)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["10s", "-1s", "1.5", "latency", "> 5", "<= x", "abort"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def mutate(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
    else:
        inner = out.get(path[0])
        out[path[0]] = mutate(inner if isinstance(inner, dict) else {}, path[1:], value)
    return out


FIELDS = [["name"], ["fault"], ["fault", "kind"], ["fault", "ms"], ["steps"], ["guards"],
          ["target"], ["max_duration"], ["trigger"], ["signals"], ["rollback"], ["extra"]]


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenarios" / "s.yaml"
        path.parent.mkdir()
        path.write_text(text)
        try:
            load_catalog([Path(tmp)], signals_from=REPO / "catalog" / "signals.yaml")
        except CatalogError as exc:
            assert exc.problems and all(p.file for p in exc.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), values)
def test_mutated_scenarios_load_or_raise_catalog_error(path: list[str], value: Any) -> None:
    """A scenario with any field replaced by random data loads or gives a CatalogError."""
    check(yaml.safe_dump(mutate(BASE, path, value)))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}#&*!|>'\"\n ,0.9%@`")), max_size=60))
def test_arbitrary_text_loads_or_raises_catalog_error(text: str) -> None:
    """Random text in a catalog file loads or gives a CatalogError."""
    check(text)
