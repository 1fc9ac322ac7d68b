"""The class table: arbitrary label values (e.g. 1110) mapped to model classes 0..K-1, with names and colours."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slgt2_cli.errors import InputError, MissingFileError

IGNORE_INDEX = -1
"""Model-class value of pixels that are ignored in training and scoring (no data, unknown label values)."""

_PALETTE = [
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
    "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1",
    "#000075", "#808080",
]


_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _integer(value: Any, index: int, source: str | Path | None) -> int:
    """A class value as an int: integers, integral floats (1110.0) and integer strings; anything else refused
    (1110.7 would otherwise be truncated to another class)."""
    if isinstance(value, bool):
        raise InputError(f"class entry {index}: value {value!r} is not an integer", source)
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"class entry {index}: value {value!r} is not an integer (class values are whole "
                             f"numbers, e.g. {int(value)})", source)
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"class entry {index}: value {value!r} is not an integer", source) from None


@dataclass(frozen=True)
class ClassInfo:
    value: int
    name: str
    color: str


@dataclass(frozen=True)
class ClassTable:
    """Ordered classes; model class ``i`` is ``classes[i]``."""

    classes: tuple[ClassInfo, ...]

    @classmethod
    def from_list(cls, items: Sequence[dict[str, Any]], source: str | Path | None = None) -> ClassTable:
        """Build from ``[{"value": 1110, "name": ..., "color": "#rrggbb"}, ...]`` (name and colour optional)."""
        if not isinstance(items, (list, tuple)) or not items:
            raise InputError("the class table must be a non-empty JSON list of {value, name, color}", source)
        out, seen = [], set()
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "value" not in item:
                raise InputError(f"class entry {i} has no 'value'", source)
            value = _integer(item["value"], i, source)
            if value in seen:
                raise InputError(f"class value {value} appears twice", source)
            seen.add(value)
            color = item.get("color") or _PALETTE[i % len(_PALETTE)]
            if not isinstance(color, str) or not _HEX_COLOUR.fullmatch(color):
                raise InputError(f"class {value}: colour {color!r} is not #rrggbb (six hexadecimal digits, "
                                 f"e.g. #1f78b4)", source)
            out.append(ClassInfo(value, str(item.get("name") or f"class {value}"), color))
        return cls(tuple(out))

    @classmethod
    def load(cls, path: str | Path) -> ClassTable:
        path = Path(path)
        try:
            items = json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingFileError("class table not found", path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a readable JSON class table ({exc})", path) from None
        return cls.from_list(items, path)

    @classmethod
    def default(cls, values: Sequence[int], names: Sequence[str] | None = None) -> ClassTable:
        names = names or [f"class {v}" for v in values]
        return cls.from_list([{"value": int(v), "name": n} for v, n in zip(values, names)])

    def to_list(self) -> list[dict[str, Any]]:
        return [{"value": c.value, "name": c.name, "color": c.color} for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def values(self) -> np.ndarray:
        return np.array([c.value for c in self.classes], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def rgb(self) -> np.ndarray:
        """(K, 3) uint8 colours."""
        return np.array([[int(c.color[i : i + 2], 16) for i in (1, 3, 5)] for c in self.classes], dtype=np.uint8)

    def encode(self, labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Label values -> model classes (int64); values not in the table (and invalid pixels) -> IGNORE_INDEX."""
        labels = np.asarray(labels)
        values = self.values
        order = np.argsort(values)
        sorted_values = values[order]
        flat = labels.astype(np.int64, copy=False)
        pos = np.clip(np.searchsorted(sorted_values, flat), 0, len(values) - 1)
        hit = sorted_values[pos] == flat
        out = np.where(hit, order[pos], IGNORE_INDEX).astype(np.int64)
        if valid is not None:
            out[~valid] = IGNORE_INDEX
        return out

    def describe_values(self, limit: int = 8) -> str:
        """'7 classes: 1110, 1120, …' for messages."""
        shown = ", ".join(str(v) for v in self.values[:limit])
        return f"{len(self)} classes: {shown}{', …' if len(self) > limit else ''}"

    def decode(self, classes: np.ndarray) -> np.ndarray:
        """Model classes -> label values (int64)."""
        return self.values[np.asarray(classes)]


def check_integral_labels(values: np.ndarray, valid: np.ndarray, path: str | Path | None) -> None:
    """Float label values must be whole numbers (1110.0): InputError for 1110.7, which would silently be
    truncated into class 1110."""
    fractional = valid & (values != np.floor(values))
    if fractional.any():
        example = values[fractional].flat[0]
        raise InputError(f"label raster holds non-integer values (e.g. {example:.10g}); label values must be whole "
                         f"class values: round or reclassify the raster", path)


class LabelCensus:
    """Which label values a run has seen, to tell 'labels that match no class' from 'no labels at all'."""

    def __init__(self, table: ClassTable, keep: int = 12):
        self.table, self.keep = table, keep
        self.known = 0
        self.unknown: set[int] = set()

    def add(self, values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Count the labels of a window; returns their model classes (like :meth:`ClassTable.encode`)."""
        classes = self.table.encode(values, valid)
        self.known += int((classes != IGNORE_INDEX).sum())
        if len(self.unknown) < self.keep:
            seen = np.asarray(values)[(classes == IGNORE_INDEX) & (True if valid is None else valid)]
            self.unknown.update(int(v) for v in np.unique(seen)[: self.keep])
        return classes

    def check(self, what: str, path: str | Path | None, hint: str, options: Sequence[str] = ()) -> None:
        """InputError when labels were found but none has a value of the class table."""
        if self.known == 0 and self.unknown:
            found = sorted(self.unknown)[: self.keep]
            raise InputError(f"none of the label values {what} ({', '.join(map(str, found))}"
                             f"{', …' if len(self.unknown) > self.keep else ''}) is in the class table "
                             f"({self.table.describe_values()})", path, hint, options)
