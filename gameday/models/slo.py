"""A service level objective and the error budget rules a game day keeps under it.

The SLO is a ratio of good to total events, both PromQL with a ``{range}`` placeholder the
kit fills with the window it asks about: the SLO's ``window`` for the budget left, the
``burn_window`` for the burn rate. The budget left is the share of allowed errors not yet
spent: ``1 − (1 − good/total) / (1 − objective)``; the burn rate is how many times faster than
allowed it is being spent: ``(1 − good/total over burn_window) / (1 − objective)``.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from gameday.faults import Strict
from gameday.units import Duration


def _range(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


class SLO(Strict):
    """An objective, and how much of its budget a game day may spend."""

    good: str = Field(min_length=1, description="PromQL of good events over [{range}]")
    total: str = Field(min_length=1, description="PromQL of all events over [{range}]")
    objective: float = Field(gt=0, lt=1, description="share of good events promised, e.g. 0.99")
    window: Duration = Field(description="the SLO's window, e.g. 28d")
    min_budget_left: float = Field(
        0.25, ge=0, lt=1, description="refuse, and stop a run, with less of the budget left")
    burn_window: Duration | None = Field(
        None, description="range of the burn-rate guard, e.g. 5m; with max_burn_rate")
    max_burn_rate: float | None = Field(
        None, gt=0, description="stop a run that spends the budget this many times faster "
                                "than the objective allows")

    @field_validator("good", "total")
    @classmethod
    def _has_range(cls, value: str) -> str:
        if "{range}" not in value:
            raise ValueError("must contain the {range} placeholder, e.g. "
                             "sum(increase(requests_total[{range}]))")
        return value

    @field_validator("window", "burn_window")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _burn_pair(self) -> SLO:
        if (self.burn_window is None) != (self.max_burn_rate is None):
            raise ValueError("burn_window and max_burn_rate go together: give both or neither")
        return self

    def ratio(self, seconds: float) -> str:
        """PromQL of the good share over the last ``seconds``."""
        window = _range(seconds)
        return (f"({self.good.replace('{range}', window)}) / "
                f"({self.total.replace('{range}', window)})")

    def budget_left_query(self) -> str:
        """PromQL of the budget left over the SLO window, 1 = untouched, ≤ 0 = spent."""
        return f"1 - (1 - {self.ratio(self.window)}) / {1 - self.objective:.10g}"

    def burn_rate_query(self) -> str | None:
        """PromQL of the burn rate over ``burn_window``; None without one."""
        if self.burn_window is None:
            return None
        return f"(1 - {self.ratio(self.burn_window)}) / {1 - self.objective:.10g}"
