"""`slgt2 evaluate`: score a classified map against labels, or a checkpoint on a dataset split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.errors import InputError
from slgt2_cli.cli.options import BatchOpt, DeviceOpt, StrideOpt, ThreadsOpt, TileOpt


def evaluate(
    prediction: Annotated[
        Optional[Path], typer.Argument(help="Classified map (GeoTIFF) to score, e.g. from `slgt2 predict`.")
    ] = None,
    labels: Annotated[Optional[Path], typer.Argument(help="Label raster; aligned onto the map's grid if it differs.")] = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option("--checkpoint", help="Checkpoint to score on --dataset (instead of PREDICTION LABELS)."),
    ] = None,
    dataset: Annotated[
        Optional[Path], typer.Option("--dataset", help="Dataset directory (or seed .mat dataset) for --checkpoint.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Dataset split scored with --checkpoint: train, val or test.")] = "test",
    classes: Annotated[
        Optional[Path],
        typer.Option("--classes", help="Class table JSON (default: the table embedded in PREDICTION)."),
    ] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write all scores as JSON here.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write per-class scores as CSV here.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a confusion-matrix PNG here.")] = None,
    resampling: Annotated[
        Optional[str],
        typer.Option("--resampling", help="How labels on another grid are aligned onto PREDICTION: nearest or majority. "
                     "[default: nearest]"),
    ] = None,
    tile: TileOpt = None,
    stride: StrideOpt = None,
    batch_size: BatchOpt = 4,
    device: DeviceOpt = "auto",
    units: Annotated[Optional[str], typer.Option("--units", help="Override unit detection of the dataset's stacks: db, linear, scaled or raw.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Overall accuracy, Cohen's kappa, mIoU, mean F1, per-class scores and the confusion matrix.

    Two modes, exactly one of them:

    * PREDICTION LABELS: score a classified map against a label raster (any grid or CRS).

    * --checkpoint CK --dataset DATASET [--split test]: predict every scene of the split with the same tiled
      inference as `slgt2 predict` (--tile, --stride, --batch-size, --device) and score the whole split at once,
      with the checkpoint's class table.

    Pixels that are nodata in either raster, or whose value is not in the class table, are left out.
    Report files are replaced if they exist.

    Examples:  slgt2 evaluate map.tif labels.tif --json m.json
               slgt2 evaluate --checkpoint runs/demo/best.pt --dataset data/ --split test --plot cm.png
    """
    map_mode = prediction is not None or labels is not None
    checkpoint_mode = checkpoint is not None or dataset is not None
    if map_mode and checkpoint_mode:
        raise InputError("give either PREDICTION LABELS or --checkpoint CK --dataset DATASET, not both")
    if checkpoint_mode:
        if checkpoint is None or dataset is None:
            raise InputError("--checkpoint and --dataset go together: give both")
        if classes is not None or resampling is not None:
            raise InputError("--classes and --resampling apply to PREDICTION LABELS; with --checkpoint the class "
                             "table comes from the checkpoint")
        from slgt2_cli.runtime import configure_threads

        configure_threads(threads)
        from slgt2_cli.scoring.evaluator import CheckpointEvaluateConfig, evaluate_checkpoint

        config = CheckpointEvaluateConfig(checkpoint, dataset, split, json_path, csv_path, plot_path, tile, stride,
                                          batch_size, device, units, progress=not quiet)
        typer.echo(evaluate_checkpoint(config).text)
        return
    if prediction is None or labels is None:
        raise InputError("nothing to score: give PREDICTION LABELS, or --checkpoint CK --dataset DATASET")
    if tile is not None or stride is not None or units is not None:
        raise InputError("--tile, --stride and --units apply to --checkpoint mode only")
    from slgt2_cli.scoring.evaluator import EvaluateConfig, evaluate_maps

    config = EvaluateConfig(prediction, labels, classes, json_path, csv_path, plot_path, resampling or "nearest")
    typer.echo(evaluate_maps(config).text)
