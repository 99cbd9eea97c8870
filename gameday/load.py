"""The only YAML parser of the kit: catalog, missions and environments into models.

Every problem becomes a :class:`~gameday.errors.Problem` naming file, line, entry and field;
all problems of all files are collected and raised together as one ``CatalogError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from gameday.errors import CatalogError, Problem
from gameday.models import Environment, Mission, Scenario, SignalTemplate

Model = TypeVar("Model", bound=BaseModel)
Path_ = tuple[str | int, ...]
KINDS = ("scenarios", "missions", "environments", "signals")
_SECRETIVE = re.compile(r"(?i)token|passw|secret|webhook|api[_-]?key|credential|held")


@dataclass(frozen=True)
class Source:
    """Where an entry was read from."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Document:
    """A parsed YAML file: its data and the line of every node, by path."""

    file: str
    data: Any
    lines: dict[Path_, int]

    def line_of(self, path: Iterable[str | int]) -> int:
        """Line of the deepest node along ``path`` that exists (union tags are skipped)."""
        node, best = self.data, self.lines.get((), 1)
        here: Path_ = ()
        for part in path:
            found, child = _child(node, part)
            if not found:
                continue
            node, here = child, (*here, part)
            best = self.lines.get(here, best)
        return best


_MISSING = object()


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    """``node[part]`` for a YAML mapping or list, and whether it exists."""
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, _MISSING


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


# --- YAML with line numbers -------------------------------------------------------------------


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document, keeping the line of every node; duplicate keys are errors."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"{exc.problem or exc}" + (f" ({exc.context})" if exc.context else "")
        raise CatalogError([Problem(file, line, None, "", f"not valid YAML: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise CatalogError([Problem(file, None, None, "", f"not valid YAML: {exc}")]) from exc
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, problems, file)
    if problems:
        raise CatalogError(problems)
    return Document(file, data, lines)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem],
          file: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(Problem(file, line, None, _dotted((*path, key)),
                                        f"duplicate key (first at line {seen[key]})"))
            seen[key] = line
            _walk(value_node, (*path, key), lines, problems, file)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems, file)


def _dotted(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- validation into models -------------------------------------------------------------------


def _fields_at(model: Any, loc: Iterable[str | int]) -> list[str] | None:
    """Field names of the model found at ``loc`` below ``model`` (for "allowed: …")."""
    kind: Any = model
    for part in loc:
        kind = _unwrap(kind)
        origin, args = get_origin(kind), get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif origin in (list, dict):
            kind = args[-1]
        elif origin in (Union, UnionType):
            members = [m for m in args if getattr(m, "model_fields", {}).get("kind") is not None
                       and m.model_fields["kind"].default == part]
            if not members:
                return None
            kind = members[0]
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [f.alias or name for name, f in kind.model_fields.items()]
    return None


def _unwrap(kind: Any) -> Any:
    """Strip ``Annotated`` and ``None`` from a field type."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
            continue
        if get_origin(kind) in (Union, UnionType):
            members = [m for m in get_args(kind) if m is not type(None)]
            if len(members) == 1:
                kind = members[0]
                continue
        return kind


def _problems(exc: ValidationError, doc: Document, base: Path_, entry: str | None,
              model: type[BaseModel]) -> Iterator[Problem]:
    for error in exc.errors(include_url=False):
        loc = (*base, *error["loc"], *error.get("ctx", {}).get("path", ()))
        # Drop discriminator tags and validator names that are not in the YAML.
        shown = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-",
                 "tagged-union", "dict[", "list[", "nullable[")))]
        shown += list(error.get("ctx", {}).get("path", ()))
        shown = _strip_tags(doc, base, shown)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            allowed = _fields_at(model, error["loc"][:-1])
            message = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        # A value under a secret-looking key may be a real secret: never echo it.
        secretive = any(isinstance(p, str) and _SECRETIVE.search(p) for p in error["loc"])
        if not secretive and error["type"] not in {"inline_secret", "located", "missing"} \
                and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
        yield Problem(doc.file, doc.line_of(loc), entry, _dotted(shown), message)


def _strip_tags(doc: Document, base: Path_, parts: list[str | int]) -> list[str | int]:
    """Remove union tags (like the ``latency`` in ``fault.latency.ms``) that are not YAML keys."""
    node: Any = doc.data
    for part in base:
        node = _child(node, part)[1]
    kept: list[str | int] = []
    for part in parts:
        found, child = _child(node, part)
        if not found and isinstance(node, dict) and node.get("kind") == part:
            continue
        node = child
        kept.append(part)
    return kept


def validate(model: type[Model], data: Any, doc: Document, base: Path_ = (),
             entry: str | None = None) -> tuple[Model | None, list[Problem]]:
    """Validate ``data`` into ``model``; problems point into ``doc``."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, list(_problems(exc, doc, base, entry, model))


# --- files and folders ------------------------------------------------------------------------


def kind_of(path: Path) -> str | None:
    """Which kind of file this is, from its folder (``scenarios/``…) or name (``signals.yaml``)."""
    if path.stem == "signals":
        return "signals"
    for parent in path.parents:
        if parent.name in KINDS:
            return parent.name
    return None


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


def load_catalog(paths: Iterable[Path], signals_from: Path | None = None) -> Catalog:
    """Load and cross-check every file under ``paths``; raise one ``CatalogError`` for all."""
    catalog = Catalog()
    problems: list[Problem] = []
    docs: list[tuple[str, Document]] = []
    files = yaml_files(paths)
    if signals_from and signals_from.exists() and signals_from.resolve() not in {
        f.resolve() for f in files
    }:
        files.insert(0, signals_from)
    for path in files:
        file = _display(path)
        if not path.exists():
            problems.append(Problem(file, None, None, "", "no such file or folder"))
            continue
        try:
            doc = parse_yaml(path.read_text(encoding="utf-8"), file)
        except CatalogError as exc:
            problems += exc.problems
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, None, None, "", f"cannot read: {exc}"))
            continue
        kind = kind_of(path) or _guess_kind(doc.data)
        if kind is None:
            problems.append(Problem(file, 1, None, "", "cannot tell what this file holds: put it "
                                    "under scenarios/, missions/ or environments/, or name it "
                                    "signals.yaml"))
            continue
        docs.append((kind, doc))
    # Signal templates first: scenarios are checked against them.
    for kind, doc in sorted(docs, key=lambda d: d[0] != "signals"):
        problems += _load_doc(kind, doc, catalog)
    problems += _cross_check(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _entries(doc: Document) -> list[tuple[Path_, Any]]:
    if isinstance(doc.data, list):
        return [((i,), item) for i, item in enumerate(doc.data)]
    return [((), doc.data)]


def _load_doc(kind: str, doc: Document, catalog: Catalog) -> list[Problem]:
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
    return problems


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
    return problems


def load_one(model: type[Model], path: Path) -> Model:
    """Load a single-entry file (an environment or a mission) into ``model``."""
    file = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
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
    import os

    if explicit is not None:
        return explicit
    if env := os.environ.get("GAMEDAY_CATALOG"):
        return Path(env)
    here = Path.cwd() / "catalog"
    if (here / "scenarios").is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "catalog"


def load_default(root: Path | None = None) -> Catalog:
    """The whole catalog under ``root`` (see :func:`catalog_root`)."""
    folder = catalog_root(root)
    catalog = load_catalog([folder])
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
