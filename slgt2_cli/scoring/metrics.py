"""Streaming confusion matrix and the land-cover scores derived from it.

Rules for classes and undefined ratios (documented, and tested):

* A class is *present* when it occurs in the labels (support > 0) or in the prediction (predicted > 0).
  Classes present in neither are reported with ``present: false`` and ``null`` scores, listed in
  ``absent_classes``, and left out of every mean (``miou``, ``mean_f1``); they never count as 0 or 1.
* For a present class every ratio whose denominator is 0 is 0: a class in the labels but never predicted
  has precision 0 (tp = 0 of 0 predicted), a class predicted but not in the labels has recall 0.
  F1 = 2·tp / (2·tp + fp + fn) and IoU = tp / (tp + fp + fn) are then always defined for present classes.
* Cohen's kappa = (p_o − p_e) / (1 − p_e); when p_e = 1 (one class only, in both) agreement is perfect and
  kappa is 1. With no scored pixels at all every score is ``null``.

Beside these, ``reference`` holds the same confusion matrix scored in the convention of the SL-GT2Net
reference (its mmseg 0.30 fork's ``eval_metrics``, what its papers' tables report): per class Acc (= recall),
Precision, IoU and F1 = 2·Acc·Precision / (Acc + Precision); a ratio that is 0/0 becomes **0 and stays in the
mean over all K classes** (``nan_to_num=0``); ``aAcc`` is the overall accuracy. ``conventions`` says which
convention each number of the JSON follows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable


class ConfusionMatrix:
    """Counts of (true class, predicted class) pairs; rows are the truth. Mergeable with ``+``."""

    def __init__(self, num_classes: int, counts: np.ndarray | None = None):
        self.num_classes = int(num_classes)
        if counts is None:
            counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"counts must be {self.num_classes}x{self.num_classes}, got {counts.shape}")
        self.counts = counts

    def update(self, pred: np.ndarray, true: np.ndarray) -> ConfusionMatrix:
        """Add pairs of model classes; pixels where either is IGNORE_INDEX are left out."""
        pred = np.asarray(pred).ravel()
        true = np.asarray(true).ravel()
        if pred.shape != true.shape:
            raise ValueError(f"prediction and truth differ in size: {pred.size} vs {true.size}")
        keep = (pred != IGNORE_INDEX) & (true != IGNORE_INDEX)
        p, t = pred[keep].astype(np.int64), true[keep].astype(np.int64)
        k = self.num_classes
        if p.size and (p.min() < 0 or p.max() >= k or t.min() < 0 or t.max() >= k):
            raise ValueError(f"class indices must lie in 0..{k - 1} (or be {IGNORE_INDEX})")
        self.counts += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot add confusion matrices of different sizes")
        return ConfusionMatrix(self.num_classes, self.counts + other.counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfusionMatrix) and np.array_equal(self.counts, other.counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def compute_metrics(cm: ConfusionMatrix, table: ClassTable) -> dict[str, Any]:
    """Overall accuracy, kappa, mIoU, mean F1, per-class scores and the confusion matrix (see module doc)."""
    if cm.num_classes != len(table):
        raise ValueError(f"confusion matrix has {cm.num_classes} classes, the class table {len(table)}")
    c = cm.counts.astype(np.float64)
    n = c.sum()
    tp = np.diag(c)
    support = c.sum(axis=1)  # truth
    predicted = c.sum(axis=0)
    present = (support > 0) | (predicted > 0)

    per_class = []
    for i, info in enumerate(table.classes):
        fp, fn = predicted[i] - tp[i], support[i] - tp[i]
        scores: dict[str, float | None]
        if present[i]:
            scores = dict(
                precision=_ratio(tp[i], predicted[i]),
                recall=_ratio(tp[i], support[i]),
                f1=_ratio(2 * tp[i], 2 * tp[i] + fp + fn),
                iou=_ratio(tp[i], tp[i] + fp + fn),
            )
        else:
            scores = dict(precision=None, recall=None, f1=None, iou=None)
        per_class.append(dict(
            value=info.value, name=info.name, **scores,
            support=int(support[i]), predicted=int(predicted[i]), present=bool(present[i]),
        ))

    scored = [pc for pc in per_class if pc["present"]]
    if n > 0:
        po = float(tp.sum() / n)
        pe = float((support * predicted).sum() / (n * n))
        kappa = 1.0 if pe >= 1.0 else (po - pe) / (1.0 - pe)
        miou = float(np.mean([pc["iou"] for pc in scored]))
        mean_f1 = float(np.mean([pc["f1"] for pc in scored]))
    else:
        po = kappa = miou = mean_f1 = None

    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(support[:, None] > 0, c / np.maximum(support[:, None], 1), 0.0)
    return {
        "conventions": CONVENTIONS,
        "overall_accuracy": po,
        "kappa": kappa,
        "miou": miou,
        "mean_f1": mean_f1,
        "per_class": per_class,
        "confusion_matrix": cm.counts.tolist(),
        "confusion_matrix_normalized": normalized.tolist(),
        "absent_classes": [pc["value"] for pc in per_class if not pc["present"]],
        "pixels": int(n),
        "classes": table.to_list(),
        "reference": reference_metrics(cm, table),
    }


CONVENTIONS = {
    "slgt2": "overall_accuracy, kappa, miou, mean_f1, per_class: means over the classes present in the labels or "
             "the prediction; a class present in neither is left out (null)",
    "reference": "reference.*: the SL-GT2Net reference's mmseg fork (eval_metrics, nan_to_num=0): a 0/0 per-class "
                 "value counts as 0 and stays in the mean over all classes; comparable with the paper's tables",
}


def reference_metrics(cm: ConfusionMatrix, table: ClassTable) -> dict[str, Any]:
    """The reference's scores of ``cm`` (see the module doc): aAcc, mIoU, mAcc, mPrecision, mF1score, per class."""
    c = cm.counts.astype(np.float64)
    intersect = np.diag(c)
    area_label, area_pred = c.sum(axis=1), c.sum(axis=0)
    area_union = area_label + area_pred - intersect
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = intersect / area_label
        per = {"IoU": intersect / area_union, "Acc": acc, "Precision": intersect / area_pred}
        per["F1score"] = 2 * per["Acc"] * per["Precision"] / (per["Acc"] + per["Precision"])
        a_acc = intersect.sum() / area_label.sum() if area_label.sum() else float("nan")
    names = [info.name for info in table.classes]
    nan_classes = {k: [names[i] for i in np.flatnonzero(np.isnan(v))] for k, v in per.items()}
    per = {k: np.nan_to_num(v, nan=0.0) for k, v in per.items()}
    return {
        "convention": CONVENTIONS["reference"],
        "aAcc": None if np.isnan(a_acc) else float(a_acc),
        **{f"m{k}": float(v.mean()) for k, v in per.items()},
        "per_class": {name: {k: float(v[i]) for k, v in per.items()} for i, name in enumerate(names)},
        "nan_classes": nan_classes,
    }
