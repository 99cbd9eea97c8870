"""Finding an environment by name or path, in the README's precedence.

Command-line options > Prefect blocks > the environment file > defaults:

1. a **file path** given explicitly (``--env FILE``, or a path as the flow's ``environment``)
   is that file, whatever else exists;
2. a **name** is first looked up by the ``lookup`` the caller passes: the Prefect layer's
   finds a ``GameDayEnvironment`` block when a Prefect API is configured (``chaosctl env
   import`` makes those blocks);
3. then the state folder's ``<name>/environment.yaml`` (written by tools such as ``chaosctl
   demo up``, with the ports they picked), then the catalog's ``environments/<name>.yaml``;
4. fields a block or file leaves out take the model's defaults.

Command-line options such as ``--max-severity`` then narrow the run, never the environment.
The engine never imports Prefect: the block lookup is passed in by the Prefect layer (flows,
``chaosctl`` when the ``prefect`` extra is installed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from gameday.errors import CatalogError, Problem
from gameday.load import catalog_root, load_one
from gameday.models import Environment
from gameday.paths import state_dir

#: Finds a stored environment by name; None when there is none.
EnvironmentLookup = Callable[[str], Environment | None]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def is_file_reference(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a file rather than an environment."""
    given = Path(name_or_path)
    return given.suffix in {".yaml", ".yml"} or "/" in name_or_path or given.is_file()


def environment_file(name_or_path: str, catalog: Path | None = None) -> Path:
    """The file that defines environment ``name_or_path``."""
    given = Path(name_or_path)
    if is_file_reference(name_or_path):
        return given
    for candidate in (state_dir() / name_or_path / "environment.yaml",
                      catalog_root(catalog) / "environments" / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in (catalog_root(catalog) / "environments").glob("*.yaml"))
    raise CatalogError([Problem(name_or_path, None, None, "environment",
                                f"no environment named {name_or_path!r} "
                                f"(known: {', '.join(known) or 'none'})")])


def load_environment(name_or_path: str, catalog: Path | None = None, *,
                     lookup: EnvironmentLookup | None = None) -> Environment:
    """The environment ``name_or_path`` (see the module docstring for the precedence).

    ``lookup`` finds a stored environment by name (the Prefect layer passes its block lookup,
    ``blocks.environment.environment_block``); without one, only files are read.
    """
    if lookup is not None and not is_file_reference(name_or_path) and _NAME.match(name_or_path):
        stored = lookup(name_or_path)
        if stored is not None:
            return stored
    return load_one(Environment, environment_file(name_or_path, catalog))
