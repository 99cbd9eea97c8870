"""The breaking-point bisection, pure: simulated targets that break past a threshold."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gameday.models import Resolution
from gameday.protocol.bisect import Judge, Judgement, Plan, Probe, Result, bisect, conflict
from gameday.search_events import Axis, Bracket, Purpose

LATENCY = Axis("ms", "ms")
SHARE = Axis("probability", "share")
BANDWIDTH = Axis("kbps", "kbps", worse_up=False)
WORKERS = Axis("workers", "workers", integer=True)
MEMORY = Axis("mb", "MB", integer=True)
LOAD = Axis("load_percent", "%")
#: A TCP timeout closes the connection after ``ms``: fewer is more severe.
TCP_TIMEOUT = Axis("ms", "ms", worse_up=False)


@dataclass
class Target:
    """A simulated service: it breaks where ``breaks`` says, and remembers what it was asked."""

    breaks: Callable[[float], bool]
    #: Overrides by probe number, to play a flaky or blind service.
    answers: dict[int, Judgement] = field(default_factory=dict)
    asked: list[tuple[int, float, Purpose]] = field(default_factory=list)

    async def judge(self, number: int, value: float, purpose: Purpose) -> Judgement:
        self.asked.append((number, value, purpose))
        if number in self.answers:
            return self.answers[number]
        return Judgement("broken" if self.breaks(value) else "held", f"at {value:g}")


def run(plan: Plan, judge: Judge, room: Callable[[], str | None] = lambda: None) -> Result:
    return asyncio.run(bisect(plan, judge, room))


def expected_midpoint(axis: Axis, held: float, broken: float) -> float:
    # Computed here rather than with Axis.midpoint, so a wrong midpoint there shows.
    if axis.integer:
        return float(math.floor((held + broken) / 2))
    return (held + broken) / 2


def assert_sound(result: Result, breaks: Callable[[float], bool]) -> None:
    """Every bisection probe at the bracket's midpoint, then both ends confirmed, and the final
    bracket around the threshold, as narrow as asked."""
    plan, axis = result.plan, result.plan.axis
    held, broken = plan.start.held, plan.start.broken
    bisections = result.probes[:-2]
    for probe in bisections:
        assert probe.purpose == "bisect"
        assert probe.value == expected_midpoint(axis, held, broken), (probe, held, broken)
        if probe.verdict == "held":
            held = probe.value
        else:
            broken = probe.value
    confirm_held, confirm_broken = result.probes[-2:]
    assert (confirm_held.purpose, confirm_held.value) == ("confirm_held", held)
    assert (confirm_broken.purpose, confirm_broken.value) == ("confirm_broken", broken)
    assert result.bracket == Bracket(held, broken)
    assert not breaks(held) and breaks(broken)
    if axis.integer:
        assert result.bracket.width <= max(plan.resolution, 1.0)
    else:
        assert result.bracket.width <= plan.resolution
    assert [p.number for p in result.probes] == list(range(1, len(result.probes) + 1))
    assert len(result.probes) <= plan.bound
    assert result.confirmed and result.monotone and result.conflict is None
    assert result.stopped.startswith("resolution reached"), result.stopped
    assert "not" not in result.text


@dataclass(frozen=True)
class Case:
    id: str
    axis: Axis
    start: Bracket
    resolution: float
    breaks: Callable[[float], bool]
    #: Bisections plus the two confirmations, worked out by hand in the comment of each case.
    probes: int


def five_percent(held: float, broken: float, integer: bool = False) -> float:
    return Resolution(5, relative=True).absolute(held, broken, integer)


CASES = [
    # 130 ms / 10 ms = 13: four halvings (8.1 ms), two confirmations.
    Case("latency-ms", LATENCY, Bracket(120, 250), 10, lambda v: v >= 183, 6),
    # 35 hundredths: six halvings (0.55 %).
    Case("abort-probability-0.01", SHARE, Bracket(0.05, 0.4), 0.01, lambda v: v >= 0.17, 8),
    # 5 % of 0.05 is 0.0025; 0.35 / 0.0025 = 140: eight halvings.
    Case("reset-probability-5%", SHARE, Bracket(0.05, 0.4), five_percent(0.05, 0.4),
         lambda v: v >= 0.31, 10),
    # Downward: 5 % of 50 kbps is 2.5; 950 / 2.5 = 380: nine halvings.
    Case("bandwidth-kbps", BANDWIDTH, Bracket(1000, 50), five_percent(1000, 50),
         lambda v: v < 180, 11),
    # Whole workers: 4 held, 6 broke, 5 broke, and 4/5 are adjacent.
    Case("cpu-workers", WORKERS, Bracket(1, 8), five_percent(1, 8, integer=True),
         lambda v: v >= 5, 5),
    # 448 MB / 16 MB = 28: five halvings, of whole megabytes.
    Case("memory-mb-16", MEMORY, Bracket(64, 512), 16, lambda v: v >= 300, 7),
    # To the megabyte: 448 needs nine halvings, ending on adjacent values.
    Case("memory-mb-1", MEMORY, Bracket(64, 512), 1, lambda v: v >= 300, 11),
    # 5 % of 20 is 1 point; 70 / 1: seven halvings.
    Case("load-percent", LOAD, Bracket(20, 90), five_percent(20, 90), lambda v: v >= 63, 9),
    # TCP latency from no fault at all (held end 0): 400 / 10 = 40, six halvings.
    Case("tcp-latency-ms", LATENCY, Bracket(0, 400), 10, lambda v: v >= 255, 8),
    # A TCP timeout is worse the shorter it is: 1900 / 10 = 190, eight halvings.
    Case("tcp-timeout-ms", TCP_TIMEOUT, Bracket(2000, 100), 10, lambda v: v < 450, 10),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bisection_brackets_the_threshold(case: Case) -> None:
    """For every kind of magnitude, the search ends on a confirmed bracket around the point
    where the simulated target breaks, in exactly the probes bisection needs."""
    plan = Plan(case.axis, case.start, case.resolution)
    target = Target(case.breaks)
    result = run(plan, target.judge)
    assert_sound(result, case.breaks)
    assert len(result.probes) == case.probes
    assert [(n, v, p) for n, v, p in target.asked] == [
        (p.number, p.value, p.purpose) for p in result.probes]


def test_float_bisection_uses_exactly_the_bound() -> None:
    """Halving a real-valued bracket never finishes early: the bound is the probe count."""
    for case in CASES:
        if not case.axis.integer:
            assert Plan(case.axis, case.start, case.resolution).bound == case.probes, case.id


def test_workers_end_on_the_adjacent_pair() -> None:
    """Whole workers breaking at 5 end exactly between 4 and 5, in the unit's words."""
    result = run(Plan(WORKERS, Bracket(1, 8), 1.0), Target(lambda v: v >= 5).judge)
    assert result.bracket == Bracket(4, 5)
    assert [p.value for p in result.probes] == [4, 6, 5, 4, 5]
    assert result.text == "holds at 4 workers, breaks at 5 workers"


def test_integer_search_may_need_fewer_probes_than_the_bound() -> None:
    """Whole numbers run out of midpoints before the bound: breaking at 2 of 1..8 takes two
    bisections (4, 2) where the bound allows three."""
    result = run(Plan(WORKERS, Bracket(1, 8), 1.0), Target(lambda v: v >= 2).judge)
    assert result.plan.bound == 5
    assert [p.value for p in result.probes] == [4, 2, 1, 2]
    assert result.bracket == Bracket(1, 2) and result.confirmed


def test_latency_probes_in_order() -> None:
    """The 120..250 ms search probes 185, 152.5, 168.75, 176.875, then both ends again."""
    result = run(Plan(LATENCY, Bracket(120, 250), 10), Target(lambda v: v >= 183).judge)
    assert [(p.value, p.purpose, p.verdict) for p in result.probes] == [
        (185, "bisect", "broken"), (152.5, "bisect", "held"), (168.75, "bisect", "held"),
        (176.875, "bisect", "held"), (176.875, "confirm_held", "held"),
        (185, "confirm_broken", "broken")]
    assert result.probes[0].detail == "at 185"  # the judge's words are kept
    assert result.text == "holds at 176.9 ms, breaks at 185 ms"
    assert result.stopped == "resolution reached (8.125 ms wide, asked 10 ms)"


def test_bandwidth_is_searched_downward() -> None:
    """Fewer kbps is worse: the first probe halves 1000..50, and each end moves toward 180."""
    result = run(Plan(BANDWIDTH, Bracket(1000, 50), 2.5), Target(lambda v: v < 180).judge)
    assert [p.value for p in result.probes[:3]] == [525, 287.5, 168.75]
    assert result.bracket.held > 180 > result.bracket.broken


# --- not monotone ---------------------------------------------------------------------------


def test_a_confirmation_that_breaks_at_the_held_end_is_a_conflict() -> None:
    """176.875 ms held as a bisection probe and broke when confirmed: both named."""
    target = Target(lambda v: v >= 183, answers={5: Judgement("broken", "flaky")})
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge)
    assert result.conflict == "held at 176.9 ms (probe 4) but broke at 176.9 ms (probe 5)"
    assert not result.monotone and not result.confirmed
    assert "not monotone: held at 176.9 ms (probe 4) but broke at 176.9 ms (probe 5)" \
        in result.text
    # The other end is still confirmed: the answer shows whether both ends were flaky.
    assert result.probes[-1].purpose == "confirm_broken"


def test_a_confirmation_that_holds_at_the_broken_end_is_a_conflict() -> None:
    """185 ms broke as a bisection probe and held when confirmed."""
    target = Target(lambda v: v >= 183, answers={6: Judgement("held")})
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge)
    assert result.conflict == "held at 185 ms (probe 6) but broke at 185 ms (probe 1)"
    assert "not monotone" in result.text and not result.confirmed


def test_holding_at_the_ladders_broken_value_is_a_conflict() -> None:
    """A target that never breaks contradicts the ladder's own broken step."""
    result = run(Plan(LATENCY, Bracket(120, 250), 10), Target(lambda v: False).judge)
    assert result.conflict == "held at 250 ms (probe 6) but broke at 250 ms (the ladder)"
    assert "not monotone" in result.text


def test_holding_above_a_value_that_broke_is_a_conflict() -> None:
    """Bisection alone never probes above a broken value, so the probes are given: 200 ms held
    after 185 ms broke."""
    plan = Plan(LATENCY, Bracket(120, 250), 10)
    probes = [Probe(1, 185, "bisect", "broken"), Probe(2, 200, "bisect", "held")]
    assert conflict(plan, probes) == "held at 200 ms (probe 2) but broke at 185 ms (probe 1)"
    assert conflict(plan, probes[:1]) is None


def test_bandwidth_conflict_compares_downward() -> None:
    """For kbps, holding at 100 after 150 broke is the conflict; holding at 200 is not."""
    plan = Plan(BANDWIDTH, Bracket(1000, 50), 2.5)
    broke = Probe(1, 150, "bisect", "broken")
    assert conflict(plan, [broke, Probe(2, 200, "bisect", "held")]) is None
    assert conflict(plan, [broke, Probe(2, 100, "bisect", "held")]) == (
        "held at 100 kbps (probe 2) but broke at 150 kbps (probe 1)")


# --- stopping early -------------------------------------------------------------------------


def test_an_unjudged_probe_ends_the_search_at_once() -> None:
    """Probe 3 cannot be judged: no further probe, the bracket of probes 1 and 2 stands."""
    target = Target(lambda v: v >= 183,
                    answers={3: Judgement("unjudged", "guard latency_p99_ms: no_data")})
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge)
    assert len(target.asked) == 3
    assert result.stopped == "probe 3 could not be judged: guard latency_p99_ms: no_data"
    assert result.bracket == Bracket(152.5, 185)
    assert not result.confirmed and result.monotone
    assert result.text == ("holds at 152.5 ms, breaks at 185 ms (not confirmed: probe 3 could "
                           "not be judged: guard latency_p99_ms: no_data)")


def test_an_unjudged_confirmation_ends_the_search_unconfirmed() -> None:
    """The held end's confirmation cannot be judged: the broken end is not probed again."""
    target = Target(lambda v: v >= 183, answers={5: Judgement("unjudged", "stale")})
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge)
    assert [p.purpose for p in result.probes][-1] == "confirm_held"
    assert result.stopped == "probe 5 could not be judged: stale"
    assert not result.confirmed


def test_a_judgement_with_end_stops_after_its_probe() -> None:
    """A probe judged held, whose target did not recover, still moves the bracket, and is the
    last."""
    end = "the signals did not return to the baseline after probe 2"
    target = Target(lambda v: v >= 183, answers={2: Judgement("held", "ok", end=end)})
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge)
    assert len(target.asked) == 2
    assert result.stopped == end
    assert result.bracket == Bracket(152.5, 185)
    assert not result.confirmed
    assert result.text.endswith(f"(not confirmed: {end})")


def test_no_room_stops_before_the_next_probe() -> None:
    """Asked before every probe; once it names a reason, no probe is started."""
    calls: list[int] = []

    def room() -> str | None:
        calls.append(1)
        return "max_duration 360s reached" if len(calls) > 2 else None

    target = Target(lambda v: v >= 183)
    result = run(Plan(LATENCY, Bracket(120, 250), 10), target.judge, room)
    assert len(calls) == 3 and len(target.asked) == 2
    assert result.stopped == "max_duration 360s reached"
    assert result.bracket == Bracket(152.5, 185) and not result.confirmed


@pytest.mark.parametrize(("max_probes", "bisections"), [(3, 1), (4, 2), (5, 3)])
def test_a_small_budget_keeps_two_probes_for_the_confirmations(
    max_probes: int, bisections: int
) -> None:
    """Below the bound of 6, the bisections give way so both ends are still confirmed."""
    plan = Plan(LATENCY, Bracket(120, 250), 10, max_probes=max_probes)
    assert plan.bound == 6 and plan.budget == max_probes
    result = run(plan, Target(lambda v: v >= 183).judge)
    assert [p.purpose for p in result.probes] == [
        "bisect"] * bisections + ["confirm_held", "confirm_broken"]
    assert result.confirmed
    assert result.stopped == f"probe budget spent ({bisections} bisections and 2 confirmations)"
    assert result.bracket.width > plan.resolution


def test_a_budget_above_the_bound_is_capped() -> None:
    """max_probes never buys probes past what bisection needs."""
    assert Plan(LATENCY, Bracket(120, 250), 10, max_probes=30).budget == 6


def test_a_range_narrower_than_the_resolution_only_confirms() -> None:
    """120..125 ms at 10 ms: nothing to bisect, both ends probed once more."""
    plan = Plan(LATENCY, Bracket(120, 125), 10)
    assert plan.bound == 2
    result = run(plan, Target(lambda v: v >= 123).judge)
    assert [(p.value, p.purpose) for p in result.probes] == [
        (120, "confirm_held"), (125, "confirm_broken")]
    assert result.confirmed
    assert result.stopped == "resolution reached (5 ms wide, asked 10 ms)"


def test_adjacent_integers_only_confirm() -> None:
    """4 and 5 workers have no whole number between them."""
    result = run(Plan(WORKERS, Bracket(4, 5), 1.0), Target(lambda v: v >= 5).judge)
    assert [p.purpose for p in result.probes] == ["confirm_held", "confirm_broken"]


@pytest.mark.parametrize(("width", "resolution", "bound"), [
    (80, 10, 5),  # exactly 2³: three halvings reach 10
    (81, 10, 6),  # just past it: a fourth
    (10, 10, 2),
    (0.35, 0.0025, 10),
])
def test_bound(width: float, resolution: float, bound: int) -> None:
    """ceil(log2(range / resolution)) + 2."""
    assert Plan(LATENCY, Bracket(0, width), resolution).bound == bound


def test_a_power_of_two_ratio_with_float_noise_reaches_the_resolution() -> None:
    """0.05..0.37 at 0.01 is 32 hundredths: five halvings, as the bound says, should end with
    the resolution reached."""
    plan = Plan(SHARE, Bracket(0.05, 0.37), 0.01)
    result = run(plan, Target(lambda v: v >= 0.2).judge)
    assert result.stopped.startswith("resolution reached"), result.stopped


# --- words and units ------------------------------------------------------------------------


def test_bracket_text() -> None:
    assert Bracket(178, 190).text(LATENCY) == "holds at 178 ms, breaks at 190 ms"
    assert Bracket(0.125, 0.15).text(SHARE) == "holds at 12.5 %, breaks at 15 %"
    assert Bracket(512, 256).text(BANDWIDTH) == "holds at 512 kbps, breaks at 256 kbps"


@pytest.mark.parametrize(("axis", "value", "text"), [
    (SHARE, 0.125, "12.5 %"),
    (SHARE, 0.05, "5 %"),
    (WORKERS, 3.0, "3 workers"),
    (MEMORY, 512.0, "512 MB"),
    (LATENCY, 176.875, "176.9 ms"),
    (LOAD, 62.5, "62.5 %"),
])
def test_axis_text(axis: Axis, value: float, text: str) -> None:
    assert axis.text(value) == text


@pytest.mark.parametrize(("axis", "milder", "worse"), [
    (LATENCY, Bracket(100, 150), Bracket(150, 200)),
    (BANDWIDTH, Bracket(1000, 500), Bracket(500, 100)),
])
def test_bracket_below(axis: Axis, milder: Bracket, worse: Bracket) -> None:
    """A bracket that breaks where the other still held lies below it, not the reverse; two
    overlapping brackets lie below neither."""
    assert milder.below(worse, axis)
    assert not worse.below(milder, axis)
    overlapping = Bracket((milder.held + milder.broken) / 2, (worse.held + worse.broken) / 2)
    assert not milder.below(overlapping, axis)
    assert not overlapping.below(milder, axis)


@pytest.mark.parametrize(("held", "broken", "integer", "width"), [
    (120, 250, False, 6.0),  # 5 % of the smaller end
    (1000, 50, False, 2.5),  # downward: still the smaller end
    (0, 250, False, 12.5),  # a held end of no fault does not count
    (1, 8, True, 1.0),  # never finer than one whole thing
    (0, 0, False, 0.0),
])
def test_relative_resolution_is_of_the_smaller_non_zero_end(
    held: float, broken: float, integer: bool, width: float
) -> None:
    assert Resolution(5, relative=True).absolute(held, broken, integer) == pytest.approx(width)


def test_absolute_resolution_ignores_the_ends() -> None:
    assert Resolution(0.01).absolute(0.05, 0.4, False) == 0.01
    assert Resolution(16).absolute(64, 512, True) == 16
    assert Resolution(0.5).absolute(1, 8, True) == 1.0

