"""What a training run leaves in its directory: resolved config, metrics log, curves, best confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from slgt2_cli.io.classes import ClassTable
from slgt2_cli.errors import InputError
from slgt2_cli.io.atomic import atomic_output, write_text, writing


def _atomic_text(path: Path, text: str) -> None:
    write_text(path, text)


class RunWriter:
    """Writes the run directory (only on rank 0: ``enabled=False`` makes every method a no-op)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.dir, self.enabled = Path(run_dir), enabled

    def claim(self, overwrite: bool) -> None:
        """Refuse to train over an earlier run unless asked to."""
        if (self.dir / "last.pt").exists() and not overwrite:
            raise InputError("holds an earlier run (use --resume to continue it or --overwrite to start over)",
                             self.dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"cannot write the run directory ({exc.strerror})", self.dir) from None
        if overwrite:
            for name in ("metrics.jsonl", "best.pt", "last.pt"):
                (self.dir / name).unlink(missing_ok=True)

    def write_config(self, config: Any, setup: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        resolved = {
            "train": config.to_dict(),
            "model": setup["model_config"],
            "classes": setup["spec"].classes.to_list(),
            "temporal": setup["rule"].to_dict(),
            "temporal_rule": setup["rule"].describe(),
            "normalization": setup["norm"].to_dict(),
            "bands": setup["bands"],
            "units": setup["units"],
            "scenes": {"train": [s.id for s in setup["train"]], "val": [s.id for s in setup["val"]]},
        }
        _atomic_text(self.dir / "config.yaml", yaml.safe_dump(_plain(resolved), sort_keys=False))

    def log(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with writing(self.dir / "metrics.jsonl"), open(self.dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def best_report(self, cm: Any, classes: ClassTable, step: int) -> None:
        if not self.enabled:
            return
        from slgt2_cli.scoring.evaluator import report

        report(cm, classes, json_path=self.dir / "best_metrics.json", plot_path=self.dir / "best_confusion.png",
               source={"step": step, "split": "val"})

    def curves(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled or not history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [h["step"] for h in history]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        a.plot(steps, [h["loss"] for h in history], marker="o")
        a.set(xlabel="step", ylabel="training loss", title="Loss")
        for key, label in (("miou", "mIoU"), ("mean_f1", "mean F1"), ("overall_accuracy", "overall accuracy")):
            b.plot(steps, [h[key] if h[key] is not None else float("nan") for h in history], marker="o", label=label)
        b.set(xlabel="step", ylim=(0, 1), title="Validation")
        b.legend(loc="lower right")
        fig.tight_layout()
        try:
            with atomic_output(self.dir / "curves.png") as tmp:
                fig.savefig(tmp, dpi=100, format="png")
        finally:
            plt.close(fig)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
