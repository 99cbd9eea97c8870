"""Loading by name or path: single-entry files, the default catalog folder, missions."""

from __future__ import annotations

import os
from pathlib import Path

from gameday.errors import CatalogError, Problem
from gameday.load.problems import Model, display, validate
from gameday.load.walk import Catalog, load_catalog
from gameday.load.yaml_lines import parse_yaml, read_text
from gameday.models import Mission

# The checkout this package was loaded from: gameday/load/files.py → the repository root.
_CHECKOUT = Path(__file__).resolve().parents[2]


def load_one(model: type[Model], path: Path) -> Model:
    """Load a single-entry file (an environment or a mission) into ``model``."""
    file = display(path)
    try:
        text = read_text(path, file)
    except OSError as exc:
        raise CatalogError([Problem(file, None, None, "", f"cannot read: {exc}")]) from exc
    doc = parse_yaml(text, file)
    if not isinstance(doc.data, dict):
        raise CatalogError([Problem(file, 1, None, "", "expected a mapping of fields")])
    value, problems = validate(model, doc.data, doc)
    if value is None:
        raise CatalogError(problems)
    return value


def catalog_root(explicit: Path | None = None) -> Path:
    """The catalog folder: ``--catalog``, ``$GAMEDAY_CATALOG``, ``./catalog``, the checkout's."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("GAMEDAY_CATALOG"):
        return Path(env)
    here = Path.cwd() / "catalog"
    if (here / "scenarios").is_dir():
        return here
    return _CHECKOUT / "catalog"


def load_default(root: Path | None = None) -> Catalog:
    """The whole catalog under ``root`` (see :func:`catalog_root`)."""
    folder = catalog_root(root)
    # Runbooks are documents of the repository, checked by `chaosctl catalog validate`; a
    # deployed kit (the container image) carries the catalog without them and must still run.
    catalog = load_catalog([folder], runbooks=False)
    catalog.root = folder
    return catalog


def load_mission(name_or_path: str, catalog: Catalog | None = None) -> Mission:
    """A mission by catalog name or file path."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.is_file():
        return load_one(Mission, path)
    if catalog is not None and name_or_path in catalog.missions:
        return catalog.missions[name_or_path]
    known = ", ".join(sorted(catalog.missions)) if catalog else "?"
    raise CatalogError([Problem(name_or_path, None, None, "mission",
                                f"no mission named {name_or_path!r} (known: {known})")])
