"""The argument checks every public constructor and call shares: bad input raises
:class:`InvalidRequestError` (a ``ValueError``) naming the argument, before any I/O.

``bool`` is refused wherever a number is wanted: ``True`` is an ``int`` to Python, never a
count or a number of seconds to a caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from .errors import InvalidRequestError

__all__ = ["is_number", "number", "number_field", "whole_number", "whole_number_field"]


def is_number(value: object) -> bool:
    """An int or a finite float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole_number(value: object, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` when it is an int in ``[minimum, maximum]``, else InvalidRequestError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise InvalidRequestError(f"{name} must be a whole number {bounds}, got {value!r}")
    return value


def number(value: object, name: str, *, unit: str = "", zero: bool = False) -> float:
    """``value`` as a float when it is a finite number above 0 (or at least 0 with ``zero``),
    else InvalidRequestError; ``unit`` completes the message ("of seconds")."""
    if not is_number(value) or not (value >= 0 if zero else value > 0):  # type: ignore[operator]
        kind = "a number >= 0" if zero else "a positive number"
        raise InvalidRequestError(
            f"{name} must be {kind}{' ' + unit if unit else ''}, got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def whole_number_field(owner: str, *, minimum: int = 1) -> Validator:
    """An attrs validator: :func:`whole_number` with the message naming ``owner.field``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        whole_number(value, f"{owner}.{attribute.name}", minimum=minimum)

    return check


def number_field(owner: str, *, unit: str = "", zero: bool = False) -> Validator:
    """An attrs validator: :func:`number` with the message naming ``owner.field``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        number(value, f"{owner}.{attribute.name}", unit=unit, zero=zero)

    return check
