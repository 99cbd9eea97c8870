"""What a game day measures: expected signals, guards, and the PromQL templates behind them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from gameday.faults import Strict
from gameday.models.targets import Target
from gameday.units import Duration, Op, compare, parse_comparison


def _shorthand(value: Any) -> Any:
    """``"<= 350"`` or ``"> 5 for 10s"`` → a mapping with op/threshold(/for)."""
    if not isinstance(value, str):
        return value
    text, _, hold = value.partition(" for ")
    op, threshold = parse_comparison(text)
    return {"op": op, "threshold": threshold} | ({"for": hold.strip()} if hold else {})


class Signal(Strict):
    """Expected behaviour (the hypothesis): holds when ``value op threshold``."""

    query: str | None = Field(None, description="raw PromQL; omit to use the signal template")
    op: Op
    threshold: float
    unit: str | None = None

    def holds(self, value: float) -> bool:
        """Whether the observed value meets the expectation."""
        return compare(value, self.op, self.threshold)


class Guard(Strict):
    """A safety stop: breached when ``value op threshold`` holds for ``for``."""

    model_config = Strict.model_config | {"populate_by_name": True}
    query: str | None = Field(None, description="raw PromQL; omit to use the signal template")
    op: Op
    threshold: float
    for_: Duration = Field(0.0, alias="for", description="breach only if it lasts this long")
    on_no_data: Literal["breach", "ignore"] = Field(
        "breach", description="no data, stale data or query errors count as a breach by default"
    )
    unit: str | None = None


# The shorthand spellings, for the JSON Schema editors use.
_COMPARE = r"^\s*(<=|>=|==|!=|<|>)\s*-?\d+(\.\d+)?\s*"
_SIGNAL_TEXT = Annotated[str, Field(pattern=_COMPARE + "$")]
_GUARD_TEXT = Annotated[str, Field(pattern=_COMPARE + r"( for \s*\d+(\.\d+)?(ms|s|m|h))?\s*$")]
SignalMap = dict[
    str,
    Annotated[Signal, BeforeValidator(_shorthand, json_schema_input_type=Signal | _SIGNAL_TEXT)],
]
GuardMap = dict[
    str, Annotated[Guard, BeforeValidator(_shorthand, json_schema_input_type=Guard | _GUARD_TEXT)]
]


class SignalTemplate(Strict):
    """A named PromQL expression with ``{service}``/``{dependency}`` placeholders."""

    query: str = Field(min_length=1)
    unit: str | None = None
    description: str | None = None

    def render(self, target: Target, window: str = "1m") -> str:
        """The query for one target."""
        return render_query(self.query, target, window)


_PLACEHOLDER = re.compile(r"\{(service|dependency|window)\}")


def render_query(query: str, target: Target, window: str = "1m") -> str:
    """Fill ``{service}``, ``{dependency}`` and ``{window}`` (a PromQL range such as ``10s``).

    Other braces are PromQL's label matchers and stay as they are.
    """
    values = {"service": target.service, "dependency": target.dependency or "", "window": window}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)
