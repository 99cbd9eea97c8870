"""Drivers apply, revert and list faults; ``driver_for`` picks one for an endpoint.

Driver modules are imported only when an endpoint needs them (the Kubernetes client, for one,
is slow to import and unused by most runs).
"""

from __future__ import annotations

import importlib
from typing import Any

from gameday.drivers.base import Driver
from gameday.errors import ConfigError
from gameday.models import Endpoint, Environment
from gameday.records import FaultSpec, Handle, Labels

#: Driver kind → ``module:factory`` taking an ``Endpoint``.
DRIVERS: dict[str, str] = {
    "proxy": "gameday.drivers.proxy:ProxyDriver.from_endpoint",
    "transport": "gameday.drivers.transport:TransportDriver.from_endpoint",
    "chaos_mesh": "gameday.drivers.chaos_mesh:ChaosMeshDriver.from_endpoint",
    "configmap": "gameday.drivers.configmap:ConfigMapDriver.from_endpoint",
    "stress": "gameday.drivers.stress:StressDriver.from_endpoint",
}

__all__ = ["DRIVERS", "Driver", "FaultSpec", "Handle", "Labels", "driver_for"]


#: Kinds whose factory also takes the environment's allowed namespaces (to list faults in all).
NAMESPACED = frozenset({"chaos_mesh", "configmap"})


def driver_for(endpoint: Endpoint, environment: Environment | None = None) -> Driver:
    """The driver for ``endpoint`` (of ``environment``), built from the table above."""
    try:
        reference = DRIVERS[endpoint.driver]
    except KeyError:
        raise ConfigError(f"no driver for kind {endpoint.driver!r} (known: "
                          f"{', '.join(sorted(DRIVERS))})") from None
    module_name, _, attribute = reference.partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    if environment is not None and endpoint.driver in NAMESPACED:
        driver: Driver = factory(endpoint, environment.allowed_namespaces)
    else:
        driver = factory(endpoint)
    return driver
