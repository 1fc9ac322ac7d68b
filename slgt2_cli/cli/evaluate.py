"""`slgt2 evaluate`: score a classified map against labels, or a checkpoint on a dataset split."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import (
    BatchOpt,
    BlendOpt,
    DeviceOpt,
    QuietOpt,
    ResamplingOpt,
    StrideOpt,
    ThreadsOpt,
    TileOpt,
    UnitsOpt,
    as_value,
    classes_option,
)
from slgt2_cli.errors import InputError
from slgt2_cli.infer.settings import DEFAULT_BATCH_SIZE


class Split(str, Enum):
    """A dataset split (``--split``)."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def evaluate(
    prediction: Annotated[
        Optional[Path], typer.Argument(help="Classified map (GeoTIFF) to score, e.g. from `slgt2 predict`.")
    ] = None,
    labels: Annotated[Optional[Path], typer.Argument(help="Label raster; aligned onto the map's grid if it differs.")] = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option("--checkpoint", help="Checkpoint to score on --dataset (instead of PREDICTION LABELS).",
                     show_default="none (score PREDICTION LABELS)"),
    ] = None,
    dataset: Annotated[
        Optional[Path], typer.Option("--dataset", help="Dataset directory, or a seed .mat dataset as distributed (Brandenburg: --split selects through split/*.txt), for --checkpoint.",
                                     show_default="none")
    ] = None,
    split: Annotated[Split, typer.Option("--split", case_sensitive=False, help="Dataset split scored with --checkpoint.")] = Split.TEST,
    classes: Annotated[Optional[Path], classes_option("Class table of PREDICTION LABELS", "the table embedded in PREDICTION")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", metavar="FILE", help="Write all scores as JSON here.", show_default="not written")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE", help="Write per-class scores as CSV here.", show_default="not written")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE.png", help="Write a confusion-matrix PNG here.", show_default="not written")] = None,
    resampling: ResamplingOpt = None,
    tile: TileOpt = None,
    stride: StrideOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    device: DeviceOpt = "auto",
    units: UnitsOpt = None,
    blend: BlendOpt = None,
    quiet: QuietOpt = False,
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
    if _checkpoint_mode(prediction, labels, checkpoint, dataset, classes, resampling):
        from slgt2_cli.runtime import prepare_compute
        from slgt2_cli.scoring.evaluator import CheckpointEvaluateConfig, evaluate_checkpoint

        prepare_compute(threads)

        from slgt2_cli.infer.settings import InferenceSettings

        settings = InferenceSettings(tile=tile, stride=stride, batch_size=batch_size, device=device, units=units,
                                     blend=blend)
        config = CheckpointEvaluateConfig(checkpoint=checkpoint, dataset=dataset, split=split.value, json_path=json_path,
                                          csv_path=csv_path, plot_path=plot_path, settings=settings,
                                          progress=not quiet)
        typer.echo(evaluate_checkpoint(config).text)
        return
    if tile is not None or stride is not None or units is not None or blend is not None or threads is not None:
        raise InputError("--tile, --stride, --units, --blend and --threads apply to --checkpoint mode only")
    from slgt2_cli.scoring.evaluator import EvaluateConfig, evaluate_maps

    config = EvaluateConfig(prediction, labels, classes, json_path, csv_path, plot_path, as_value(resampling) or "nearest")
    typer.echo(evaluate_maps(config).text)


def _checkpoint_mode(prediction: Optional[Path], labels: Optional[Path], checkpoint: Optional[Path],
                     dataset: Optional[Path], classes: Optional[Path], resampling: object) -> bool:
    """True for --checkpoint/--dataset, False for PREDICTION LABELS; a mix of the two is a usage error."""
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
        return True
    if prediction is None or labels is None:
        raise InputError("nothing to score: give PREDICTION LABELS, or --checkpoint CK --dataset DATASET")
    return False
