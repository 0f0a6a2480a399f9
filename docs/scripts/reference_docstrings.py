"""A griffe extension (mkdocs.yml loads it): the docstrings as the API reference needs them.

**Roles.**
The package's docstrings name other objects the Sphinx way, ``:class:`RateLimit```,
``:meth:`Points.redeem```, ``:class:`~capillary_points_async.InvalidRequestError```. Left as
they are, mkdocstrings prints the role's colons. Here each role becomes a link to the page
where the API reference shows the object, when it shows it: the name is resolved in the scope
of the docstring's object, as Python would, and the public path it is rendered under is
looked up in the public modules' ``__all__`` (the models, errors, redis and testing pages
first, then the package's root). A name that the reference does not show (a private helper, a
standard-library class) becomes inline code, so no link is ever broken.

**Literal blocks.** A paragraph ending in ``::`` introduces an indented block in
reStructuredText; in Markdown the indented block is code already, so ``::`` becomes ``:``.

**Special methods.** ``filters: public`` (mkdocs.yml) shows a module's ``__all__``, but also
every class's ``__repr__``, ``__aenter__`` and the like; here they are taken out of the
classes (``__init__`` stays: it gives the class its signature).

**attrs classes.** Their ``__init__`` is generated at import, so griffe, reading the source,
finds none: the class's signature would be empty and its ``Args:`` would name parameters
that "do not appear in the signature". Here each attrs class gets the ``__init__`` attrs
made (names, kinds and defaults from the class at run time, annotations from the source).

**Tolerated warnings.** :data:`TOLERATED` lists files whose docstrings griffe cannot parse
yet; their warnings are dropped so that ``mkdocs build --strict`` checks everything else.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from typing import Any

import attrs
import griffe

PACKAGE = "capillary_points_async"
#: Where the API reference renders a public name, most specific first (docs/reference/).
PUBLIC_MODULES = (
    f"{PACKAGE}.models",
    f"{PACKAGE}.errors",
    f"{PACKAGE}.redis",
    f"{PACKAGE}.testing",
    PACKAGE,
)
#: TODO(docs): files whose docstrings griffe cannot parse yet, and why; empty this list as
#: they are rewritten (each entry drops that file's griffe warnings, nothing else).
TOLERATED = {
    # "Raises:" entries written as prose lists ("CustomerNotFoundError (8015), ..., other
    # APIError, TransportError.") and "from_customer, to_customer:" under "Args:" (one name
    # per entry is what the Google style reads); griffe skips those entries.
    "capillary_points_async/points.py",
}
_LITERAL_BLOCK = re.compile(r"(?<=\S)::\n\n(?=    )")
_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(~?)([\w.]+)(?:\(\))?`")


class ReferenceDocstrings(griffe.Extension):
    """Prepares the package's docstrings and classes once griffe has loaded it."""

    def __init__(self) -> None:
        super().__init__()
        logging.getLogger("mkdocs.plugins.griffe").addFilter(_drop_tolerated)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        public = _public_paths(pkg)
        for obj in _walk(pkg):
            if isinstance(obj, griffe.Class):
                if "__init__" not in obj.members:
                    _add_attrs_init(obj)
                for name in [name for name in obj.members if name.startswith("_")]:
                    if name != "__init__":
                        obj.del_member(name)
            if obj.docstring is not None:
                text = _LITERAL_BLOCK.sub(":\n\n", obj.docstring.value)
                obj.docstring.value = _ROLE.sub(
                    lambda match, obj=obj: _link(obj, match[2], bool(match[1]), public), text
                )


def _public_paths(pkg: griffe.Module) -> dict[str, str]:
    """Each public object's canonical path (where it is defined) -> the path it is shown at."""
    paths: dict[str, str] = {}
    for module_path in PUBLIC_MODULES:
        module = pkg if module_path == PACKAGE else pkg[module_path.removeprefix(PACKAGE + ".")]
        for name in module.exports or ():
            member = module.members.get(str(name))
            if member is None:
                continue
            target = _canonical(member)
            if target is None:
                continue
            paths.setdefault(target.path, f"{module_path}.{name}")
            if isinstance(target, griffe.Class):
                for child in target.members.values():
                    if not child.name.startswith("_"):
                        paths.setdefault(
                            f"{target.path}.{child.name}", f"{module_path}.{name}.{child.name}"
                        )
    return paths


def _canonical(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if isinstance(obj, griffe.Alias) else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            found += _walk(member)
    return found


def _link(obj: griffe.Object, name: str, short: bool, public: dict[str, str]) -> str:
    shown = name.rsplit(".", 1)[-1] if short else name
    target = _resolve(obj, name)
    if target is None or target not in public:
        return f"`{shown}`"
    return f"[`{shown}`][{public[target]}]"


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The canonical path ``name`` means inside ``obj``'s docstring, or None."""
    head, _, rest = name.partition(".")
    try:
        return _follow(obj, obj.resolve(head), rest)
    except griffe.NameResolutionError:
        return _follow(obj, name, "") if name.startswith(PACKAGE + ".") else None


def _follow(obj: griffe.Object, path: str, rest: str) -> str | None:
    """The canonical path of ``path`` (and then its attribute ``rest``), or None."""
    try:
        target = obj.modules_collection[path]
    except KeyError:
        return None
    for part in filter(None, rest.split(".")):
        resolved = _canonical(target)
        if resolved is None or part not in resolved.members:
            return None
        target = resolved.members[part]
    resolved = _canonical(target)
    return None if resolved is None else resolved.path


def _drop_tolerated(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(f"{path}:" in message for path in TOLERATED)


def _add_attrs_init(cls: griffe.Class) -> None:
    """Give an attrs class the ``__init__`` attrs generates for it (see the module docstring)."""
    runtime = getattr(importlib.import_module(cls.module.path), cls.name, None)
    if not (isinstance(runtime, type) and attrs.has(runtime)):
        return
    fields = {field.alias: field for field in attrs.fields(runtime)}
    kinds = {
        inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
        inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    }
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for name, parameter in inspect.signature(runtime).parameters.items():
        field = fields[name]
        source = cls.members.get(field.name)
        parameters.append(
            griffe.Parameter(
                name,
                annotation=getattr(source, "annotation", None),
                kind=kinds[parameter.kind],
                default=_default(field.default),
            )
        )
    init = griffe.Function(
        "__init__", parameters=griffe.Parameters(*parameters), returns="None", parent=cls
    )
    cls.set_member("__init__", init)


def _default(default: object) -> str | None:
    """How a field's default reads in a signature; None when the field is required."""
    if default is attrs.NOTHING:
        return None
    if isinstance(default, attrs.Factory):
        # A factory that looks at the other fields (RateLimit.burst) has no one value.
        return "..." if default.takes_self else repr(default.factory())
    return repr(default)
