"""Alerts as the catalog names them: label matchers, expected alerts, an Alertmanager.

Matchers are written as Alertmanager and PromQL write them, ``{severity=~"page|critical"}``
(the braces may be left out), and mean what Alertmanager means: a regex matches the whole
value, a missing label is the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from gameday.faults import Strict
from gameday.models.secret_refs import SecretField
from gameday.units import Duration

MatchOp = Literal["=", "!=", "=~", "!~"]
_LABEL = r"[A-Za-z_][A-Za-z0-9_]*"
_ONE = re.compile(rf'\s*({_LABEL})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
#: The label the kit's own alerts carry; no silence the kit creates may ever match them.
SAFETY_LABEL = "gameday_safety"
#: Alertmanager's rule for silences: their end may not be further ahead than this.
MAX_SILENCE_LEASE = 300.0
#: Guards the kit adds itself (Alertmanager's incidents, the error budget): names a scenario's
#: own guards may not take.
INCIDENT_GUARD = "incident"
BUDGET_LEFT_GUARD = "error_budget_left"
BURN_RATE_GUARD = "error_budget_burn_rate"
RESERVED_GUARDS = (INCIDENT_GUARD, BUDGET_LEFT_GUARD, BURN_RATE_GUARD)


class Matcher(Strict):
    """One label matcher."""

    name: str = Field(pattern=rf"^{_LABEL}$")
    op: MatchOp = "="
    value: str

    @property
    def regex(self) -> bool:
        """Whether the value is a regular expression."""
        return self.op in ("=~", "!~")

    @property
    def equal(self) -> bool:
        """Whether a match is wanted (``=``, ``=~``) rather than refused."""
        return self.op in ("=", "=~")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` pass this matcher, as Alertmanager decides it."""
        value = labels.get(self.name, "")
        hit = (re.fullmatch(self.value, value) is not None if self.regex
               else value == self.value)
        return hit if self.equal else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matchers(text: str) -> list[Matcher]:
    """``{a="b", c=~"d|e"}`` → matchers; ``ValueError`` naming what is wrong."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError(f"matchers {text!r} open a brace they do not close")
        body = body[1:-1]
    found: list[Matcher] = []
    at = 0
    while at < len(body) and body[at:].strip():
        hit = _ONE.match(body, at)
        if hit is None:
            raise ValueError(f'cannot read matchers {text!r} at {body[at:].strip()!r}: write '
                             'them as {label="value", label=~"regex"} (ops: = != =~ !~)')
        raw = re.sub(r"\\(.)", r"\1", hit.group(3))
        found.append(Matcher(name=hit.group(1), op=hit.group(2), value=raw))
        at = hit.end()
    for matcher in found:
        if matcher.regex:
            try:
                re.compile(matcher.value)
            except re.error as exc:
                raise ValueError(f"matcher {matcher}: not a regular expression: {exc}") from exc
    return found


def _from_text(value: Any) -> Any:
    return parse_matchers(value) if isinstance(value, str) else value


#: Matchers, written as one ``{…}`` string or as a list of ``{name, op, value}``.
Matchers = Annotated[list[Matcher], BeforeValidator(_from_text,
                                                    json_schema_input_type=str | list[Matcher])]


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` pass every matcher."""
    return all(m.matches(labels) for m in matchers)


def show(matchers: list[Matcher]) -> str:
    """Matchers as Alertmanager writes them."""
    return "{" + ", ".join(str(m) for m in matchers) + "}"


class ExpectedAlert(Strict):
    """An alert the scenario is designed to raise: silenced while the run lives."""

    alertname: str = Field(min_length=1)
    matchers: Matchers = Field(default_factory=list,
                               description='more labels it carries, e.g. {service="user-service"}')

    @field_validator("matchers")
    @classmethod
    def _no_safety(cls, value: list[Matcher]) -> list[Matcher]:
        for matcher in value:
            if matcher.name in (SAFETY_LABEL, "alertname"):
                raise ValueError(f"{matcher.name} may not be matched here: alertname has its "
                                 f"own field, and the kit's own {SAFETY_LABEL} alerts are never "
                                 "silenced")
        return value

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` is this expected alert."""
        return labels.get("alertname") == self.alertname and matches_all(self.matchers, labels)


class AlertmanagerSettings(Strict):
    """The environment's Alertmanager: its gate before a run, its silences during one."""

    url: str = Field(pattern=r"^https?://")
    token: SecretField | None = Field(None, description="bearer token, as a secret reference")
    timeout: Duration = Field(3.0, description="per-request timeout")
    incident_matchers: Matchers = Field(
        default_factory=lambda: parse_matchers('{severity=~"page|critical"}'),
        description="a firing alert matching these is an incident: no run starts, and a run "
                    "ends when one begins")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="labels every alert of this environment carries (e.g. {environment: "
                    "staging}); every silence matches them, so it never hides another "
                    "environment's alerts")
    silence_lease: Duration = Field(
        MAX_SILENCE_LEASE, description="a silence ends this long after its run last renewed "
                                       "it; at most 5m, renewed every fifth of it")

    @field_validator("silence_lease")
    @classmethod
    def _short_lease(cls, value: float) -> float:
        if not 5 <= value <= MAX_SILENCE_LEASE:
            raise ValueError("silence_lease must be between 5s and 5m")
        return value

    @property
    def scope(self) -> list[Matcher]:
        """The matchers that keep a query or silence to this environment's alerts."""
        return [Matcher(name=k, op="=", value=v) for k, v in sorted(self.labels.items())]
