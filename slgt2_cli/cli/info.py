"""`slgt2 info PATH`: what a checkpoint or a dataset holds, before predicting, resuming or training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def info(
    path: Annotated[Path, typer.Argument(
        metavar="CHECKPOINT|DATASET",
        help="Checkpoint from `slgt2 train` (RUN_DIR/best.pt, last.pt; a RUN_DIR means its best.pt) or "
             "convert-checkpoint; or a dataset directory (any layout `train` reads).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of text.")] = False,
) -> None:
    """Show a checkpoint's classes, model and size, bands and units, temporal rule, normalisation and provenance;
    or a dataset's layout, class table and scenes per split (as its split files select them).

    Examples:  slgt2 info runs/tiny/best.pt
               slgt2 info data/brandenburg/s1_2017_2018
    """
    from slgt2_cli.checkpoint.info import checkpoint_info, format_info
    from slgt2_cli.data.listing import dataset_info, format_dataset_info

    if path.is_dir() and not (path / "best.pt").is_file():
        summary, spec = dataset_info(path)
        typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_dataset_info(summary))
        if spec.split_errors:  # listed above; the status says the tree can't be used as it is
            raise next(iter(spec.split_errors.values()))
        return
    summary = checkpoint_info(path)
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_info(summary))
