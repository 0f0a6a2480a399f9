"""The library's own cattrs converter (never the global one).

:func:`configure_converter` sets up two converters with the same primitive hooks: a fast one
whose model hooks are compiled per class (:func:`_compile_hook`) for every response, and one
with cattrs' own generated hooks and ``detailed_validation=True``, used only after the fast one
failed, to name the offending path in the :class:`ResponseDecodeError` (the error path is cold;
the hot path should not pay for the bookkeeping).
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar, Union, cast, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from . import models
from .errors import ResponseDecodeError

__all__ = ["builder", "structure"]

T = TypeVar("T")

_CAMEL = re.compile(r"_([a-z0-9])")


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def wire_names(cls: type[Any]) -> dict[str, str]:
    """Each field's JSON key: its ``wire`` metadata where a model declares one, else the
    class's naming rule (camelCase for v2 objects, the field name for v1.1's snake_case)."""
    snake = getattr(cls, "_wire_case", "camel") == "snake"
    return {
        f.name: f.metadata.get(models.WIRE) or (f.name if snake else _camel(f.name))
        for f in attrs.fields(cls)
    }


def _structure_bool(value: Any, _: type[Any]) -> bool:
    # bool("false") is True: v1.1 sends success flags as strings, so parse them strictly.
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    raise ValueError(f"expected a boolean, got {value!r}")


def _structure_int(value: Any, _: type[Any]) -> int:
    # Codes and points arrive as ints or as digit strings ("200", "50"); floats like 50.0 too.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _structure_float(value: Any, _: type[Any]) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _structure_str(value: Any, _: type[Any]) -> str:
    # Identifiers such as external ids sometimes come back as JSON numbers.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {value!r}")


# The zone letters datetime.fromisoformat cannot read: "Z" before Python 3.11, "z" in all.
_UNREAD_ZONES = "z" if sys.version_info >= (3, 11) else "zZ"


def _as_utc(naive: datetime) -> datetime:
    # Capillary stamps its times with the cluster's offset; one without is taken as UTC so that
    # every timestamp the library hands out is comparable.
    return naive.replace(tzinfo=timezone.utc)


def _aware_from_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else _as_utc(parsed)


def _structure_datetime(value: Any, _: type[Any]) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    return _aware_from_iso(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)


Hook = Callable[[Any, Any], Any]

_PRIMITIVES: dict[Any, Hook] = {
    str: _structure_str,
    int: _structure_int,
    float: _structure_float,
    bool: _structure_bool,
}


def _json_object(value: Any, _: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return value


def _conversion(converter: cattrs.Converter, t: Any, var: str, env: dict[str, Any]) -> list[str]:
    """Source lines that turn ``var`` (not None) into a ``t``, in place."""
    name = f"_h{len(env)}"
    if t in _PRIMITIVES:
        # The common case, a value already of the right type, costs one type check, no call.
        env[name] = _PRIMITIVES[t]
        return [f"if type({var}) is not {t.__name__}: {var} = {name}({var}, None)"]
    args = get_args(t)
    if get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis:
        if args[0] is Any:
            return [f"{var} = tuple({var})"]
        env[name] = converter.get_structure_hook(args[0])
        return [f"{var} = tuple([{name}(x, None) for x in {var}])"]
    if t is datetime:
        # The hook's checks and Z rewriting double the cost of a timestamp, and an
        # isTransferrable answer has ten; they run only for what fromisoformat cannot read.
        # _aware_from_iso is inlined, with fromisoformat bound once: the call and the class
        # method's lookup per timestamp were 3% of structuring that answer (callgrind).
        env.update(_fromiso=datetime.fromisoformat, _as_utc=_as_utc, _unread=_UNREAD_ZONES)
        env[name] = _structure_datetime
        return [
            f"if type({var}) is str and {var}[-1:] not in _unread:",
            f"    {var} = _fromiso({var})",
            f"    if {var}.tzinfo is None: {var} = _as_utc({var})",
            f"else: {var} = {name}({var}, None)",
        ]
    if get_origin(t) in (dict, Mapping):
        env[name] = _json_object
        return [f"if type({var}) is not dict: {var} = {name}({var}, None)"]
    env[name] = converter.get_structure_hook(t)
    env[f"{name}_t"] = t
    return [f"{var} = {name}({var}, {name}_t)"]


def _plain_slots(cls: type[Any]) -> bool:
    """Whether ``cls.__init__`` does nothing but store its arguments in ``cls``'s own slots."""
    return (
        "__slots__" in cls.__dict__
        and not any(
            hasattr(cls, hook)
            for hook in ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_init__")
        )
        and all(
            f.validator is None
            and f.converter is None
            and f.init
            and isinstance(cls.__dict__.get(f.name), types.MemberDescriptorType)
            for f in attrs.fields(cls)
        )
    )


def _draft(cls: type[Any]) -> type[Any]:
    """A subclass of the slotted class ``cls`` whose instances take plain attribute writes."""
    return type(
        f"_Draft{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            # Both, or Python keeps the class's own attribute hook for writes.
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__init__": object.__init__,
        },
    )


def _fill(cls: type[Any], values: Mapping[str, str], env: dict[str, Any]) -> list[str]:
    """Source lines that build a ``cls`` from the expressions ``values`` (field name to
    source) into ``self``, for a class :func:`_plain_slots` accepts.

    A frozen attrs ``__init__`` sets each slot through a call of ``object.__setattr__``: Python
    has no other way past the class's own ``__setattr__``. These lines fill a draft instead, a
    subclass that adds nothing but plain attribute writes, which the interpreter specialises,
    and then set its ``__class__`` to ``cls``, which Python allows between classes of one
    layout: from then on it is a ``cls`` like any other, frozen. For a six-field model that
    is a quarter of the instructions of ``__init__``, half those of filling the slots'
    descriptors one call each (callgrind).
    """
    env["_cls"], env["_draft"] = cls, _draft(cls)
    return [
        "self = _draft()",
        *(f"self.{name} = {source}" for name, source in values.items()),
        "self.__class__ = _cls",
    ]


def builder(cls: type[T]) -> Callable[..., T]:
    """A function that takes the arguments of ``cls(...)`` and builds the same object
    through :func:`_fill`, for a frozen slotted attrs class whose ``__init__`` only stores
    them (no validator, converter or post-init hook). For the objects every call makes;
    everything else calls the class. An ApiRequest: 8.3k instructions through the class,
    3.1k through its builder (callgrind)."""
    if not _plain_slots(cls):
        raise TypeError(f"{cls.__qualname__}.__init__ does more than store its arguments")
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    env: dict[str, Any] = {}
    positional: list[str] = []
    keyword: list[str] = []
    # alias: the argument's name (attrs drops a private field's leading underscore)
    alias = {field.name: field.alias or field.name for field in fields}
    for field in fields:
        param = alias[field.name]
        if field.default is not attrs.NOTHING:
            if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                raise TypeError(f"{cls.__qualname__}.{field.name} has a default factory")
            env[f"_d_{field.name}"] = field.default
            param += f"=_d_{field.name}"
        (keyword if field.kw_only else positional).append(param)
    params = ", ".join(positional + (["*", *keyword] if keyword else []))
    lines = [f"def build({params}):", *(f"    {line}" for line in _fill(cls, alias, env))]
    lines.append("    return self")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<build {cls.__qualname__}>", "exec"), env, namespace)
    build: Callable[..., T] = namespace["build"]
    return build


def _compile_hook(converter: cattrs.Converter, cls: type[Any]) -> Hook:
    """Build a structure function for one model class, specialised to its fields.

    cattrs' generated functions call a hook per field even for a string that is already a
    string, and route Optionals through a generic dispatcher; with about 120 fields in an
    isTransferrable answer that was most of the client's CPU per request (bench_cpu.py). This
    one inlines the type checks of primitives and calls nested models' hooks directly. JSON
    null, like a missing key, gives the field's default; null for a list or object gives an
    empty one.
    """
    fields = attrs.fields(attrs.resolve_types(cls))
    wire = wire_names(cls)
    env: dict[str, Any] = {"_cls": cls}
    lines = ["def structure(o, _):"]
    kwargs = []
    for field in fields:
        var = f"v_{field.name}"
        t = field.type
        args = get_args(t)
        optional = get_origin(t) in (Union, types.UnionType) and type(None) in args
        if optional:
            t = next(a for a in args if a is not type(None))
        if field.default is attrs.NOTHING:
            lines.append(f"    {var} = o[{wire[field.name]!r}]")
        else:
            lines.append(f"    {var} = o.get({wire[field.name]!r})")
        conversion = _conversion(converter, t, var, env)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            env[f"_d_{field.name}"] = default.factory
            default_source = f"_d_{field.name}()"
        elif default is attrs.NOTHING or default is None:
            default_source = "None"
        else:
            env[f"_d_{field.name}"] = default
            default_source = f"_d_{field.name}"
        if default is attrs.NOTHING and not optional:
            lines.extend(f"    {line}" for line in conversion)
        else:
            lines.append(f"    if {var} is None:")
            lines.append(f"        {var} = {default_source}")
            lines.append("    else:")
            lines.extend(f"        {line}" for line in conversion)
        kwargs.append(f"{field.name}={var}")
    if _plain_slots(cls):
        # Nothing for a frozen attrs __init__ to do but parse keyword arguments and store
        # them: _fill builds the same object.
        values = {field.name: f"v_{field.name}" for field in fields}
        lines.extend(f"    {line}" for line in _fill(cls, values, env))
        lines.append("    return self")
    else:
        lines.append(f"    return _cls({', '.join(kwargs)})")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<structure {cls.__qualname__}>", "exec"), env, namespace)
    hook: Hook = namespace["structure"]
    return hook


def configure_converter(converter: cattrs.Converter, *, fast: bool = True) -> None:
    """Register the hooks for Capillary's JSON on ``converter``.

    Every attrs class gets its hook from a factory over the class itself (cattrs'
    ``register_structure_hook_factory``), built the first time it is needed, nested classes
    included: there is no list of models to keep in order or to forget. ``fast`` makes the
    compiled hooks of :func:`_compile_hook`; otherwise cattrs' own generated ones, whose
    detailed validation names the path of a failure. Both read the wire names from
    :func:`wire_names`.
    """
    for primitive, hook in _PRIMITIVES.items():
        converter.register_structure_hook(primitive, hook)
    converter.register_structure_hook(datetime, _structure_datetime)
    if fast:
        converter.register_structure_hook_factory(
            attrs.has, lambda cls: _compile_hook(converter, cls)
        )
        return

    def generated(cls: type[Any]) -> Hook:
        renames: dict[str, Any] = {
            name: override(rename=key) for name, key in wire_names(cls).items() if key != name
        }
        return make_dict_structure_fn(cls, converter, **renames)

    converter.register_structure_hook_factory(attrs.has, generated)


def _make(detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    configure_converter(converter, fast=not detailed)
    return converter


_FAST = _make(detailed=False)
_DETAILED = _make(detailed=True)


def structure(payload: dict[str, Any], cls: type[T], what: str) -> T:
    """Structure a decoded payload into ``cls``, or raise ResponseDecodeError naming the path."""
    try:
        return _FAST.structure(payload, cls)
    except Exception:
        try:
            _DETAILED.structure(payload, cls)
        except Exception as exc:
            detail = "; ".join(cattrs.transform_error(exc, path=cls.__name__))
        else:  # pragma: no cover - both converters accept the same shapes
            detail = "unknown"
        raise ResponseDecodeError(
            f"{what} answer does not match the documented shape: {detail}",
            request_id=payload.get("request_id"),
        ) from None
