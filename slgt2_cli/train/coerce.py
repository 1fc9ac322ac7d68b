"""Turning configuration values (from YAML, TOML or Python) into the type their field declares.

YAML reads ``1e-3`` as a string and ``'no'`` stays a string when quoted; a config file is only as useful as
the errors it gives, so every value is coerced by its field's type hint and checked against the field's
bounds (``metadata``), and a bad one is an :class:`InputError` naming the file and the key.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from slgt2_cli.errors import InputError

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}
_NONE = {"none", "null", "~", ""}


class _Bad(ValueError):
    """A value that does not fit its type; the message says what was expected."""


def coerce_value(key: str, value: Any, hint: Any, bounds: Mapping[str, Any], source: Path | None) -> Any:
    """``value`` as ``hint`` (a type hint of a config field), within ``bounds``; InputError naming ``source``
    (the config file, None for options) and ``key`` otherwise."""
    try:
        result = _coerce(value, hint)
        _check_bounds(result, bounds)
    except _Bad as exc:
        why = f" ({bounds['why']})" if "why" in bounds else ""
        raise InputError(f"{key}: {exc}, not {value!r}{why}", source) from None
    return result


def _coerce(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0])
    if value is None:
        raise _Bad(f"must be {_describe(hint)}")
    if origin is tuple:
        return _tuple(value, args)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Bad("must be a mapping")
        return {str(k): v for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum(value, hint)
    if hint is bool:
        return _bool(value)
    if hint is int:
        return _int(value)
    if hint is float:
        return _float(value)
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise _Bad("must be a path")
        return Path(value)
    if hint is str:
        if isinstance(value, Enum):
            return str(value.value)
        if not isinstance(value, str):
            raise _Bad("must be a string")
        return value
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad("must be true or false (yes/no, on/off)")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            raise _Bad("must be an integer") from None
        if number.is_integer():
            return int(number)
    raise _Bad("must be an integer")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad("must be a number")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _Bad("must be a number") from None
    if not math.isfinite(number):
        raise _Bad("must be a finite number")
    return number


def _enum(value: Any, enum: type[Enum]) -> Enum:
    if isinstance(value, enum):
        return value
    text = str(value.value if isinstance(value, Enum) else value).strip().lower()
    for member in enum:
        if str(member.value).lower() == text:
            return member
    raise _Bad(f"must be one of {', '.join(str(m.value) for m in enum)}")


def _tuple(value: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    items = [v for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or len(items) != len(args):
        raise _Bad(f"must be {len(args)} values")
    return tuple(_coerce(v, a) for v, a in zip(items, args))


def _check_bounds(value: Any, bounds: Mapping[str, Any]) -> None:
    if value is None:
        return
    numbers = value if isinstance(value, tuple) else (value,)
    if "min" in bounds and any(v < bounds["min"] for v in numbers):
        raise _Bad(f"must be at least {bounds['min']}")
    if "above" in bounds and any(v <= bounds["above"] for v in numbers):
        raise _Bad(f"must be greater than {bounds['above']}")
    if "max" in bounds and any(v > bounds["max"] for v in numbers):
        raise _Bad(f"must be at most {bounds['max']}")
    if "multiple" in bounds and any(v % bounds["multiple"] for v in numbers):
        raise _Bad(f"must be a multiple of {bounds['multiple']}")
    choices = bounds.get("choices")
    choices = choices() if callable(choices) else choices  # a callable: known only once a heavy module loads
    if choices is not None and value not in choices:
        raise _Bad(f"must be one of {', '.join(map(str, choices))}")
    if bounds.get("ordered") and list(numbers) != sorted(numbers):
        raise _Bad("must be in increasing order")


def _describe(hint: Any) -> str:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return f"one of {', '.join(str(m.value) for m in hint)}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, "a value")
