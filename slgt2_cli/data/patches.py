"""Random training patches with the paper's augmentation, reproducible per sample.

Each sample ``i`` draws from its own generator seeded by ``(seed, epoch, i)``: a scene (weighted by area), a
scale in ``scale_range`` (log-uniform, or uniform as the reference draws it), and a window of
``patch_size / scale`` pixels with at least ``min_labelled`` labelled pixels and at most ``max_class_share`` of
one class (a few tries, then the best is taken). Only that window of the stack and labels is read, then resized
to the patch size, flipped and (unless ``rotate=False``) rotated.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.preprocess import prepare_input
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable

_OPEN_READERS = 16


def resize_nearest(y: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array (pixel centres)."""
    h, w = y.shape
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(int), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(int), w - 1)
    return y[rows[:, None], cols[None, :]]


def resize_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of ``(..., h, w)`` float32 (torch, half-pixel centres)."""
    if x.shape[-2:] == (out_h, out_w):
        return x
    lead = x.shape[:-2]
    t = torch.from_numpy(np.ascontiguousarray(x)).reshape(1, -1, *x.shape[-2:])
    t = torch.nn.functional.interpolate(t, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return t.reshape(*lead, out_h, out_w).numpy()


def crop_score(y: np.ndarray, min_labelled: float, max_class_share: float | None) -> tuple[bool, float]:
    """(acceptable, badness) of a label crop: labelled share and the largest single-class share."""
    labelled = y != IGNORE_INDEX
    share = float(labelled.mean()) if y.size else 0.0
    if not labelled.any():
        return False, 2.0
    top = float(np.bincount(y[labelled]).max()) / float(labelled.sum())
    ok = share >= min_labelled and (max_class_share is None or top <= max_class_share)
    return ok, max(0.0, min_labelled - share) * 10 + (top if max_class_share is not None else 0.0)


class PatchDataset(torch.utils.data.Dataset):
    """``length`` random patches ``(x float32 (C, L, P, P), y int64 (P, P))`` from ``scenes``.

    ``y`` holds model classes, IGNORE_INDEX where unlabelled, off the class table, or without image data.
    Call :meth:`set_epoch` to draw new patches per epoch; the same (seed, epoch, index) gives the same patch.
    """

    def __init__(self, scenes: Sequence[Any], classes: ClassTable, rule: TemporalRule, norm: Normalization,
                 patch_size: int, length: int, seed: int = 0, augment: bool = True, min_labelled: float = 0.05,
                 max_class_share: float | None = 0.75, scale_range: tuple[float, float] = (0.5, 2.0),
                 crop_tries: int = 5, rotate: bool = True, units: str | None = None, log_uniform: bool = True,
                 shapes: Sequence[tuple[int, int]] | None = None):
        if not scenes:
            raise InputError("no scenes to sample training patches from")
        if patch_size < 1 or length < 1:
            raise InputError(f"patch size and epoch length must be positive ({patch_size}, {length})")
        self.scenes, self.classes, self.rule, self.norm = list(scenes), classes, rule, norm
        self.patch_size, self.length, self.seed, self.epoch = int(patch_size), int(length), int(seed), 0
        self.augment, self.min_labelled, self.max_class_share = augment, min_labelled, max_class_share
        self.scale_range, self.crop_tries, self.rotate, self.units = scale_range, crop_tries, rotate, units
        self.log_uniform = log_uniform
        self._readers: OrderedDict[int, Any] = OrderedDict()
        self._pid = os.getpid()
        if shapes is not None and len(shapes) != len(self.scenes):
            raise ValueError(f"{len(shapes)} shapes for {len(self.scenes)} scenes")
        for i, scene in enumerate(self.scenes if shapes is None else []):  # headers: validates every scene
            reader = self._reader(i)
            rule.check(reader)
            if reader.num_channels != norm.num_channels:
                raise InputError(f"has {reader.num_channels} channels, the normalisation has {norm.num_channels}",
                                 scene.image)
        self.shapes = list(shapes) if shapes is not None else [self._reader(i).grid.shape
                                                                for i in range(len(self.scenes))]
        area = np.array([h * w for h, w in self.shapes], dtype=np.float64)
        self.weights = area / area.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _reader(self, i: int) -> Any:
        if self._pid != os.getpid():  # forked worker: open its own files
            self._readers, self._pid = OrderedDict(), os.getpid()
        if i in self._readers:
            self._readers.move_to_end(i)
            return self._readers[i]
        reader = self.scenes[i].open(self.units)
        self._readers[i] = reader
        if len(self._readers) > _OPEN_READERS:
            _, old = self._readers.popitem(last=False)
            old.close()
        return reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = OrderedDict()
        return state

    def _scale(self, rng: np.random.Generator) -> float:
        """A rescale factor from ``scale_range``: log-uniform, or uniform as the reference draws it."""
        if self.log_uniform:
            return float(np.exp(rng.uniform(*np.log(self.scale_range))))
        return float(rng.uniform(*self.scale_range))

    def _pick_window(self, rng: np.random.Generator, labels: Any, shape: tuple[int, int], size: int
                     ) -> tuple[Window, np.ndarray]:
        h, w = min(size, shape[0]), min(size, shape[1])
        best: tuple[float, Window, np.ndarray] | None = None
        limit = self.max_class_share if self.augment else None
        for _ in range(max(1, self.crop_tries)):
            win = Window(int(rng.integers(0, shape[1] - w + 1)), int(rng.integers(0, shape[0] - h + 1)), w, h)
            values, valid = labels.read(win)
            y = self.classes.encode(values, valid)
            ok, badness = crop_score(y, self.min_labelled, limit)
            if ok:
                return win, y
            if best is None or badness < best[0]:
                best = (badness, win, y)
        assert best is not None
        return best[1], best[2]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        i = int(rng.choice(len(self.scenes), p=self.weights))
        scene, reader, shape = self.scenes[i], self._reader(i), self.shapes[i]
        scale = self._scale(rng) if self.augment else 1.0
        size = max(1, int(round(self.patch_size / scale)))
        with scene.open_labels(reader.grid) as labels:
            win, y = self._pick_window(rng, labels, shape, size)
        x, valid = prepare_input(reader.read(win), reader.dates, self.rule, self.norm)
        y = np.where(valid, y, IGNORE_INDEX)
        out_h = min(self.patch_size, max(1, round(win.height * self.patch_size / size)))
        out_w = min(self.patch_size, max(1, round(win.width * self.patch_size / size)))
        x, y = resize_bilinear(x, out_h, out_w), resize_nearest(y, out_h, out_w)
        if (out_h, out_w) != (self.patch_size, self.patch_size):  # scene smaller than the window: pad
            px = np.zeros(x.shape[:2] + (self.patch_size, self.patch_size), dtype=np.float32)
            py = np.full((self.patch_size, self.patch_size), IGNORE_INDEX, dtype=np.int64)
            px[..., :out_h, :out_w], py[:out_h, :out_w] = x, y
            x, y = px, py
        if self.augment:
            if rng.random() < 0.5:
                x, y = x[..., ::-1], y[:, ::-1]
            if self.rotate:
                k = int(rng.integers(0, 4))
                x, y = np.rot90(x, k, axes=(-2, -1)), np.rot90(y, k)
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
