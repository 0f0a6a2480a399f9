"""The library's own cattrs converter (never the global one).

Two converters are configured identically by :func:`configure_converter`: a fast one with
``detailed_validation=False`` for every response, and a detailed one used only after the fast
one failed, to name the offending path in the :class:`ResponseDecodeError` (the error path is
cold; the hot path should not pay for the bookkeeping).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from . import models
from .errors import ResponseDecodeError

__all__ = ["structure"]

T = TypeVar("T")

# Response keys that are not the camelCase of the field name.
_RENAMES: dict[type[Any], dict[str, str]] = {
    models.TransferCheck: {"points": "pointsTobeTransferred", "request_id": "request_id"},
}
# v1.1 objects use snake_case on the wire already; v2 objects use camelCase.
_SNAKE_CASE_ON_WIRE: tuple[type[Any], ...] = (models.ValidationCode, models.ItemStatus)

_CAMEL = re.compile(r"_([a-z0-9])")


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


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
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
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


def _structure_datetime(value: Any, _: type[Any]) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    # Python 3.10's fromisoformat does not read a trailing Z.
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    # Capillary stamps its times with the cluster's offset; one without is taken as UTC so that
    # every timestamp the library hands out is comparable.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the hooks for Capillary's JSON on ``converter``."""
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(datetime, _structure_datetime)
    for cls in (
        models.ItemStatus,
        models.ValidationCode,
        models.Actor,
        models.Attribution,
        models.ProfileIdentifier,
        models.CommChannel,
        models.Profile,
        models.LoyaltyInfo,
        models.Customer,
        models.TransferCheck,
    ):
        renames = _RENAMES.get(cls, {})
        overrides: dict[str, Any] = {}
        for field in attrs.fields(cls):
            wire = renames.get(field.name)
            if wire is None and cls not in _SNAKE_CASE_ON_WIRE:
                wire = _camel(field.name)
            if wire is not None and wire != field.name:
                overrides[field.name] = override(rename=wire)
        converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **overrides))


def _make(detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    configure_converter(converter)
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
        else:  # pragma: no cover - the two converters are configured identically
            detail = "unknown"
        raise ResponseDecodeError(
            f"{what} answer does not match the documented shape: {detail}",
            request_id=payload.get("request_id"),
        ) from None
