"""A fixed sample of a split: evenly spread tile-sized windows, read and prepared as model input in batches.

Validation during training and the per-pixel baseline look at the same windows each time, so their scores can
be compared from step to step and with each other. The windows are drawn once (no randomness: evenly spaced over
the split's tiles in scene order, so every scene and every part of the split is represented) up to a pixel
budget; ``budget=None`` takes every tile. Windows are squares of ``tile`` pixels inside their scene (a scene
smaller than a tile gives one window, padded when read), so a batch stacks without ragged edges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.preprocess import prepare_input
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable


def _starts(extent: int, tile: int) -> list[int]:
    """Tile origins along one axis: ``ceil(extent / tile)`` tiles inside ``[0, extent)``, evenly spread."""
    if extent <= tile:
        return [0]
    n = -(-extent // tile)
    return sorted({int(v) for v in np.linspace(0, extent - tile, n).round()})


def pick_windows(shapes: Sequence[tuple[int, int]], tile: int, budget: int | None) -> list[tuple[int, Window]]:
    """``(scene index, window)`` pairs: every tile of every scene, or evenly spaced ones up to ``budget`` pixels."""
    cells = [(i, Window(c, r, min(tile, w), min(tile, h)))
             for i, (h, w) in enumerate(shapes) for r in _starts(h, tile) for c in _starts(w, tile)]
    if budget is None or not cells or len(cells) * tile * tile <= budget:
        return cells
    want = max(1, budget // (tile * tile))
    return [cells[i] for i in sorted({int(v) for v in np.linspace(0, len(cells) - 1, want).round()})]


@dataclass(frozen=True)
class WindowSample:
    """Fixed windows of ``scenes`` (anything with ``open()`` and ``open_labels(grid)``), prepared for a model."""

    scenes: Sequence[Any]
    windows: Sequence[tuple[int, Window]]
    tile: int

    @classmethod
    def of(cls, scenes: Sequence[Any], shapes: Sequence[tuple[int, int]], tile: int, budget: int | None
           ) -> WindowSample:
        return cls(tuple(scenes), tuple(pick_windows(shapes, tile, budget)), int(tile))

    @property
    def pixels(self) -> int:
        return sum(int(w.width * w.height) for _, w in self.windows)

    @property
    def scene_count(self) -> int:
        return len({i for i, _ in self.windows})

    def part(self, rank: int, world: int) -> WindowSample:
        """Every ``world``-th window from ``rank`` (a rank's share under DDP)."""
        return WindowSample(self.scenes, tuple(self.windows[rank::world]), self.tile)

    def batches(self, rule: TemporalRule, norm: Normalization, classes: ClassTable, batch_size: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x (B, C, L, t, t) float32, y (B, t, t) int64)``: model input and model classes (IGNORE_INDEX where
        unlabelled or without data, and in the padding of windows of scenes smaller than the tile)."""
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for x, y in self._prepared(rule, norm, classes):
            xs.append(x)
            ys.append(y)
            if len(xs) == batch_size:
                yield np.stack(xs), np.stack(ys)
                xs, ys = [], []
        if xs:
            yield np.stack(xs), np.stack(ys)

    def _prepared(self, rule: TemporalRule, norm: Normalization, classes: ClassTable
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        t = self.tile
        by_scene: dict[int, list[Window]] = {}
        for i, window in self.windows:
            by_scene.setdefault(i, []).append(window)
        for i, windows in by_scene.items():  # each scene opened once per pass
            scene = self.scenes[i]
            with scene.open() as stack, scene.open_labels(stack.grid) as labels:
                for window in windows:
                    x, valid = prepare_input(stack.read(window), stack.dates, rule, norm)
                    values, labelled = labels.read(window)
                    y = np.where(valid, classes.encode(values, labelled), IGNORE_INDEX)
                    h, w = y.shape
                    if (h, w) != (t, t):
                        x = np.pad(x, ((0, 0), (0, 0), (0, t - h), (0, t - w)))
                        y = np.pad(y, ((0, t - h), (0, t - w)), constant_values=IGNORE_INDEX)
                    yield x, y
