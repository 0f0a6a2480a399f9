"""Every public name has a docstring, and the API reference (docs/reference/) shows it.

Public names: the public modules (:data:`MODULES`) and every name in their ``__all__``, the
pytest plugin's fixtures, and the public methods and properties of every public class,
those it inherits from the package's own classes included. A constant needs an attribute
docstring, the string right after its assignment: that is what the reference's griffe reads
(it ignores ``#:`` comments). Dunder names (``__version__``) are exempt.

``python -m tests.test_docstrings`` prints the coverage and what lacks a docstring.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import capillary_points_async
from capillary_points_async.testing import pytest_plugin

PACKAGE = capillary_points_async.__name__
ROOT = Path(__file__).resolve().parent.parent
#: The modules whose ``__all__`` is public, and whether the API reference shows them.
MODULES = {
    PACKAGE: True,
    f"{PACKAGE}.errors": True,
    f"{PACKAGE}.models": True,
    f"{PACKAGE}.redis": True,
    f"{PACKAGE}.testing": True,
    f"{PACKAGE}.points": False,  # its one name, Points, is the package's too
    f"{PACKAGE}.cli": False,  # the command line is documented as such, in docs/guides/cli.md
}
#: The pytest plugin has no ``__all__``: its public names are its fixtures.
PLUGIN_FIXTURES = sorted(pytest_plugin.FIXTURES)

#: TODO(docs): public names known to lack a docstring, in files others are editing; empty it as
#: they get one (a name listed here that has a docstring fails the test, so that it is removed).
EXPECTED_MISSING: set[str] = set()


def _members(cls: type) -> dict[str, object]:
    """The public methods and properties of ``cls``, its package bases' included."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):  # a subclass's own definition wins
        if not klass.__module__.startswith(PACKAGE):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                found[name] = value
    return found


def _attribute_docstring(module: ModuleType, name: str) -> str | None:
    """The docstring after ``name``'s assignment, following ``from ... import name`` into the
    module that assigns it; None when there is none."""
    body = ast.parse(inspect.getsource(module)).body
    package = module.__name__ if hasattr(module, "__path__") else module.__package__
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == name for alias in node.names
        ):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            return _attribute_docstring(importlib.import_module(source), name)
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                return str(following.value.value)
            return None
    return None


def public_docstrings() -> dict[str, str | None]:
    """Each public name, by the public path it is first met at, and its docstring."""
    docstrings: dict[str, str | None] = {}
    seen: set[int] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        docstrings[module_name] = module.__doc__
        for name in module.__all__:
            if name.startswith("__"):
                continue
            value = getattr(module, name)
            if id(value) in seen:
                continue
            seen.add(id(value))
            path = f"{module_name}.{name}"
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                docstrings[path] = _attribute_docstring(module, name)
                continue
            docstrings[path] = value.__doc__
            if inspect.isclass(value):
                for member, function in _members(value).items():
                    docstrings[f"{path}.{member}"] = function.__doc__
    plugin = pytest_plugin.__name__
    docstrings[plugin] = pytest_plugin.__doc__
    for fixture in PLUGIN_FIXTURES:
        docstrings[f"{plugin}.{fixture}"] = getattr(pytest_plugin, fixture).__doc__
    return docstrings


def missing() -> list[str]:
    return sorted(path for path, doc in public_docstrings().items() if not (doc or "").strip())


def test_every_public_name_has_a_docstring() -> None:
    names = public_docstrings()
    assert len(names) > 150  # the walk found the public names
    unexpected = set(missing()) - EXPECTED_MISSING
    assert not unexpected, f"public names without a docstring: {sorted(unexpected)}"


def test_the_todo_list_is_still_needed() -> None:
    documented = EXPECTED_MISSING - set(missing())
    assert not documented, (
        f"these have a docstring now: remove them from EXPECTED_MISSING: {documented}"
    )


# ----------------------------------------------------------------------------- the reference

#: ``::: capillary_points_async.X`` lines of the reference pages, mkdocstrings' directive.
_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)


def _shown_by(path: str) -> list[object]:
    """What one directive renders: an object, or a module with the names of its ``__all__``."""
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError:
        module_name, _, attribute = path.rpartition(".")
        return [getattr(importlib.import_module(module_name), attribute)]
    return [module, *(getattr(module, name) for name in getattr(module, "__all__", []))]


def test_the_reference_shows_every_public_name_once() -> None:
    pages = sorted((ROOT / "docs" / "reference").glob("*.md"))
    directives = [path for page in pages for path in _DIRECTIVE.findall(page.read_text())]
    shown = [id(value) for path in directives for value in _shown_by(path)]
    twice = {path for path in directives if any(shown.count(id(v)) > 1 for v in _shown_by(path))}
    assert not twice, f"shown twice (two directives render them): {sorted(twice)}"

    wanted = {
        f"{name}.{attribute}": getattr(importlib.import_module(name), attribute)
        for name, referenced in MODULES.items()
        if referenced
        for attribute in importlib.import_module(name).__all__
    }
    wanted |= {f"{pytest_plugin.__name__}.{f}": getattr(pytest_plugin, f) for f in PLUGIN_FIXTURES}
    absent = sorted(path for path, value in wanted.items() if id(value) not in shown)
    assert not absent, f"public names no page of docs/reference/ shows: {absent}"


@pytest.mark.parametrize("name", sorted(EXPECTED_MISSING))
def test_the_todo_names_exist(name: str) -> None:
    """A TODO entry that names nothing (renamed, removed) would never be emptied."""
    assert name in public_docstrings(), name


if __name__ == "__main__":
    names = public_docstrings()
    lacking = missing()
    documented = len(names) - len(lacking)
    print(
        f"{documented}/{len(names)} public names have a docstring ({documented / len(names):.1%})"
    )
    print("\n".join(f"  missing: {name}" for name in lacking))
    sys.exit(0)
