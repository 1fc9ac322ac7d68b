"""Inference settings, declared once: the one keyword-only dataclass that `predict`, `predict-many`,
`evaluate --checkpoint`, :class:`~slgt2_cli.infer.predictor.Predictor` and ``slgt2.predict`` take.

In: the user's choices (strings or the Enums below, as the CLI parses them). Out: a frozen, checked value with
Enum-typed choices. Defaults live here and nowhere else (the CLI's defaults are read from this class).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from slgt2_cli.errors import InputError
from slgt2_cli.infer.device import parse_device
from slgt2_cli.infer.tiling import Blend
from slgt2_cli.io.units import Units
from slgt2_cli.runtime import Precision

DEFAULT_BATCH_SIZE = 4
"""Tiles per forward pass unless asked otherwise (every inference entry point)."""


def _enum(kind: type, value: Any, option: str) -> Any:
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise InputError(f"unknown {{{option}}} {value!r}; use one of {choices}", options=(option,)) from None


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How a model runs over a scene. ``None`` means the checkpoint's own value (tile, stride, blend) or the
    stack's detected one (units)."""

    tile: int | None = None
    """Tile size in pixels (None: the checkpoint's tile, else its training patch)."""
    stride: int | None = None
    """Step between tiles (None: the checkpoint's stride, scaled to ``tile``)."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Tiles per forward pass (results do not depend on it)."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    blend: Blend | None = None
    """Overlapping tiles: None is the checkpoint's (average for converted reference checkpoints, else cosine)."""
    units: Units | None = None
    """Override the unit detection of the stacks."""
    tta: bool = False
    """Average over horizontal and vertical flips (3x compute)."""
    precision: Precision = Precision.AUTO
    """Network arithmetic: fp32, bf16 or auto."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the choices once, here
        set_(self, "blend", _enum(Blend, self.blend, "blend"))
        set_(self, "units", _enum(Units, self.units, "units"))
        set_(self, "precision", _enum(Precision, self.precision, "precision"))
        try:
            set_(self, "device", parse_device(self.device))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise InputError(f"{{batch_size}} must be a whole number of at least 1, not {self.batch_size!r}",
                             options=("batch_size",))

    def with_(self, **changes: Any) -> InferenceSettings:
        """A copy with ``changes`` (checked the same way)."""
        return replace(self, **changes)

    @property
    def blend_name(self) -> str | None:
        return None if self.blend is None else self.blend.value

    @property
    def units_name(self) -> str | None:
        return None if self.units is None else self.units.value

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON: summary.json, benchmarks)."""
        return {"tile": self.tile, "stride": self.stride, "batch_size": self.batch_size, "device": self.device,
                "blend": self.blend_name, "units": self.units_name, "tta": self.tta,
                "precision": self.precision.value}


SETTINGS_FIELDS = ("tile", "stride", "batch_size", "device", "blend", "units", "tta", "precision")
"""The keyword arguments the Python API takes for :class:`InferenceSettings`."""


def settings_from(options: dict[str, Any], base: InferenceSettings | None = None) -> tuple[InferenceSettings, dict]:
    """Split ``options`` into an :class:`InferenceSettings` (its fields, over ``base``) and the rest."""
    mine = {k: options[k] for k in SETTINGS_FIELDS if k in options}
    rest = {k: v for k, v in options.items() if k not in SETTINGS_FIELDS}
    return (replace(base, **mine) if base is not None else InferenceSettings(**mine)), rest
