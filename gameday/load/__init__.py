"""The only YAML parser of the kit: catalog, missions and environments into models.

Every problem becomes a :class:`~gameday.errors.Problem` naming file, line, entry and field;
all problems of all files are collected and raised together as one ``CatalogError``.

* :mod:`~gameday.load.yaml_lines`: YAML with the line of every node
* :mod:`~gameday.load.problems`: validation errors as problems at their lines
* :mod:`~gameday.load.walk`: finding catalog files, loading and cross-checking their entries
* :mod:`~gameday.load.files`: single files, the default catalog, missions by name
"""

from __future__ import annotations

from gameday.load.files import catalog_root, load_default, load_mission, load_one
from gameday.load.problems import Model, validate
from gameday.load.walk import KINDS, Catalog, Source, kind_of, load_catalog, yaml_files
from gameday.load.yaml_lines import Document, Path_, parse_yaml

__all__ = [
    "KINDS",
    "Catalog",
    "Document",
    "Model",
    "Path_",
    "Source",
    "catalog_root",
    "kind_of",
    "load_catalog",
    "load_default",
    "load_mission",
    "load_one",
    "parse_yaml",
    "validate",
    "yaml_files",
]
