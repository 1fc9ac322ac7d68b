"""Validation during training, and the checks that tell a run which learns nothing from one that learns.

By default a validation scores a fixed sample of the validation split (``--val-pixels``, evenly spread
patch-sized windows, :mod:`slgt2_cli.data.windows`), batched across scenes with no tile overlap: the same windows
every time, so validations compare with each other and with the per-pixel baseline, at a cost that does not grow
with the split. ``--val-pixels 0`` scores the whole split with predict's tiled engine, as ``slgt2 evaluate`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from slgt2_cli.data.windows import WindowSample
from slgt2_cli.infer.predictor import Predictor
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.scoring.metrics import ConfusionMatrix
from slgt2_cli.scoring.scenes import score_scenes

COLLAPSE_SHARE = 0.99
"""Validation predictions with more than this share in one class (while the labels have several) collapsed."""
PRIOR_LOSS_MARGIN = 0.97
"""A training loss above this fraction of the class-prior entropy, after warm-up, has learnt nothing."""


class Stopped(Exception):
    """A stop signal arrived during a validation."""


def validation_sample(run: Any) -> WindowSample | None:
    """The run's fixed validation windows (None: no validation split, or the whole split with --val-pixels 0)."""
    s, c = run.setup, run.config
    if not s.val or c.val_pixels == 0:
        return None
    return WindowSample.of(s.val, s.val_shapes, c.patch_size, c.val_pixels)


def describe_validation(run: Any, sample: WindowSample | None) -> str:
    """One line: what each validation scores."""
    s = run.setup
    if not s.val:
        return "validation: none (no validation split and --val-fraction 0): best.pt holds the final weights"
    total = sum(h * w for h, w in s.val_shapes)
    if sample is None:
        return f"validation: the whole split, {len(s.val)} scenes, {total / 1e6:.2f} M px, tiled as predict does"
    share = 100 * sample.pixels / max(1, total)
    return (f"validation: {len(sample.windows)} windows of {sample.tile}² ({sample.pixels / 1e6:.2f} M px) from "
            f"{sample.scene_count} of {len(s.val)} scenes, {share:.0f} % of the split, the same each time "
            "(--val-pixels 0: all of it)")


def validate(run: Any, sample: WindowSample | None) -> ConfusionMatrix | None:
    """Score the validation split (``sample``, else every scene tiled); each rank takes its share, counts are
    summed. Raises Stopped when a stop signal arrives (single process only: ranks must stay in step)."""
    s, d, c = run.setup, run.d, run.config
    if not s.val:
        return None
    run.model.eval()
    predictor = Predictor(run.model, s.spec.classes, s.rule, s.norm, list(s.bands), run.device,
                          tile=c.patch_size, stride=s.stride, batch_size=c.batch_size, units=s.units)

    def check_stop(_: int = 0) -> None:
        if run.state.stop is not None and not d.active:
            raise Stopped

    if sample is None:
        cm = score_scenes(predictor, s.val[d.rank :: d.world], progress=check_stop)
    else:
        cm = ConfusionMatrix(len(s.spec.classes))
        # no gradients are kept: twice the training batch fits where the training batch did
        for x, y in sample.part(d.rank, d.world).batches(s.rule, s.norm, s.spec.classes, 2 * c.batch_size):
            check_stop()
            cm.update(predictor.infer(x).argmax(1), y)
        check_stop()  # a signal during the last batch: the validation is redone on resume
    if d.active:
        counts = torch.from_numpy(cm.counts).to(run.device)
        dist.all_reduce(counts)
        cm = ConfusionMatrix(len(s.spec.classes), counts.cpu().numpy())
    return cm


# --- a run that learns nothing --------------------------------------------------------------------------------------
def prior_loss(class_counts: Sequence[int], weights: torch.Tensor | None) -> float | None:
    """The cross-entropy of the best constant prediction (the class prior, re-weighted by the loss's class weights):
    a loss that stays there has learnt class frequencies and nothing else. None without labelled pixels."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if weights is not None:
        counts = counts * weights.detach().cpu().numpy().astype(np.float64)
    if counts.sum() <= 0:
        return None
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def learning_warnings(*, loss: float, prior: float | None, step: int, warmup: int, iterations: int,
                      cm: ConfusionMatrix | None, classes: ClassTable) -> list[str]:
    """Warnings for a run that learns nothing: after warm-up, a loss still at the class-prior entropy; validation
    predictions collapsed to one class while the labels hold several."""
    out = []
    settled = step >= max(warmup, math.ceil(0.1 * iterations), 1)
    if settled and prior is not None and prior > 0 and math.isfinite(loss) and loss >= PRIOR_LOSS_MARGIN * prior:
        out.append(f"the training loss ({loss:.3f}) is not below the class-prior entropy ({prior:.3f}) at step {step}: "
                   "the network predicts class frequencies only (try a lower --lr, or check that the labels match "
                   "the images)")
    if cm is not None and cm.total:
        predicted = cm.counts.sum(axis=0) / cm.total
        truth = cm.counts.sum(axis=1) / cm.total
        top = int(predicted.argmax())
        if predicted[top] > COLLAPSE_SHARE and (truth >= 0.01).sum() >= 2:
            name = classes.to_list()[top]["name"]
            out.append(f"validation predictions collapsed to one class ({name}: {100 * predicted[top]:.1f} % of "
                       f"pixels) while the labels hold {(truth >= 0.01).sum()} classes")
    return out


# --- the per-pixel baseline beside the run ---------------------------------------------------------------------------
BASELINE_FILE = "baseline.json"


def ensure_baseline(run: Any) -> tuple[float | None, str]:
    """The per-pixel baseline's validation mIoU and a line saying so: fitted and written to RUN_DIR/baseline.json
    (keys of ``evaluate --json``), or read back from it when the run is resumed. (None, reason) without a
    validation split or labelled training pixels."""
    from slgt2_cli.scoring.baseline import DESCRIPTION, TRAIN_WINDOW_PIXELS, score_baseline
    from slgt2_cli.scoring.evaluator import report

    s, c = run.setup, run.config
    path = c.out / BASELINE_FILE
    if c.resume and path.is_file():
        miou = _read_miou(path)
        if miou is not None:
            return miou, f"per-pixel baseline: val mIoU {miou:.4f} (from {path})"
    if not s.val:
        return None, ""
    val = run.val_sample or WindowSample.of(s.val, s.val_shapes, c.patch_size, None)
    train = WindowSample.of(s.train, s.shapes, c.patch_size, TRAIN_WINDOW_PIXELS)
    result = score_baseline(train, val, s.rule, s.norm, s.spec.classes, seed=c.seed)
    if result is None:
        return None, "per-pixel baseline: skipped (no labelled pixels in the training windows)"
    evaluation = report(result.cm, s.spec.classes, json_path=path,
                        source={"split": "val", "model": DESCRIPTION, "fit_pixels": result.fit_pixels,
                                "windows": len(val.windows), "seconds": round(result.seconds, 2)})
    miou = evaluation.metrics["miou"]
    if miou is None:
        return None, "per-pixel baseline: no validation pixels to score"
    return float(miou), (f"per-pixel baseline: val mIoU {miou:.4f} (logistic regression on {result.fit_pixels:,} "
                         f"training pixels, {result.seconds:.1f} s; {path.name})")


def _read_miou(path: Any) -> float | None:
    import json

    try:
        value = json.loads(path.read_text()).get("miou")
        return float(value) if value is not None else None
    except (OSError, ValueError, AttributeError, TypeError):
        return None
