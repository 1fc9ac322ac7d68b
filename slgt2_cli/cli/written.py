"""The closing lines of the commands that write files: ``wrote PATH  (what it is)``, one per file, the same form in
``train``, ``predict``, ``predict-many``, ``evaluate`` and ``demo``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Union

import typer

PathLike = Union[str, Path]


def say_written(items: Iterable[tuple[Optional[PathLike], str]]) -> None:
    """Echo ``wrote PATH  (WHAT)`` for each file written (None: not asked for)."""
    for path, what in items:
        if path is not None:
            typer.echo(f"wrote {path}  ({what})")


def run_dir_files(run: Path) -> list[tuple[Path, str]]:
    """What a training run directory holds, in the order a user wants it (the files there)."""
    return [(p, what) for p, what in [(run / "best.pt", "checkpoint: best validation mIoU"), (run / "last.pt", "checkpoint: last step, for --resume"),
            (run / "metrics.jsonl", "metrics log"), (run / "curves.png", "training curves"),
            (run / "best_confusion.png", "confusion matrix of the best checkpoint"),
            (run / "baseline.json", "per-pixel baseline scores"), (run / "config.yaml", "the resolved configuration")] if p.exists()]
