"""YAML with line numbers: the only YAML parser of the kit, keeping where every node was.

Files are read within :class:`Limits` and refused with ``InputRefused`` (file and line) before
the work they would cost is done: PyYAML's composer recurses once per nesting level (3000
``[`` end in ``RecursionError``), and aliases share nodes that every later walk expands (a
620-byte "billion laughs" file becomes 10⁹ nodes). Sizes are checked on the bytes, nesting and
node counts while composing, and what aliases expand to before anything walks the tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, Event, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from gameday.errors import CatalogError, InputRefused, Problem

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    """How much one file may hold before it is refused unread."""

    #: Bytes. The repository's largest catalog file is about 3 KiB.
    size: int = 512 * 1024
    #: Levels of mappings and lists, aliases expanded. Catalog entries nest about 6 deep.
    depth: int = 64
    #: Nodes, aliases expanded. The largest catalog file has about 140; pure-Python YAML
    #: composes this many in well under a second even on a busy core.
    nodes: int = 20_000
    #: Whether anchors and aliases may appear at all.
    aliases: bool = True


#: The limits of catalog, mission and environment files.
CATALOG = Limits()


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


def read_text(path: Path, file: str, limits: Limits = CATALOG) -> str:
    """The text of ``path``, read no further than its size limit; ``OSError`` if unreadable."""
    with open(path, "rb") as stream:
        data = stream.read(limits.size + 1)
    return limited_text(data, file, limits)


def limited_text(data: bytes, file: str, limits: Limits = CATALOG) -> str:
    """``data`` as UTF-8 text; ``InputRefused`` if larger than the limit or not UTF-8."""
    if len(data) > limits.size:
        line = data.count(b"\n", 0, limits.size) + 1
        raise InputRefused(Problem(file, line, None, "", f"file too large (allowed: at most "
                                   f"{limits.size} bytes; this line passes the limit)"),
                           "too_large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        column = start - data.rfind(b"\n", 0, start)
        raise InputRefused(Problem(file, line, None, "", f"not UTF-8: byte 0x{data[start]:02x} "
                                   f"at column {column} (allowed: UTF-8 text)"),
                           "not_utf8") from exc


def parse_yaml(text: str, file: str, limits: Limits = CATALOG) -> Document:
    """Parse one YAML document, keeping the line of every node; duplicate keys are errors.

    ``InputRefused`` (a ``CatalogError``) when ``text`` goes past ``limits``.
    """
    if len(text) > limits.size:  # text not read by read_text is held to the same size
        limited_text(text.encode(), file, limits)
    try:
        loader = _Loader(text, file, limits)
        try:
            node = loader.get_single_node()
            if node is not None and limits.aliases:
                _check_expansion(node, file, limits)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"{exc.problem or exc}" + (f" ({exc.context})" if exc.context else "")
        raise CatalogError([Problem(file, line, None, "", f"not valid YAML: {what}")]) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        raise CatalogError([Problem(file, line, None, "", f"not valid YAML: character "
                                    f"U+{code:04X} is not allowed (allowed: printable "
                                    "characters, tab, line breaks)")]) from exc
    except yaml.YAMLError as exc:
        raise CatalogError([Problem(file, None, None, "", f"not valid YAML: {exc}")]) from exc
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, problems, file)
    if problems:
        raise CatalogError(problems)
    return Document(file, data, lines)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, counting nodes and nesting as it composes."""

    def __init__(self, text: str, file: str, limits: Limits) -> None:
        super().__init__(text)
        self.file, self.limits = file, limits
        self.depth = self.count = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        limits = self.limits
        self.count += 1
        if self.count > limits.nodes:
            raise _refused(self.file, event.start_mark, f"too many nodes (allowed: at most "
                           f"{limits.nodes})", "too_many_nodes")
        if not limits.aliases and (isinstance(event, AliasEvent) or getattr(event, "anchor",
                                                                            None)):
            raise _refused(self.file, event.start_mark, "anchors and aliases (&name, "
                           "*name) are not allowed in this file (allowed: plain values)",
                           "alias")
        if not isinstance(event, MappingStartEvent | SequenceStartEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > limits.depth:
                raise _refused(self.file, event.start_mark, f"nested too deep (allowed: at "
                               f"most {limits.depth} levels)", "too_deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _refused(file: str, mark: Any, message: str, reason: str) -> InputRefused:
    line = mark.line + 1 if mark is not None else None
    return InputRefused(Problem(file, line, None, "", message), reason)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Node, file: str, limits: Limits) -> None:
    """Refuse a tree whose aliases expand past the node or depth limit, or into themselves.

    Aliases make the composed tree a graph; each node's expanded size and height are counted
    once, after its children's (iteratively: no walk here recurses), and the first node past a
    limit, the smallest such subtree, is named.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)
    stack: list[tuple[Node, list[Node]]] = [(root, _children(root))]
    on_path = {id(root)}
    longest = limits.depth + 1  # nodes on a path: the nested collections and a leaf
    while stack:
        node, pending = stack[-1]
        if pending:
            child = pending.pop()
            if id(child) in on_path:
                raise _refused(file, child.start_mark, "an alias refers to a node that "
                               "contains it", "alias")
            if id(child) not in measured:
                stack.append((child, _children(child)))
                on_path.add(id(child))
            continue
        stack.pop()
        on_path.discard(id(node))
        below = [measured[id(child)] for child in _children(node)]
        size = 1 + sum(count for count, _ in below)
        height = 1 + max((deep for _, deep in below), default=0)
        if size > limits.nodes:
            raise _refused(file, node.start_mark, "aliases expand to too many nodes "
                           f"(allowed: at most {limits.nodes}, aliases expanded)",
                           "too_many_nodes")
        if height > longest:
            raise _refused(file, node.start_mark, "aliases nest too deep (allowed: at most "
                           f"{limits.depth} levels, aliases expanded)", "too_deep")
        measured[id(node)] = (size, height)


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
