"""A per-pixel baseline beside every training run: what a linear classifier of each pixel's own time series and
its immediate neighbourhood reaches on the same validation windows as the network.

Features per pixel: the normalised model input (every channel of every frame, after the temporal rule) and its
5 × 5 mean and standard deviation. The classifier is a multinomial logistic regression with balanced class
weights and a little L2, fitted by L-BFGS on a sample of labelled training pixels (from evenly spread training
windows). A network that does not beat it has not learnt what the pixels alone say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.data.windows import WindowSample
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.scoring.metrics import ConfusionMatrix

NEIGHBOURHOOD = 5
FIT_PIXELS = 200_000
"""Labelled training pixels the classifier is fitted on (a random sample of the training windows'), at most."""
FIT_VALUES = 1 << 25
"""At most this many feature values are fitted on (128 MB): fewer pixels for long series (Brandenburg: 48 frames)."""
TRAIN_WINDOW_PIXELS = 1 << 21
"""Pixels of evenly spread training windows the sample is drawn from."""
L2 = 1e-4
DESCRIPTION = (f"per-pixel logistic regression on the normalised time series and its {NEIGHBOURHOOD}×{NEIGHBOURHOOD} "
               "mean and standard deviation (balanced class weights)")


def pixel_features(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, L, h, w)`` model input -> ``(B, F, h, w)``: the C·L values, their 5×5 means and standard deviations
    (the mean over the pixels inside the image at the edges)."""
    flat = rearrange(x, "b c l h w -> b (c l) h w")
    pad = NEIGHBOURHOOD // 2
    mean = F.avg_pool2d(flat, NEIGHBOURHOOD, stride=1, padding=pad, count_include_pad=False)
    square = F.avg_pool2d(flat * flat, NEIGHBOURHOOD, stride=1, padding=pad, count_include_pad=False)
    return torch.cat([flat, mean, (square - mean * mean).clamp_min(0).sqrt()], dim=1)


@dataclass(frozen=True)
class PixelClassifier:
    """A fitted logistic regression on standardised :func:`pixel_features`."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, L, h, w)`` model input -> ``(B, h, w)`` model classes."""
        feats = rearrange(pixel_features(torch.from_numpy(x)), "b f h w -> b h w f")
        logits = F.linear((feats - self.mean) / self.std, self.weight, self.bias)
        return logits.argmax(-1).numpy()


def fit_classifier(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> PixelClassifier:
    """Multinomial logistic regression with balanced class weights, by full-batch L-BFGS."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    counts = torch.bincount(labels, minlength=num_classes).double()
    class_weight = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), 0.0).float()
    weight = torch.zeros(num_classes, z.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(F.linear(z, weight, bias), labels, weight=class_weight) + L2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return PixelClassifier(mean, std, weight.detach(), bias.detach())


def _training_pixels(sample: WindowSample, rule: TemporalRule, norm: Normalization, classes: ClassTable,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and classes of up to FIT_PIXELS labelled pixels drawn evenly from the sample's windows."""
    features = 3 * norm.num_channels * rule.length
    pixels = min(FIT_PIXELS, max(FIT_PIXELS // 10, FIT_VALUES // features))
    per_window = max(1, pixels // max(1, len(sample.windows)))
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for x, y in sample.batches(rule, norm, classes, 16):
        f = rearrange(pixel_features(torch.from_numpy(x)), "b f h w -> b (h w) f")
        flat = y.reshape(y.shape[0], -1)
        for i in range(len(flat)):
            keep = np.flatnonzero(flat[i] != IGNORE_INDEX)
            if len(keep) > per_window:
                keep = rng.choice(keep, per_window, replace=False)
            feats.append(f[i, keep])
            labels.append(torch.from_numpy(flat[i, keep]))
    if not feats:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(feats), torch.cat(labels)


@dataclass(frozen=True)
class BaselineScore:
    cm: ConfusionMatrix
    fit_pixels: int
    seconds: float


def score_baseline(train: WindowSample, val: WindowSample, rule: TemporalRule, norm: Normalization,
                   classes: ClassTable, seed: int = 0) -> BaselineScore | None:
    """Fit the per-pixel classifier on ``train`` and score it on ``val``; None without labelled training pixels."""
    start = time.perf_counter()
    with torch.inference_mode(False), torch.enable_grad():
        features, labels = _training_pixels(train, rule, norm, classes, seed)
        if len(labels) == 0:
            return None
        classifier = fit_classifier(features, labels, len(classes))
    cm = ConfusionMatrix(len(classes))
    with torch.no_grad():
        for x, y in val.batches(rule, norm, classes, 16):
            cm.update(classifier.predict(x), y)
    return BaselineScore(cm, int(len(labels)), time.perf_counter() - start)
