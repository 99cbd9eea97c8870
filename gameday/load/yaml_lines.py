"""YAML with line numbers: the only YAML parser of the kit, keeping where every node was."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from gameday.errors import CatalogError, Problem

Path_ = tuple[str | int, ...]


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
            found, child = child_of(node, part)
            if not found:
                continue
            node, here = child, (*here, part)
            best = self.lines.get(here, best)
        return best


_MISSING = object()


def child_of(node: Any, part: str | int) -> tuple[bool, Any]:
    """``node[part]`` for a YAML mapping or list, and whether it exists."""
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, _MISSING


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
                problems.append(Problem(file, line, None, dotted((*path, key)),
                                        f"duplicate key (first at line {seen[key]})"))
            seen[key] = line
            _walk(value_node, (*path, key), lines, problems, file)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems, file)


def dotted(path: Iterable[str | int]) -> str:
    """A path as a field name: ``steps[1].ms``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
