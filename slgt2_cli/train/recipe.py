"""The pieces of the training procedure a recipe chooses: initialisation, loss, class weights, schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.blocks import ChannelAffine, ShuffleConvTranspose3d
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.train.config import Init, LossAverage


def initialise(model: torch.nn.Module, init: Init) -> None:
    """Apply the recipe's initialisation to the convolutions (Linear and LayerNorm keep the model's own).

    ``slgt2``: every convolution normal(0, 1/sqrt(fan_in)) with fan_in = in channels / groups × kernel volume (for
    the up-sampling transposed convolutions, whose kernel equals their stride, the input channels), bias 0; the
    up-sampling blocks' per-channel affine map starts as the identity. PyTorch's default shrinks each layer's
    output about √3-fold and draws the affine weights from U(-1, 1), so that GELU silences about half of the
    full-resolution channels: the decoder then learns several times slower (docs/training.md).
    ``torch``: PyTorch's defaults, as built. ``reference``: every Conv3d normal(0, sqrt(2 / fan_out)) with
    fan_out = kernel volume × out channels / groups, bias 0, as the reference's code."""
    if init is Init.TORCH:
        return
    for module in model.modules():
        if init is Init.REFERENCE:
            if isinstance(module, torch.nn.Conv3d):
                fan_out = math.prod(module.kernel_size) * module.out_channels // module.groups
                torch.nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
        elif isinstance(module, ChannelAffine):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
        elif isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            fan_in = module.in_channels // module.groups
            if not isinstance(module, ShuffleConvTranspose3d):
                fan_in *= math.prod(module.kernel_size)
            torch.nn.init.normal_(module.weight, 0.0, math.sqrt(1.0 / fan_in))
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


def label_weights(counts: Sequence[int]) -> torch.Tensor:
    """Inverse log-frequency weights (ENet style) from per-class pixel counts, mean 1 over present classes."""
    counts = np.asarray(counts, dtype=np.int64)
    freq = counts / max(1, counts.sum())
    weights = np.where(counts > 0, 1.0 / np.log(1.02 + freq), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def class_weights(spec: str | None, counts: Sequence[int]) -> torch.Tensor | None:
    """The loss's class weights for a run: none, given, or from ``counts`` (the survey's exact class census)."""
    parsed = parse_class_weights(spec, len(counts))
    return label_weights(counts) if isinstance(parsed, str) else parsed


def poly_lambda(iterations: int, power: float, warmup: int = 0) -> Callable[[int], float]:
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then poly decay to 0."""
    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        return ramp * max(0.0, 1.0 - step / max(1, iterations)) ** power

    return factor
