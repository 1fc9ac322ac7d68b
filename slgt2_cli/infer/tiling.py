"""Sliding-window arithmetic for whole-scene inference: tile origins, blending weights, row-band streaming.

Pure numpy, no I/O. A scene is covered by tiles of ``tile`` pixels every ``stride`` pixels, the last tile
flush with the scene's edge. Tiles are processed one row of tiles at a time; overlapping class probabilities
are blended with smooth weights in a :class:`BlendAccumulator` that only holds the rows not yet final, so
memory grows with ``tile × width``, never with the scene's height.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np

from slgt2_cli.errors import InputError

MAX_TILE = 4096
"""Largest tile accepted: one tile of the paper's input (2 channels × 16 frames) at this size is 4 GiB already."""
WEIGHT_FLOOR = 1e-3
"""Smallest blending weight, so pixels covered only by a tile's edge (scene borders) still get a value."""


class Blend(str, Enum):
    """How overlapping tiles are weighted (``predict --blend``); a new member is all a new mode needs here."""

    COSINE = "cosine"
    GAUSSIAN = "gaussian"
    AVERAGE = "average"
    """The reference's slide inference (mmseg ``slide_inference``): raw logits of every tile covering a pixel
    summed and divided by their count, softmax after. See :func:`logits_blended`."""


BLEND_MODES = tuple(b.value for b in Blend)
"""How overlapping tiles are combined: ``cosine`` / ``gaussian`` weight class probabilities by a smooth window;
``average`` averages raw logits as the reference does."""


def check_tile_stride(tile: int, stride: int) -> None:
    """Raise :class:`InputError` unless ``0 < stride <= tile <= MAX_TILE``."""
    if int(tile) != tile or tile < 1:
        raise InputError(f"{{tile}} must be a positive number of pixels, got {tile}", options=("tile",))
    if tile > MAX_TILE:
        raise InputError(f"{{tile}} {tile} is larger than {MAX_TILE} px: one tile would not fit in memory "
                         "(tiles of the training patch size work best)", options=("tile",))
    if int(stride) != stride or stride < 1:
        raise InputError(f"{{stride}} must be a positive number of pixels, got {stride}", options=("stride",))
    if stride > tile:
        raise InputError(f"{{stride}} ({stride}) must not exceed {{tile}} ({tile}): pixels between tiles would be "
                         "skipped", options=("stride", "tile"))


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``; the last tile ends flush with ``length``.

    A scene no longer than one tile gets a single tile at 0 (the caller pads it to ``tile``).
    """
    check_tile_stride(tile, stride)
    if length < 1:
        raise InputError(f"cannot tile an empty scene (length {length})")
    if length <= tile:
        return [0]
    last = length - tile
    origins = list(range(0, last, stride))
    origins.append(last)
    return origins


def _ramp(tile: int, stride: int, kind: str) -> np.ndarray:
    """1-D weight profile of length ``tile``."""
    x = np.arange(tile, dtype=np.float64) + 0.5
    if kind == "cosine":
        # Flat in the middle, a raised-cosine ramp across the overlap with the neighbouring tiles.
        overlap = tile - stride
        if overlap <= 0:
            return np.ones(tile)
        dist = np.minimum(x, tile - x)  # distance to the nearer edge, in (0, tile/2]
        return np.where(dist < overlap, 0.5 - 0.5 * np.cos(np.pi * np.clip(dist / overlap, 0, 1)), 1.0)
    if kind == "gaussian":
        sigma = tile / 8.0
        return np.exp(-0.5 * ((x - tile / 2.0) / sigma) ** 2)
    raise InputError(f"unknown blending {kind!r}; use {' or '.join(b.value for b in Blend)}")


def logits_blended(kind: str) -> bool:
    """True when ``kind`` averages raw logits (then softmax), False when it blends probabilities."""
    return str(kind) == "average"


def blend_weights(tile: int, stride: int, kind: str = "cosine") -> np.ndarray:
    """(tile, tile) float32 weights: smooth, highest in the centre, never below :data:`WEIGHT_FLOOR`;
    all ones for ``average`` (every tile counts once, as the reference's count matrix)."""
    check_tile_stride(tile, stride)
    if logits_blended(kind):
        return np.ones((tile, tile), dtype=np.float32)
    ramp = _ramp(tile, stride, kind)
    w = np.outer(ramp, ramp)
    w = w / w.max()
    return np.maximum(w, WEIGHT_FLOOR).astype(np.float32)


class Tile(NamedTuple):
    """A tile clipped to the scene: ``row, col`` origin and ``height, width`` inside the scene."""

    row: int
    col: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of a ``height × width`` scene, grouped in rows of tiles for streaming."""

    height: int
    width: int
    tile: int
    stride: int

    def __post_init__(self) -> None:
        check_tile_stride(self.tile, self.stride)
        if self.height < 1 or self.width < 1:
            raise InputError(f"cannot tile an empty scene ({self.width}x{self.height} px)")

    @property
    def rows(self) -> list[int]:
        """Row origins of the tile rows."""
        return tile_origins(self.height, self.tile, self.stride)

    @property
    def cols(self) -> list[int]:
        """Column origins of the tiles in each row."""
        return tile_origins(self.width, self.tile, self.stride)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def row_tiles(self, r: int) -> list[Tile]:
        """Tiles of tile row ``r``, left to right, clipped to the scene."""
        row = self.rows[r]
        h = min(self.tile, self.height - row)
        return [Tile(row, c, h, min(self.tile, self.width - c)) for c in self.cols]

    def __iter__(self) -> Iterator[Tile]:
        for r in range(len(self.rows)):
            yield from self.row_tiles(r)

    def final_rows_after(self, r: int) -> int:
        """Scene rows ``[0, n)`` that no later tile row touches once tile row ``r`` is done."""
        rows = self.rows
        return rows[r + 1] if r + 1 < len(rows) else self.height


class BlendAccumulator:
    """Weighted sums of class probabilities over a sliding band of scene rows.

    ``add`` tiles in any order within the band; ``pop_final(until)`` returns the normalised probabilities
    of rows ``[start, until)`` and forgets them. Memory: ``(K + 1) × band × width`` float32, where the band
    is the rows between the last popped row and the lowest tile added (one tile height when streaming a
    :class:`TileGrid` row by row).
    """

    def __init__(self, num_classes: int, width: int, band_rows: int = 0):
        self.num_classes, self.width = int(num_classes), int(width)
        self.start = 0  # scene row of buffer row 0
        self._sum = np.zeros((self.num_classes, band_rows, self.width), dtype=np.float32)
        self._wsum = np.zeros((band_rows, self.width), dtype=np.float32)

    @property
    def band_rows(self) -> int:
        """Rows currently allocated."""
        return self._wsum.shape[0]

    def _reserve(self, rows: int) -> None:
        if rows <= self.band_rows:
            return
        extra = rows - self.band_rows
        self._sum = np.concatenate([self._sum, np.zeros((self.num_classes, extra, self.width), np.float32)], axis=1)
        self._wsum = np.concatenate([self._wsum, np.zeros((extra, self.width), np.float32)], axis=0)

    def add(self, row0: int, col0: int, probs: np.ndarray, weights: np.ndarray) -> None:
        """Accumulate ``probs`` (K, h, w) at scene position (row0, col0), weighted by ``weights[:h, :w]``."""
        k, h, w = probs.shape
        if k != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {k}")
        if row0 < self.start:
            raise ValueError(f"rows before {self.start} were already popped; cannot add at row {row0}")
        if col0 < 0 or col0 + w > self.width:
            raise ValueError(f"tile columns {col0}..{col0 + w} outside the scene width {self.width}")
        wt = np.asarray(weights, dtype=np.float32)[:h, :w]
        if wt.shape != (h, w):
            raise ValueError(f"weights {weights.shape} smaller than the tile ({h}, {w})")
        r0 = row0 - self.start
        self._reserve(r0 + h)
        self._sum[:, r0 : r0 + h, col0 : col0 + w] += probs.astype(np.float32, copy=False) * wt
        self._wsum[r0 : r0 + h, col0 : col0 + w] += wt

    def pop_final(self, until_row: int) -> tuple[int, np.ndarray]:
        """Return ``(start_row, probs (K, until_row - start_row, width))`` normalised, and release those rows."""
        n = until_row - self.start
        if n < 0 or until_row > self.start + self.band_rows:
            raise ValueError(f"cannot pop rows {self.start}..{until_row}: band holds {self.band_rows} rows")
        wsum = self._wsum[:n]
        if n and not np.all(wsum > 0):
            bad = int(np.argmin(wsum.min(axis=1) > 0)) + self.start
            raise ValueError(f"row {bad} has pixels that no tile covered")
        out = self._sum[:, :n] / wsum
        # Shift the rest of the band up; keep the allocation (it is one band, reused).
        keep = self.band_rows - n
        self._sum[:, :keep] = self._sum[:, n:]
        self._sum[:, keep:] = 0
        self._wsum[:keep] = self._wsum[n:]
        self._wsum[keep:] = 0
        row0, self.start = self.start, until_row
        return row0, out
