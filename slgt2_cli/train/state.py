"""What a training run is at a step (:class:`RunState`, saved in last.pt) and what it ends with
(:class:`TrainResult`, and the last lines that describe it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    best_miou: float
    best_step: int
    seconds: float
    checkpoint: Path
    """The run's result: best.pt, or last.pt under a recipe that keeps the last weights."""
    baseline_miou: float | None = None
    """The per-pixel baseline's validation mIoU (None: --no-baseline or no validation split)."""
    val_seconds: float = 0.0


@dataclass
class RunState:
    """What changes from step to step; everything but ``seen`` and ``stop`` travels in last.pt."""

    step: int = 0
    best: float = -1.0
    best_step: int = 0
    validated_step: int = 0
    """The last step whose validation completed (a resumed run redoes one an interrupt cut short)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_n: int = 0
    step_losses: list[float] = field(default_factory=list)
    """Each step's loss since the last validation, for curves.png."""
    saved_step: int | None = None
    """The step last.pt holds (None: not written yet)."""
    seen: int = 0
    stop: int | None = None
    """The signal that asked the run to stop."""

    def persisted(self) -> dict[str, Any]:
        skip = ("seen", "stop", "saved_step")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> RunState:
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in known})
        if "validated_step" not in saved:  # last.pt written before slgt2 recorded it: saved at validations
            state.validated_step = state.step
        state.history, state.saved_step = list(state.history), state.step
        return state


def describe_result(result: TrainResult) -> str:
    """The run's last lines: steps and time, the best validation score beside the baseline's, what was written."""
    lines = [f"trained {result.step} steps in {result.seconds / 60:.1f} min"
             + (f" ({100 * result.val_seconds / max(result.seconds, 1e-9):.0f} % of it validating)"
                if result.val_seconds else "")]
    if result.best_miou >= 0:
        base = f", per-pixel baseline {result.baseline_miou:.4f}" if result.baseline_miou is not None else ""
        lines.append(f"best validation mIoU {result.best_miou:.4f} at step {result.best_step}{base}")
        if result.baseline_miou is not None and result.best_miou <= result.baseline_miou:
            lines.append(f"slgt2: warning: the network (val mIoU {result.best_miou:.4f}) does not beat the per-pixel "
                         f"baseline ({result.baseline_miou:.4f}): train longer, or see docs/training.md")
    else:
        lines.append("no validation split")
    lines.append(f"result: {result.checkpoint}")  # the files written follow (slgt2_cli.cli.written)
    return "\n".join(lines)


__all__ = ["RunState", "TrainResult", "describe_result"]
