"""`slgt2 info CHECKPOINT`: what a checkpoint holds, before predicting with it or resuming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def info(
    checkpoint: Annotated[Path, typer.Argument(
        help="Checkpoint from `slgt2 train` (RUN_DIR/best.pt, last.pt; a RUN_DIR means its best.pt) or "
             "convert-checkpoint.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of text.")] = False,
) -> None:
    """Show a checkpoint's classes, model and size, bands and units, temporal rule, normalisation and provenance.

    Example:  slgt2 info runs/tiny/best.pt
    """
    from slgt2_cli.checkpoint.info import checkpoint_info, format_info

    summary = checkpoint_info(checkpoint)
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_info(summary))
