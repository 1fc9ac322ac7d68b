"""`slgt2 evaluate PREDICTION.tif LABELS.tif`: score a classified map against a label raster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli import app
from slgt2_cli.errors import cli_errors


@app.command()
@cli_errors
def evaluate(
    prediction: Annotated[Path, typer.Argument(help="Classified map (GeoTIFF) to score, e.g. from `slgt2 predict`.")],
    labels: Annotated[Path, typer.Argument(help="Label raster; aligned onto the map's grid if it differs.")],
    classes: Annotated[
        Optional[Path],
        typer.Option("--classes", help="Class table JSON (default: the table embedded in PREDICTION)."),
    ] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write all scores as JSON here.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write per-class scores as CSV here.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a confusion-matrix PNG here.")] = None,
    resampling: Annotated[
        str,
        typer.Option("--resampling", help="How labels on another grid are aligned: nearest or majority."),
    ] = "nearest",
) -> None:
    """Overall accuracy, Cohen's kappa, mIoU, mean F1, per-class scores and the confusion matrix of a map.

    Pixels that are nodata in either raster, or whose value is not in the class table, are left out.
    Report files are replaced if they exist.
    """
    from slgt2_cli.evaluation import EvaluateConfig, evaluate_maps

    config = EvaluateConfig(prediction, labels, classes, json_path, csv_path, plot_path, resampling)
    typer.echo(evaluate_maps(config).text)
