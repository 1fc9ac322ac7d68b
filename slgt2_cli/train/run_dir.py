"""What a training run leaves in its directory: resolved config, metrics log, curves, best confusion matrix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from slgt2_cli.errors import InputError
from slgt2_cli.io.atomic import atomic_output, write_text
from slgt2_cli.io.classes import ClassTable

OUTPUTS = ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "config.yaml", "best_metrics.json",
           "best_confusion.png", "baseline.json")
"""The files a run writes; a fresh run removes those an earlier, unfinished one left."""
TEMPORARIES = (".*.partial", ".*.partial-*", ".curves.*.png", ".write-test")


class RunWriter:
    """Writes the run directory (only on rank 0: ``enabled=False`` makes every method a no-op).

    Nothing is written before :meth:`start`, which a run calls once every check has passed."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.dir, self.enabled = Path(run_dir), enabled

    def check_fresh(self, overwrite: bool) -> None:
        """Refuse to train over an earlier run unless asked to, and an unwritable directory; writes nothing."""
        if (self.dir / "last.pt").exists() and not overwrite:
            raise InputError("holds an earlier run (use {resume} to continue it or {overwrite} to start over)",
                             self.dir, options=("resume", "overwrite"))
        existing = next(p for p in (self.dir, *self.dir.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise InputError(f"cannot write the run directory ({existing.name} is a file, not a directory)", self.dir)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"cannot write the run directory (permission denied in {existing})", self.dir)

    def start(self, fresh: bool) -> None:
        """Create the directory and remove temporaries of killed runs; a fresh run also removes what an earlier
        run left (its metrics log would otherwise be appended to)."""
        if not self.enabled:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write the run directory ({exc.strerror})", self.dir) from None
        for pattern in TEMPORARIES:
            for path in self.dir.glob(pattern):
                path.unlink(missing_ok=True)
        if fresh:
            for name in OUTPUTS:
                (self.dir / name).unlink(missing_ok=True)

    def write_config(self, settings: dict[str, Any], record: dict[str, Any]) -> None:
        """config.yaml: the configuration (``train``, accepted back by --config) and what it resolved to."""
        if self.enabled:
            text = yaml.safe_dump({"train": _plain(settings), "resolved": _plain(record)}, sort_keys=False)
            write_text(self.dir / "config.yaml", text)

    def log(self, history: list[dict[str, Any]]) -> None:
        """metrics.jsonl: one line per validation, the whole history (a resumed run's log has no duplicates)."""
        if self.enabled:
            write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    def best_report(self, cm: Any, classes: ClassTable, step: int) -> None:
        if not self.enabled:
            return
        from slgt2_cli.scoring.evaluator import report

        report(cm, classes, json_path=self.dir / "best_metrics.json", plot_path=self.dir / "best_confusion.png",
               source={"step": step, "split": "val"})

    def curves(self, history: list[dict[str, Any]], baseline: float | None = None) -> None:
        """curves.png: the loss and the validation scores, with the per-pixel baseline's mIoU as a line."""
        if not self.enabled or not history:
            return
        from slgt2_cli.train.curves import plot_curves

        fig = plot_curves(history, baseline)
        try:
            with atomic_output(self.dir / "curves.png") as tmp:
                fig.savefig(tmp, dpi=100, format="png")
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
