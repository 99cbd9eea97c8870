"""Catalog walking: find the files, tell their kinds, load every entry, cross-check them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gameday.errors import CatalogError, Problem
from gameday.load.problems import display, validate
from gameday.load.yaml_lines import Document, Path_, parse_yaml, read_text
from gameday.models import Environment, Mission, Scenario, SignalTemplate

KINDS = ("scenarios", "missions", "environments", "signals")
_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """Where an entry was read from."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Catalog:
    """Everything loaded, each entry with where it came from."""

    root: Path | None = None
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    missions: dict[str, Mission] = field(default_factory=dict)
    environments: dict[str, Environment] = field(default_factory=dict)
    signals: dict[str, SignalTemplate] = field(default_factory=dict)
    sources: dict[tuple[str, str], Source] = field(default_factory=dict)

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name``, or a ``CatalogError`` listing the known ones."""
        if name not in self.scenarios:
            known = ", ".join(sorted(self.scenarios)) or "none"
            raise CatalogError([Problem("catalog", None, None, "scenario",
                                        f"no scenario named {name!r} (known: {known})")])
        return self.scenarios[name]


def kind_of(path: Path) -> str | None:
    """Which kind of file this is, from its folder (``scenarios/``…) or name (``signals.yaml``)."""
    if path.stem == "signals":
        return "signals"
    for parent in path.parents:
        if parent.name in KINDS:
            return parent.name
    return None


def repository_root(path: Path) -> Path:
    """The repository a catalog file belongs to: the parent of its catalog folder.

    The catalog folder is the one holding ``scenarios/``, ``missions/``…; a file outside those
    folders counts its own folder as the catalog.
    """
    path = path.resolve()
    for parent in path.parents:
        if parent.name in KINDS:
            return parent.parent.parent
    return path.parent.parent


def _guess_kind(data: Any) -> str | None:
    first = data[0] if isinstance(data, list) and data else data
    if not isinstance(first, dict):
        return None
    if "fault" in first or "steps" in first:
        return "scenarios"
    if "prometheus" in first or "endpoints" in first:
        return "environments"
    if "requester" in first or "scenario" in first:
        return "missions"
    return None


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file in ``paths`` (folders searched recursively)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"}
                            and "history" not in p.parts)
        else:
            found.append(path)
    return found


@dataclass(frozen=True)
class _Read:
    """One parsed file and what it holds."""

    kind: str
    doc: Document
    path: Path


def load_catalog(paths: Iterable[Path], signals_from: Path | None = None, *,
                 runbooks: bool = True) -> Catalog:
    """Load and cross-check every file under ``paths``; raise one ``CatalogError`` for all.

    ``runbooks`` also checks that each scenario's runbook path names a file of the repository.
    """
    catalog = Catalog()
    problems: list[Problem] = []
    read: list[_Read] = []
    files = yaml_files(paths)
    if signals_from and signals_from.exists() and signals_from.resolve() not in {
        f.resolve() for f in files
    }:
        files.insert(0, signals_from)
    for path in files:
        file = display(path)
        if not path.exists():
            problems.append(Problem(file, None, None, "", "no such file or folder"))
            continue
        try:
            doc = parse_yaml(read_text(path, file), file)
        except CatalogError as exc:
            problems += exc.problems
            continue
        except OSError as exc:
            problems.append(Problem(file, None, None, "", f"cannot read: {exc}"))
            continue
        kind = kind_of(path) or _guess_kind(doc.data)
        if kind is None:
            problems.append(Problem(file, 1, None, "", "cannot tell what this file holds: put it "
                                    "under scenarios/, missions/ or environments/, or name it "
                                    "signals.yaml"))
            continue
        read.append(_Read(kind, doc, path))
    # Signal templates first: scenarios are checked against them.
    for one in sorted(read, key=lambda r: r.kind != "signals"):
        problems += _load_doc(one, catalog, runbooks)
    problems += _cross_check(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def _entries(doc: Document) -> list[tuple[Path_, Any]]:
    if isinstance(doc.data, list):
        return [((i,), item) for i, item in enumerate(doc.data)]
    return [((), doc.data)]


def _load_doc(one: _Read, catalog: Catalog, runbooks: bool) -> list[Problem]:
    kind, doc = one.kind, one.doc
    problems: list[Problem] = []
    if kind == "signals":
        if not isinstance(doc.data, dict):
            return [Problem(doc.file, 1, None, "", "signals.yaml must map names to templates")]
        for name, body in doc.data.items():
            template, found = validate(SignalTemplate, body, doc, (name,), f"signal {name!r}")
            problems += found
            if template:
                catalog.signals[str(name)] = template
                catalog.sources[("signal", str(name))] = Source(doc.file, doc.line_of((name,)))
        return problems
    models: dict[str, type[BaseModel]] = {
        "scenarios": Scenario, "missions": Mission, "environments": Environment}
    model = models[kind]
    label = kind.rstrip("s")
    for base, item in _entries(doc):
        name = item.get("name") if isinstance(item, dict) else None
        if kind == "missions":
            name = Path(doc.file).stem if not base else f"{Path(doc.file).stem}[{base[0]}]"
        entry = f"{label} {name!r}" if name else (f"{label} #{base[0]}" if base else None)
        if not isinstance(item, dict):
            problems.append(Problem(doc.file, doc.line_of(base), entry, "",
                                    f"expected a mapping of fields for a {label}"))
            continue
        value, found = validate(model, item, doc, base, entry)
        problems += found
        if kind == "scenarios":
            problems += _check_signal_names(item, doc, base, entry, catalog)
            if runbooks:
                problems += _check_runbook(item, doc, base, entry, repository_root(one.path))
        key = str(name)
        here = Source(doc.file, doc.line_of(base))
        # Names are claimed even by invalid entries, so a duplicate is reported in the same pass.
        if (label, key) in catalog.sources:
            first = catalog.sources[(label, key)]
            problems.append(Problem(doc.file, here.line, entry, "name",
                                    f"duplicate {label} name {key!r}, first defined at {first}"))
            continue
        if name is not None:
            catalog.sources[(label, key)] = here
        if value is not None:
            getattr(catalog, kind)[key] = value
            _record_lines(catalog, kind, key, item, doc, base)
    return problems


def _record_lines(catalog: Catalog, kind: str, name: str, item: dict[str, Any], doc: Document,
                  base: Path_) -> None:
    """Where a scenario's fault fields and an environment's endpoints are, for cross-checks."""
    if kind == "scenarios" and isinstance(item.get("fault"), dict):
        for field_name in item["fault"]:
            catalog.sources[(f"fault.{field_name}", name)] = Source(
                doc.file, doc.line_of((*base, "fault", field_name)))
        target = item.get("target")
        if isinstance(target, dict) and "point" in target:
            catalog.sources[("target.point", name)] = Source(
                doc.file, doc.line_of((*base, "target", "point")))
    elif kind == "environments" and isinstance(item.get("endpoints"), list):
        for index in range(len(item["endpoints"])):
            catalog.sources[("endpoint", f"{name}[{index}]")] = Source(
                doc.file, doc.line_of((*base, "endpoints", index)))


def _check_signal_names(item: dict[str, Any], doc: Document, base: Path_, entry: str | None,
                        catalog: Catalog) -> list[Problem]:
    problems = []
    known = ", ".join(sorted(catalog.signals)) or "none defined"
    for section in ("signals", "guards"):
        specs = item.get(section)
        if not isinstance(specs, dict):
            continue
        for name, spec in specs.items():
            if name not in catalog.signals and not (isinstance(spec, dict) and "query" in spec):
                problems.append(Problem(
                    doc.file, doc.line_of((*base, section, name)), entry, f"{section}.{name}",
                    f"unknown signal name {name!r}: give a 'query' or use one of: {known}"))
    return problems


def _check_runbook(item: dict[str, Any], doc: Document, base: Path_, entry: str | None,
                   root: Path) -> list[Problem]:
    """A runbook path must name a file of the repository, or on-call follows a dead link.

    URLs are left alone: whether a wiki page exists is not the catalog's to check offline.
    Checked on the raw entry, so a missing runbook is reported with the entry's other problems.
    """
    runbook = item.get("runbook")
    if not isinstance(runbook, str) or _URL.match(runbook) or (root / runbook).is_file():
        return []
    return [Problem(doc.file, doc.line_of((*base, "runbook")), entry, "runbook",
                    f"no such file {runbook!r} (allowed: a file path relative to the repository "
                    f"root {root}, or an http(s):// URL)")]


def _cross_check(catalog: Catalog) -> list[Problem]:
    problems = []
    for name, mission in catalog.missions.items():
        source = catalog.sources[("mission", name)]
        entry = f"mission {name!r}"
        if catalog.scenarios and mission.scenario not in catalog.scenarios:
            known = ", ".join(sorted(catalog.scenarios))
            problems.append(Problem(source.file, source.line, entry, "scenario",
                                    f"no scenario named {mission.scenario!r} (known: {known})"))
            continue
        scenario = catalog.scenarios.get(mission.scenario)
        if scenario and mission.max_severity and mission.max_severity > scenario.max_severity:
            problems.append(Problem(source.file, source.line, entry, "max_severity",
                                    f"{mission.max_severity} is above the ladder's top "
                                    f"(allowed: 1..{scenario.max_severity})"))
        if scenario and mission.environment not in scenario.environments:
            problems.append(Problem(source.file, source.line, entry, "environment",
                                    f"scenario {scenario.name!r} may not run in "
                                    f"{mission.environment!r} (allowed: "
                                    f"{', '.join(scenario.environments)})"))
    return problems + _check_protocols(catalog)


def _unlisted_point(catalog: Catalog, name: str, scenario: Scenario,
                    environment: Environment) -> list[Problem]:
    """A target's fault point that no transport endpoint of its service and dependency lists,
    when some endpoint for them does list points: named, with the points it lists."""
    target, point = scenario.target, scenario.target.point
    listed = [pattern for endpoint in environment.endpoints
              if endpoint.service == target.service and endpoint.dependency == target.dependency
              for pattern in endpoint.points]
    if point is None or not listed:
        return []
    where = catalog.sources.get(("target.point", name)) or catalog.sources[("scenario", name)]
    return [Problem(where.file, where.line, f"scenario {name!r}", "target.point",
                    f"environment {environment.name!r} lists no fault point {point!r} for "
                    f"{target.service}/{target.dependency} (allowed: {', '.join(listed)})")]


def _check_protocols(catalog: Catalog) -> list[Problem]:
    """A scenario's fault must suit the protocol of each endpoint that would inject it.

    An HTTP-only kind (an abort with a status) cannot go to a TCP endpoint, nor a TCP-only kind
    to an HTTP one; nor a TCP field (``direction``…) to HTTP, nor a ``match`` to TCP. Reported
    at the fault's line in the scenario, naming the endpoint.
    """
    problems = []
    for name, scenario in catalog.scenarios.items():
        for env_name in scenario.environments:
            environment = catalog.environments.get(env_name)
            if environment is None:
                continue
            endpoint = environment.endpoint_for(scenario.target)
            if endpoint is None:
                problems += _unlisted_point(catalog, name, scenario, environment)
                continue
            index = environment.endpoints.index(endpoint)
            at = catalog.sources.get(("endpoint", f"{env_name}[{index}]"))
            target = f"{endpoint.service}/{endpoint.dependency}" if endpoint.dependency \
                else endpoint.service
            protocol = scenario.target.protocol or endpoint.protocol
            for field_name, message in scenario.protocol_problems(protocol):
                where = (catalog.sources.get((f"fault.{field_name}", name))
                         or catalog.sources.get(("fault.kind", name))
                         or catalog.sources[("scenario", name)])
                problems.append(Problem(
                    where.file, where.line, f"scenario {name!r}", f"fault.{field_name}",
                    f"{message} (environment {env_name!r}, endpoint {target}"
                    f"{f' at {at}' if at else ''})"))
    return problems

