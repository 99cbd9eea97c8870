"""One error tree: every exception the kit defines lives in ``gameday.errors`` and its drawing."""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import gameday
from gameday import errors
from gameday.extras import EXTRAS

#: Top-level import names of the kit's optional packages (a module needing one may be skipped).
OPTIONAL = frozenset(name.partition(".")[0] for names in EXTRAS.values() for name in names)


def walk_kit() -> tuple[list[ModuleType], list[str], list[str]]:
    """Every importable module of ``gameday``; ``__main__`` modules; modules skipped for an
    optional package that is not installed."""
    modules: list[ModuleType] = []
    mains: list[str] = []
    skipped: list[str] = []
    # onerror: a package that failed to import was already judged by the loop body below.
    for info in pkgutil.walk_packages(gameday.__path__, "gameday.", onerror=lambda _: None):
        if info.name.rpartition(".")[2] == "__main__":
            mains.append(info.name)  # importing one runs the program: read it as source
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in OPTIONAL:
                raise
            skipped.append(info.name)
    return modules, mains, skipped


#: Errors that take a client library's own shape, so its callers catch them as the library's:
#: a gRPC call a fault point ended is a ``grpc.RpcError`` (``errors.py`` imports no extra).
FOREIGN_SHAPES = {"gameday.injector.grpc_points.FaultedRpcError"}


def kit_exceptions(modules: list[ModuleType]) -> set[type[BaseException]]:
    """Exception classes found in the kit's modules whose home is the kit."""
    return {value for module in modules for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException)
            and value.__module__.partition(".")[0] == "gameday"}


def drawn_tree() -> dict[str, str | None]:
    """Class name → the name drawn as its parent, from the drawing in the module docstring."""
    doc = errors.__doc__ or ""
    drawing = doc.split("::", 1)[1].strip("\n").split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in drawing.splitlines():
        found = re.match(r"^ {4}([│ ]*(?:[├└]── )?)(\w+)", line)
        assert found, f"not a line of the drawing: {line!r}"
        depth = len(found.group(1)) // 4
        name = found.group(2)
        del stack[depth:]
        parents[name] = stack[-1] if stack else None
        stack.append(name)
    return parents


def test_every_exception_of_the_kit_is_defined_in_errors() -> None:
    """Walking every module finds no exception class defined outside ``gameday.errors``."""
    modules, _, skipped = walk_kit()
    assert len(modules) > 50, skipped
    found = kit_exceptions(modules)
    elsewhere = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in found
                       if cls.__module__ != "gameday.errors")
    assert elsewhere == sorted(FOREIGN_SHAPES)
    # Each of those is a client library's own error, as the library raises it to its callers.
    for cls in found:
        if cls.__module__ != "gameday.errors":
            assert any(base.__module__.partition(".")[0] not in ("gameday", "builtins")
                       for base in cls.__mro__), cls


def test_main_modules_define_no_exception() -> None:
    """``__main__`` modules, read as source, subclass no exception (theirs would be missed)."""
    _, mains, _ = walk_kit()
    assert "gameday.__main__" in mains
    known = {name for namespace in (vars(errors), vars(builtins))
             for name, value in namespace.items()
             if inspect.isclass(value) and issubclass(value, BaseException)}
    for name in mains:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rpartition(".")[2] for base in node.bases}
                assert not bases & known, f"{name} defines exception {node.name}"


def test_the_drawing_names_every_error_and_only_those() -> None:
    """The docstring's tree names exactly the exception classes of ``gameday.errors``."""
    defined = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, BaseException)
               and value.__module__ == "gameday.errors"}
    assert set(drawn_tree()) == defined


def test_the_drawing_shows_each_errors_parent() -> None:
    """Each class sits under the class it inherits from; the root is ``GameDayError``."""
    for name, parent in drawn_tree().items():
        cls = getattr(errors, name)
        if parent is None:
            assert cls is errors.GameDayError
        else:
            assert cls.__bases__[0] is getattr(errors, parent), name


@pytest.mark.parametrize(("module", "name"), [
    ("gameday.notify.core", "SinkError"),
    ("gameday.notify.core", "SinkRetry"),
    ("gameday.notify", "SinkRetry"),
    ("gameday.notify.pushgateway", "PushError"),
    ("gameday.injector.rules", "RuleProblem"),
    ("gameday.injector.proxy.http1", "ParseError"),
    ("gameday.demo.users", "DependencyFailed"),
])
def test_old_import_paths_still_work(module: str, name: str) -> None:
    """A moved class is still importable from where it used to be defined."""
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_moved_errors_keep_their_behaviour() -> None:
    """Moved classes keep their fields; a rule problem is still a ValueError."""
    problem = errors.RuleProblem("ttl", "too long")
    assert isinstance(problem, ValueError)
    assert (str(problem), problem.field, problem.message) == ("ttl: too long", "ttl", "too long")
    assert errors.ParseError("bad").status == 400
    assert errors.SinkRetry("429", after=2.0).after == 2.0
    failed = errors.DependencyFailed("auth-service", "status", 503)
    assert (str(failed), failed.reason, failed.status) == ("auth-service: status 503", "status",
                                                           503)
    assert errors.BadRequest(413, "too large").status == 413
    assert not issubclass(errors.SinkRetry, errors.SinkError)
