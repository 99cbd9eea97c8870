"""The only YAML parser of the kit: catalog, missions and environments into models.

Every problem becomes a :class:`~gameday.errors.Problem` naming file, line, entry and field;
all problems of all files are collected and raised together as one ``CatalogError``.

* :mod:`~gameday.load.yaml_lines`: YAML with the line of every node, read within limits
* :mod:`~gameday.load.problems`: validation errors as problems at their lines
* :mod:`~gameday.load.walk`: finding catalog files, loading and cross-checking their entries
* :mod:`~gameday.load.files`: single files, the default catalog, missions by name
"""

from __future__ import annotations

from gameday.load.files import catalog_root, load_default, load_mission, load_one
from gameday.load.problems import Model, validate
from gameday.load.walk import KINDS, Catalog, Source, kind_of, load_catalog, yaml_files
from gameday.load.yaml_lines import CATALOG, Document, Limits, Path_, parse_yaml, read_text

__all__ = [
    "CATALOG",
    "KINDS",
    "Catalog",
    "Document",
    "Limits",
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
    "read_text",
    "validate",
    "yaml_files",
]
