"""Presenting scores: a terminal table, JSON, per-class CSV and a confusion-matrix picture, written atomically."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slgt2_cli.io.atomic import atomic_output

CSV_COLUMNS = ("value", "name", "precision", "recall", "f1", "iou", "support", "predicted", "present")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def format_table(metrics: dict[str, Any], notes: Sequence[str] = ()) -> str:
    """The scores as a readable plain-text table (percentages), class names included."""
    rows = metrics["per_class"]
    name_w = max([len("class")] + [len(str(r["name"])) for r in rows])
    val_w = max([len("value")] + [len(str(r["value"])) for r in rows])
    head = (f"{'class':<{name_w}}  {'value':>{val_w}}  {'precision':>9}  {'recall':>7}  {'F1':>7}  "
            f"{'IoU':>7}  {'support':>10}  {'predicted':>10}")
    lines = [
        f"pixels scored     {metrics['pixels']:,}",
        f"overall accuracy  {_pct(metrics['overall_accuracy'])} %",
        f"Cohen's kappa     {'—' if metrics['kappa'] is None else format(metrics['kappa'], '.4f')}",
        f"mean IoU          {_pct(metrics['miou'])} %",
        f"mean F1           {_pct(metrics['mean_f1'])} %",
        "",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{str(r['name']):<{name_w}}  {str(r['value']):>{val_w}}  {_pct(r['precision']):>9}  "
            f"{_pct(r['recall']):>7}  {_pct(r['f1']):>7}  {_pct(r['iou']):>7}  {r['support']:>10,}  "
            f"{r['predicted']:>10,}"
        )
    ref = metrics.get("reference")
    if ref and ref.get("aAcc") is not None:
        lines += ["", f"reference convention (0/0 counts as 0, all {len(rows)} classes in the means): "
                      f"aAcc {_pct(ref['aAcc'])}  mIoU {_pct(ref['mIoU'])}  mAcc {_pct(ref['mAcc'])}  "
                      f"mF1 {_pct(ref['mF1score'])} %"]
    absent = [r for r in rows if not r["present"]]
    if absent:
        names = ", ".join(f"{r['name']} ({r['value']})" for r in absent)
        lines += ["", f"not in labels nor prediction, left out of the means: {names}"]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def write_json(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    return Path(path)


def write_csv(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One row per class; undefined scores are empty cells."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in metrics["per_class"]:
                writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
    return Path(path)


def scored(source: dict[str, Any]) -> str:
    """What a confusion matrix scored, in words: a map against labels, a checkpoint on a split, a validation."""
    name = lambda key: Path(str(source[key])).name  # noqa: E731
    if "prediction" in source and "labels" in source:
        return f"{name('prediction')} against {name('labels')}"
    if "checkpoint" in source:
        count = len(source.get("scenes") or [])
        scenes = "1 scene" if count == 1 else f"{count} scenes"
        return f"{name('checkpoint')} on the {source.get('split', '?')} split of {name('dataset')} ({scenes})"
    if "step" in source:
        return f"{source.get('split', 'val')} split at training step {source['step']}"
    return "scored pixels"


def plot_confusion(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """A PNG of the row-normalised confusion matrix (colour) with counts, class names on both axes."""
    from matplotlib.figure import Figure  # Agg canvas, no global backend state

    counts = np.array(metrics["confusion_matrix"], dtype=np.int64)
    norm = np.array(metrics["confusion_matrix_normalized"], dtype=float)
    names = [f"{r['name']} ({r['value']})" for r in metrics["per_class"]]
    k = len(names)
    size = max(4.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(size + 1.2, size), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (labels)")
    oa = metrics["overall_accuracy"]
    scores = "" if oa is None else f" — OA {100 * oa:.1f} %, mIoU {100 * metrics['miou']:.1f} %"
    ax.set_title(f"Confusion matrix{scores}\n{scored(metrics.get('source') or {})}", fontsize=10)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
