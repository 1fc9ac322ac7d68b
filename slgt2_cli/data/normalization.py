"""Per-channel normalisation statistics in model-input space, computed in one streaming pass.

Statistics are taken after unit conversion and the temporal rule (what the network actually sees), over
pixels with at least one valid observation, window by window so no stack is ever read whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError

MIN_STD = 1e-6


@dataclass(frozen=True)
class Normalization:
    """``x_norm = (x - mean[c]) / std[c]`` per input channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise InputError(f"normalisation: {len(self.mean)} means but {len(self.std)} standard deviations")
        if any(not np.isfinite(s) or s <= 0 for s in self.std) or not all(np.isfinite(self.mean)):
            raise InputError(f"normalisation: invalid statistics mean={self.mean} std={self.std}")

    @property
    def num_channels(self) -> int:
        return len(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        try:
            return cls(tuple(float(m) for m in data["mean"]), tuple(float(s) for s in data["std"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"normalisation: not valid statistics {data!r}") from None

    def apply(self, x: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Normalise ``x`` (channels on ``channel_axis``) as float32."""
        if x.shape[channel_axis] != self.num_channels:
            raise InputError(f"the input has {x.shape[channel_axis]} channels, the model expects {self.num_channels}")
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self.std, dtype=np.float32).reshape(shape)
        return ((x - mean) / std).astype(np.float32, copy=False)


def iter_windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Row-major windows of at most ``size`` x ``size`` covering the grid."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


class _Moments:
    """Streaming per-channel mean/variance (shifted sums in float64)."""

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None
        self.n = 0
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:  # values: (C, N)
        if values.shape[1] == 0:
            return
        v = values.astype(np.float64)
        if self.shift is None:
            self.shift = v.mean(axis=1, keepdims=True)
            self.s1 = np.zeros(v.shape[0])
            self.s2 = np.zeros(v.shape[0])
        d = v - self.shift
        self.s1 += d.sum(axis=1)
        self.s2 += (d * d).sum(axis=1)
        self.n += v.shape[1]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.shift is not None and self.s1 is not None and self.s2 is not None
        m = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - m * m, 0.0)
        return m + self.shift[:, 0], np.maximum(np.sqrt(var), MIN_STD)


def _as_reader(source: Any, stack: ExitStack, units: str | None = None) -> Any:
    """A Stack-like reader for a Stack, a Scene (has ``open(units)``) or a path; ``units`` overrides the
    detected units of the stored values (a Stack given as such is read as it was opened)."""
    if hasattr(source, "read") and hasattr(source, "grid"):
        return source
    if hasattr(source, "open"):
        return stack.enter_context(source.open(units))
    from slgt2_cli.io.stacks import open_stack

    return stack.enter_context(open_stack(source, units))


def compute_normalization(sources: Iterable[Any], rule: TemporalRule, window: int = 256,
                          max_windows_per_stack: int | None = None, units: str | None = None) -> Normalization:
    """Per-channel mean/std of the model input (after units and ``rule``) over valid pixels of ``sources``
    (Stacks, Scenes or paths), read ``window`` x ``window`` at a time. ``max_windows_per_stack`` takes evenly
    spaced windows only, for very large stacks; ``units`` overrides the stored units of Scenes and paths."""
    moments = _Moments()
    channels: int | None = None
    for source in sources:
        with ExitStack() as stack:
            reader = _as_reader(source, stack, units)
            rule.check(reader)
            if channels is not None and reader.num_channels != channels:
                raise InputError(f"has {reader.num_channels} channels, other training stacks have {channels}",
                                 getattr(reader, "path", None))
            channels = reader.num_channels
            windows = list(iter_windows(reader.grid.height, reader.grid.width, window))
            if max_windows_per_stack is not None and len(windows) > max_windows_per_stack:
                pick = np.linspace(0, len(windows) - 1, max_windows_per_stack).round().astype(int)
                windows = [windows[i] for i in pick]
            for win in windows:
                raw = reader.read(win)
                valid = ~np.isnan(raw).any(axis=1).all(axis=0)  # (h, w): some observation is valid
                if not valid.any():
                    continue
                # NaN fill: padded frames (pad mode) are not data and stay out of the statistics
                frames = rule.apply(raw, reader.dates, fill=np.full(raw.shape[1], np.nan))  # (L, C, h, w)
                values = np.moveaxis(frames[:, :, valid], 1, 0).reshape(raw.shape[1], -1)
                moments.add(values[:, np.isfinite(values).all(axis=0)])
    if moments.n == 0:
        raise InputError("no valid pixels in the training stacks to compute normalisation statistics from")
    mean, std = moments.result()
    return Normalization(tuple(float(m) for m in mean), tuple(float(s) for s in std))


# The reference configs' fixed statistics of the seed datasets (ARCHITECTURE.md, "The reference pipeline"),
# by dataset kind: (model units they apply to, mean, std). Brandenburg: the train/val pipeline's values.
SEED_STATISTICS: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    "mts12": ("scaled", (127.09, 52.14), (43.30, 40.76)),
    "brandenburg": ("db", (-16.37, -10.59), (3.12, 3.20)),
    "brandenburg-s2": ("db", (-16.54, -10.91), (3.07, 2.89)),
}


def seed_normalization(kind: str, units: str) -> Normalization | None:
    """The fixed statistics of a seed dataset (``kind`` as ``open_dataset`` names it), None for other datasets;
    InputError when the stacks are read in other ``units`` than the statistics are for."""
    if kind not in SEED_STATISTICS:
        return None
    expected, mean, std = SEED_STATISTICS[kind]
    if units != expected:
        raise InputError(f"the {kind} dataset's fixed normalisation is for {expected!r} values, but the stacks are "
                         f"read as {units!r} (drop the units override, or use computed normalisation)")
    return Normalization(mean, std)
