"""A scenario's ``search:`` entry: which field it probes, and the mistakes it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gameday.cli import main
from gameday.models import Environment, Resolution, Scenario, Search
from gameday.protocol.checks import Request, refusals
from tests.catalog.cases import GOOD_SCENARIO, assert_bad_entry

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday, inside the default window

ABORT_LADDER: dict[str, Any] = {
    "fault": {"kind": "abort", "probability": 0.05},
    "steps": [{"probability": 0.05, "dwell": "10s"}, {"probability": 0.4, "dwell": "10s"}],
}
#: A latency ladder that raises the delay and the share of calls delayed together.
TWO_FIELD_LADDER: dict[str, Any] = {
    "steps": [{"ms": 50, "probability": 0.5, "dwell": "10s"},
              {"ms": 100, "probability": 1.0, "dwell": "10s"}],
}


def scenario(**changes: Any) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(GOOD_SCENARIO) | changes)


def refused(**changes: Any) -> tuple[tuple[str | int, ...], str]:
    """The one error's place and message (a ``located`` error keeps its place in ctx)."""
    with pytest.raises(ValidationError) as caught:
        scenario(**changes)
    (error,) = caught.value.errors()
    where = tuple(error.get("ctx", {}).get("path", ())) or tuple(error["loc"])
    return where, error["msg"]


def environment() -> Environment:
    return Environment.model_validate({
        "name": "demo", "prometheus": {"url": "http://127.0.0.1:9"},
        "allowed_targets": ["user-service"],
        "endpoints": [{"service": "user-service", "dependency": "auth-service",
                       "driver": "proxy", "admin_url": "http://127.0.0.1:9"}]})


# --- valid searches -------------------------------------------------------------------------


def test_defaults() -> None:
    """An empty entry: 5 % of the bracket, the bound as budget, the guards' floor as dwell."""
    s = scenario(search={})
    assert s.search == Search()
    assert s.search is not None
    assert s.search.resolution == Resolution(5.0, relative=True)
    assert (s.search.max_probes, s.search.field, s.search.dwell) == (None, None, None)
    assert s.search_field(s.search) == "ms"


def test_a_duration_resolution_on_a_latency_ladder_searches_ms() -> None:
    s = scenario(search={"resolution": "10ms"})
    assert s.search is not None
    assert s.search.resolution == Resolution(10.0, duration=True)
    assert str(s.search.resolution) == "10ms"
    assert s.search_field(s.search) == "ms"


def test_seconds_are_milliseconds_too() -> None:
    s = scenario(search={"resolution": "0.5s"})
    assert s.search is not None and s.search.resolution == Resolution(500.0, duration=True)


def test_an_abort_ladder_searches_probability() -> None:
    s = scenario(**ABORT_LADDER, search={"resolution": 0.01})
    assert s.search is not None
    assert s.search.resolution == Resolution(0.01)
    assert s.search_field(s.search) == "probability"


def test_naming_the_field_settles_a_two_field_ladder() -> None:
    s = scenario(**TWO_FIELD_LADDER, search={"field": "probability", "max_probes": 3})
    assert s.search is not None and s.search_field(s.search) == "probability"


def test_a_ladder_that_varies_nothing_searches_the_first_magnitude() -> None:
    """A one-step ladder varies no field; the fault kind's first magnitude is searched."""
    s = scenario(steps=[{"ms": 50, "dwell": "10s"}], search={})
    assert s.search is not None and s.search_field(s.search) == "ms"


def test_a_cpu_ladder_searches_workers() -> None:
    s = scenario(target={"service": "user-service"},
                 fault={"kind": "cpu", "load_percent": 50},
                 steps=[{"workers": 1, "dwell": "10s"}, {"workers": 8, "dwell": "10s"}],
                 search={})
    assert s.search is not None and s.search_field(s.search) == "workers"


# --- refusals -------------------------------------------------------------------------------


def test_an_unknown_field_names_the_allowed_ones() -> None:
    where, message = refused(search={"field": "kbps"})
    assert where == ("search", "field")
    assert message == ("'kbps' is not a magnitude of fault kind 'latency' "
                       "(allowed: ms, probability)")


def test_a_field_that_is_no_magnitude_is_refused() -> None:
    """jitter_ms is a step field of latency but not a severity a search can move."""
    where, message = refused(search={"field": "jitter_ms"})
    assert where == ("search", "field") and "(allowed: ms, probability)" in message


def test_a_ladder_varying_two_fields_needs_field() -> None:
    where, message = refused(**TWO_FIELD_LADDER, search={})
    assert where == ("search", "field")
    assert message == ("the ladder varies ms and probability: name the one to search "
                       "(allowed: ms, probability)")


def test_a_duration_resolution_on_a_probability_field_is_refused() -> None:
    where, message = refused(**ABORT_LADDER, search={"resolution": "10ms"})
    assert where == ("search", "resolution")
    assert message == ("10ms is a duration, and 'probability' is in share: give a number or a "
                       "share such as 5%")


@pytest.mark.parametrize("max_probes", [0, 2])
def test_max_probes_below_three_is_refused(max_probes: int) -> None:
    """Two probes are the confirmations: fewer than three leaves no bisection."""
    where, message = refused(search={"max_probes": max_probes})
    assert where == ("search", "max_probes")
    assert "greater than or equal to 3" in message


@pytest.mark.parametrize(("resolution", "words"), [
    (0, "a resolution must be more than 0"),
    ("0ms", "a resolution must be more than 0"),
    (-1, "a resolution must be more than 0"),
    ("-5%", "expected a number in the field's unit"),
    ("abc", "expected a number in the field's unit (2, 0.01), a duration for ms fields (10ms), "
            "or a share of the bracket (5%)"),
    ("100%", "a relative resolution must be under 100%"),
    (True, "expected a number in the field's unit"),
])
def test_bad_resolutions_are_refused(resolution: Any, words: str) -> None:
    where, message = refused(search={"resolution": resolution})
    assert where == ("search", "resolution")
    assert words in message


def test_unknown_search_keys_are_refused() -> None:
    where, _ = refused(search={"resolutoin": "10ms"})
    assert where == ("search", "resolutoin")


# --- through the loader ---------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "line", "field", "words"), [
    # The entry starts on line 13, after GOOD_SCENARIO's twelve lines.
    ("search: {field: kbps}\n", 13, "search.field", "'kbps' is not a magnitude"),
    ("search:\n  resolution: 10ms\n  max_probes: 2\n", 15, "search.max_probes",
     "greater than or equal to 3"),
    ("search:\n  resolution: abc\n", 14, "search.resolution", "got 'abc'"),
])
def test_a_bad_search_entry_names_file_line_and_field(
    entry: str, line: int, field: str, words: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """chaosctl catalog validate exits 2 with file:line, the scenario and the field."""
    assert_bad_entry(entry, line, field, words, tmp_path, capsys)


def test_a_good_search_entry_validates(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The same file with a sound entry passes, so the failures above are the entries'."""
    path = tmp_path / "scenarios" / "s.yaml"
    path.parent.mkdir()
    path.write_text(GOOD_SCENARIO + "search: {resolution: 10ms, max_probes: 6}\n")
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "validate",
                 str(tmp_path)]) == 0, capsys.readouterr().err


# --- the request ----------------------------------------------------------------------------


def test_request_search_is_the_scenarios_own() -> None:
    s = scenario(search={"resolution": "10ms"})
    for asked in (False, True):
        request = Request(s, environment(), "alice", find_breaking_point=asked)
        assert request.search is s.search


def test_request_search_defaults_when_asked_for_on_the_command_line() -> None:
    request = Request(scenario(), environment(), "alice", find_breaking_point=True)
    assert request.search == Search()


def test_request_search_is_none_otherwise() -> None:
    assert Request(scenario(), environment(), "alice").search is None


def test_find_breaking_point_is_refused_when_no_field_can_be_chosen() -> None:
    """--find-breaking-point on a two-field ladder without search: cannot pick a field."""
    s = scenario(**TWO_FIELD_LADDER)
    assert refusals(Request(s, environment(), "alice"), NOW) == []
    found = refusals(Request(s, environment(), "alice", find_breaking_point=True), NOW)
    assert found == [
        "cannot search for a breaking point: the ladder varies ms and probability: name the "
        "one to search (allowed: ms, probability) (add a search: entry with its field to the "
        "scenario)"]


def test_find_breaking_point_on_a_one_field_ladder_is_no_refusal() -> None:
    request = Request(scenario(), environment(), "alice", find_breaking_point=True)
    assert refusals(request, NOW) == []
