"""Optional parts of the kit, and the Prefect layer that runs from a checkout.

The bare ``pip install gameday`` is the injector and the catalog; everything else is an extra
(see ``pyproject.toml``). A command that needs a missing extra says which pip line installs it
instead of failing with an ``ImportError`` deep inside.

The Prefect layer (``flows/``, ``tasks/``, ``blocks/``, ``orchestration/``) is not installed
into site-packages: top-level packages with such plain names would shadow a service's own
modules. Prefect runs it from the checkout (``prefect.yaml`` sets the working directory), and
``chaosctl`` finds the checkout the same way and imports from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from gameday.errors import ConfigError, MissingExtra

#: Extra → the modules it brings (the first one missing is named in the error).
EXTRAS: dict[str, tuple[str, ...]] = {
    "prefect": ("prefect", "prometheus_api_client", "jinja2"),
    "kubernetes": ("kubernetes", "jsonschema"),
    "slack": ("slack_sdk",),
    "charts": ("matplotlib",),
    "otel": ("opentelemetry.sdk",),
    "demo": ("starlette", "uvicorn", "asyncpg", "redis"),
}

#: The folders of the Prefect layer, beside the engine in a checkout.
PREFECT_LAYER = ("flows", "tasks", "blocks", "orchestration")


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed, or None."""
    return next((name for name in EXTRAS[extra] if not module_found(name)), None)


def module_found(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:  # a dotted name imports its parent first, which may be missing as well
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def installed(extra: str) -> bool:
    """Whether every module of ``extra`` can be imported."""
    return missing(extra) is None


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` (exit 2, with the pip line) unless ``extra`` is installed."""
    absent = missing(extra)
    if absent is not None:
        raise MissingExtra(what, extra, absent)


def checkout() -> Path:
    """The gameday checkout that holds the Prefect layer.

    ``$GAMEDAY_PROJECT``, else the working directory or one of its parents, else the folder
    above an editable install of the engine: the first with ``prefect.yaml`` and ``flows/``.
    """
    if explicit := os.environ.get("GAMEDAY_PROJECT"):
        root = Path(explicit)
        if not _is_checkout(root):
            raise ConfigError(f"GAMEDAY_PROJECT={explicit} is not a gameday checkout "
                              "(no prefect.yaml with flows/ beside it)")
        return root.resolve()
    cwd = Path.cwd()
    for candidate in (cwd, *cwd.parents, Path(__file__).resolve().parents[1]):
        if _is_checkout(candidate):
            return candidate.resolve()
    raise ConfigError("this command runs the Prefect layer (flows/, tasks/, blocks/, "
                      "orchestration/) from a gameday checkout: run it inside the checkout or "
                      "set GAMEDAY_PROJECT to its folder")


def prefect_layer(module: str, what: str) -> ModuleType:
    """Import ``module`` of the Prefect layer (e.g. ``flows.game_day``) from the checkout."""
    require("prefect", what)
    root = str(checkout())
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(module)


def _is_checkout(folder: Path) -> bool:
    return (folder / "prefect.yaml").is_file() and (folder / "flows").is_dir()
