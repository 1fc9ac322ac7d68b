"""The pieces of the training procedure a recipe chooses: initialisation, loss, class weights, schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.train.config import Init, LossAverage


def initialise(model: torch.nn.Module, init: Init) -> None:
    """Apply the recipe's initialisation; ``reference``: every Conv3d normal(0, sqrt(2 / fan_out)) with fan_out =
    kernel volume × out channels / groups, bias 0 (Linear and LayerNorm keep the model's own, as the reference)."""
    if init is not Init.REFERENCE:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            fan_out = math.prod(module.kernel_size) * module.out_channels // module.groups
            torch.nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, average: LossAverage
                  ) -> torch.Tensor:
    """Pixel cross-entropy ignoring IGNORE_INDEX: averaged over labelled pixels (NaN when there is none), or
    summed and divided by all pixels, ignored ones included (mmseg's default)."""
    if average is LossAverage.LABELLED:
        return F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX)
    total = F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / y.numel()


def parse_class_weights(spec: str | None, num_classes: int) -> torch.Tensor | None | str:
    """None (no weights), 'auto', or the given numbers; InputError for anything else."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    if spec.strip().lower() == "auto":
        return "auto"
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        raise InputError(f"class weights must be 'auto', 'none' or {num_classes} numbers separated by commas, "
                         f"not {spec!r}") from None
    if len(values) != num_classes:
        raise InputError(f"class weights: {len(values)} values but the class table has {num_classes} classes")
    return torch.tensor(values, dtype=torch.float32)


def label_counts(scenes: Sequence, classes: ClassTable, rows: int = 512) -> np.ndarray:
    """Labelled pixels per model class over the labels of ``scenes``."""
    from rasterio.windows import Window

    k = len(classes)
    counts = np.zeros(k, dtype=np.int64)
    for scene in scenes:
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            for row in range(0, stack.grid.height, rows):
                values, ok = labels.read(Window(0, row, stack.grid.width, min(rows, stack.grid.height - row)))
                cls = classes.encode(values, ok)
                counts += np.bincount(cls[cls != IGNORE_INDEX], minlength=k)[:k]
    return counts


def label_weights(counts: Sequence[int]) -> torch.Tensor:
    """Inverse log-frequency weights (ENet style) from per-class pixel counts, mean 1 over present classes."""
    counts = np.asarray(counts, dtype=np.int64)
    freq = counts / max(1, counts.sum())
    weights = np.where(counts > 0, 1.0 / np.log(1.02 + freq), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def class_weights(spec: str | None, scenes: Sequence, classes: ClassTable,
                  counts: Sequence[int] | None = None) -> torch.Tensor | None:
    """The loss's class weights for a run: none, given, or from the training labels (``counts``, the survey's
    exact census, when known; else counted here)."""
    parsed = parse_class_weights(spec, len(classes))
    if not isinstance(parsed, str):
        return parsed
    return label_weights(counts if counts is not None else label_counts(scenes, classes))


def poly_lambda(iterations: int, power: float, warmup: int = 0) -> Callable[[int], float]:
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then poly decay to 0."""
    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        return ramp * max(0.0, 1.0 - step / max(1, iterations)) ** power

    return factor
