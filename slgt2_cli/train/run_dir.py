"""What a training run leaves in its directory: resolved config, metrics log, curves, best confusion matrix."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from slgt2_cli.io.classes import ClassTable
from slgt2_cli.errors import InputError


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunWriter:
    """Writes the run directory (only on rank 0: ``enabled=False`` makes every method a no-op)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.dir, self.enabled = Path(run_dir), enabled

    def claim(self, overwrite: bool) -> None:
        """Refuse to train over an earlier run unless asked to."""
        if (self.dir / "last.pt").exists() and not overwrite:
            raise InputError("holds an earlier run (use {resume} to continue it or {overwrite} to start over)",
                             self.dir, options=("resume", "overwrite"))
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
            with open(self.dir / "metrics.jsonl", "a") as f:
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
        from slgt2_cli.train.curves import plot_curves

        fig = plot_curves(history)
        fd, tmp = tempfile.mkstemp(prefix=".curves.", suffix=".png", dir=self.dir)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, self.dir / "curves.png")
        finally:
            Path(tmp).unlink(missing_ok=True)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
