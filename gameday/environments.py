"""Finding an environment by name or path.

Order: an explicit file path; the state folder's ``<name>/environment.yaml`` (written by tools
such as ``chaosctl demo up``, with the ports they picked); the catalog's
``environments/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from gameday.errors import CatalogError, Problem
from gameday.load import catalog_root, load_one
from gameday.models import Environment
from gameday.paths import state_dir


def environment_file(name_or_path: str, catalog: Path | None = None) -> Path:
    """The file that defines environment ``name_or_path``."""
    given = Path(name_or_path)
    if given.suffix in {".yaml", ".yml"} or given.is_file():
        return given
    for candidate in (state_dir() / name_or_path / "environment.yaml",
                      catalog_root(catalog) / "environments" / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in (catalog_root(catalog) / "environments").glob("*.yaml"))
    raise CatalogError([Problem(name_or_path, None, None, "environment",
                                f"no environment named {name_or_path!r} "
                                f"(known: {', '.join(known) or 'none'})")])


def load_environment(name_or_path: str, catalog: Path | None = None) -> Environment:
    """The environment ``name_or_path`` (see the module docstring for the search order)."""
    return load_one(Environment, environment_file(name_or_path, catalog))
