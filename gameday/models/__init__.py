"""Catalog models: scenario, mission, environment and signal templates (pydantic v2).

Every model forbids unknown fields and is frozen. Errors that concern a nested place carry its
path in the error context (``located``), so the loader can point at the exact YAML line.

The models import nothing of the kit above them (only errors, units, faults and each other;
a secret kept in a Prefect block is read through :mod:`gameday.secrets`, and only when asked),
so every layer may read them. One module per concern:

* :mod:`~gameday.models.targets`: where faults land (``Target``, ``Endpoint``)
* :mod:`~gameday.models.signals`: signals, guards and PromQL templates
* :mod:`~gameday.models.trigger`: when a game day may start
* :mod:`~gameday.models.scenario`: the scenario and its severity ladder
* :mod:`~gameday.models.search`: the breaking-point search a scenario may ask for
* :mod:`~gameday.models.mission`: one planned run
* :mod:`~gameday.models.environment`: where runs happen, and the rules there
* :mod:`~gameday.models.secret_refs`: secrets by reference
"""

from __future__ import annotations

from gameday.models.common import Slug, located
from gameday.models.environment import Environment, Notify, PrometheusSettings, SlackSettings
from gameday.models.mission import Mission
from gameday.models.scenario import STEP_FIELDS, Recovery, Rollback, Scenario, Step
from gameday.models.search import QUANTITIES, Quantity, Resolution, Search
from gameday.models.secret_refs import SecretField, SecretRef
from gameday.models.signals import (
    Guard,
    GuardMap,
    Signal,
    SignalMap,
    SignalTemplate,
    render_query,
)
from gameday.models.targets import DriverKind, Endpoint, Target
from gameday.models.trigger import DAYS, Day, MinLoad, Trigger, Window

__all__ = [
    "DAYS",
    "QUANTITIES",
    "STEP_FIELDS",
    "Day",
    "DriverKind",
    "Endpoint",
    "Environment",
    "Guard",
    "GuardMap",
    "MinLoad",
    "Mission",
    "Notify",
    "PrometheusSettings",
    "Quantity",
    "Recovery",
    "Resolution",
    "Rollback",
    "Scenario",
    "Search",
    "SecretField",
    "SecretRef",
    "Signal",
    "SignalMap",
    "SignalTemplate",
    "SlackSettings",
    "Slug",
    "Step",
    "Target",
    "Trigger",
    "Window",
    "located",
    "render_query",
]
