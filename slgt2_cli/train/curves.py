"""Training curves: the loss of every step (thinned) with the validation scores, on axes that show what matters.

In: the run's history (one record per validation, each with ``step_losses`` since the previous one). Out: a
matplotlib figure that :class:`slgt2_cli.train.run_dir.RunWriter` saves as ``curves.png``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_POINTS = 100
"""Per validation interval, the step losses are kept as at most this many bin means."""
SCORES = (("miou", "mIoU", "o-"), ("mean_f1", "mean F1", "s--"), ("overall_accuracy", "overall accuracy", "^:"))


def thin_losses(losses: Sequence[float], last_step: int, max_points: int = MAX_POINTS) -> list[list[float]]:
    """``[[step, loss], ...]`` for the steps ending at ``last_step``: bin means, at most ``max_points`` of them."""
    values = np.asarray(losses, dtype=np.float64)
    if values.size == 0:
        return []
    size = math.ceil(values.size / max_points)
    first = last_step - values.size + 1
    out = []
    for start in range(0, values.size, size):
        chunk = values[start:start + size]
        out.append([first + start + (chunk.size - 1) / 2, float(np.mean(chunk))])
    return out


def _range(values: np.ndarray, floor: float = 0.0, ceiling: float = 1.0) -> tuple[float, float]:
    """Limits around the values (with a margin), not the whole [0, 1], so small differences stay visible."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return floor, ceiling
    lo, hi = float(finite.min()), float(finite.max())
    margin = max(0.02, 0.1 * (hi - lo))
    return max(floor, lo - margin), min(ceiling, hi + margin)


def _loss_axis(ax: Any, history: list[dict[str, Any]]) -> None:
    points = np.array([p for h in history for p in h.get("step_losses") or []], dtype=np.float64).reshape(-1, 2)
    ends = [h["step"] for h in history]
    middles = [(start + end) / 2 for start, end in zip([0, *ends[:-1]], ends)]
    means = np.array([h["loss"] for h in history], dtype=np.float64)
    if len(points):
        ax.plot(points[:, 0], points[:, 1], lw=0.8, alpha=0.6, color="tab:blue", label="per step (binned)")
    ax.plot(middles, means, "o", color="tab:red", ms=4, label="mean between validations", zorder=3)
    values = np.concatenate([points[:, 1], means]) if len(points) else means
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and np.percentile(finite, 99) / max(np.percentile(finite, 1), 1e-12) > 20:
        ax.set_yscale("log")  # a loss falling by orders of magnitude
    elif finite.size:
        lo, hi = np.percentile(finite, [1, 99])
        margin = max(0.1 * (hi - lo), 0.05 * hi, 1e-3)
        ax.set_ylim(max(0.0, lo - margin), hi + margin)  # spikes at the start do not flatten it
    ax.set(xlabel="step", ylabel="training loss", title="Loss")
    ax.legend(loc="best", fontsize=8)


def plot_curves(history: list[dict[str, Any]], baseline: float | None = None) -> Any:
    """A two-panel figure: the loss per step and the validation scores per validation, with the per-pixel
    baseline's validation mIoU (``baseline``) as a horizontal line."""
    from matplotlib.figure import Figure  # Agg canvas, no global backend state

    fig = Figure(figsize=(11, 3.8), dpi=100, layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    _loss_axis(loss_ax, history)
    steps = [h["step"] for h in history]
    shown = []
    for key, label, style in SCORES:
        values = np.array([h.get(key) if h.get(key) is not None else np.nan for h in history], dtype=np.float64)
        score_ax.plot(steps, values, style, ms=5, mfc="none", label=label)
        shown.append(values)
    if baseline is not None:
        score_ax.axhline(baseline, color="tab:gray", ls="--", lw=1.2, label=f"per-pixel baseline mIoU ({baseline:.3f})")
        shown.append(np.array([baseline]))
    score_ax.set_ylim(*_range(np.concatenate(shown)))
    score_ax.set(xlabel="step", ylabel="score (validation)", title="Validation")
    score_ax.grid(alpha=0.3)
    score_ax.legend(loc="best", fontsize=8)
    return fig
