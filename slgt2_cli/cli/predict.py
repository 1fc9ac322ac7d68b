"""`slgt2 predict CHECKPOINT STACK... OUTPUT`: classified GeoTIFF maps of whole scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import (
    BatchOpt,
    BlendOpt,
    DeviceOpt,
    OverwriteOpt,
    PrecisionOpt,
    QuietOpt,
    StrideOpt,
    ThreadsOpt,
    TileOpt,
    UnitsOpt,
)
from slgt2_cli.cli.written import say_written
from slgt2_cli.infer.settings import DEFAULT_BATCH_SIZE, InferenceSettings
from slgt2_cli.runtime import Precision


def predict(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint from `slgt2 train` (RUN_DIR/best.pt) or convert-checkpoint.")],
    stacks: Annotated[list[Path], typer.Argument(help="Image stack(s): a multi-band GeoTIFF or a directory of per-date files; globs allowed.")],
    output: Annotated[Path, typer.Argument(help="Output .tif for one stack, or a directory (one <stack>.tif each).")],
    tile: TileOpt = None,
    stride: StrideOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    device: DeviceOpt = "auto",
    confidence: Annotated[Optional[Path], typer.Option("--confidence", metavar="FILE.tif", help="Also write the confidence (max probability × 255, uint8) here.", show_default="not written")] = None,
    probabilities: Annotated[Optional[Path], typer.Option("--probabilities", metavar="FILE.tif", help="Also write per-class probabilities (uint8, one band per class) here.", show_default="not written")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average predictions over horizontal and vertical flips (3× compute).")] = False,
    units: UnitsOpt = None,
    blend: BlendOpt = None,
    areas: Annotated[Optional[Path], typer.Option("--areas", metavar="FILE", help="Also write per-class pixel counts and hectares (CSV; JSON for a .json name) here.", show_default="none")] = None,
    stac: Annotated[bool, typer.Option("--stac", help="Also write a STAC item (<map>.stac.json) beside each map.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse stacks whose pixel size differs from the training one by more than 2× (otherwise a warning).")] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    threads: ThreadsOpt = None,
    precision: PrecisionOpt = Precision.AUTO,
) -> None:
    """Classify whole scenes with sliding-window inference into Cloud-Optimized GeoTIFF maps.

    Example:  slgt2 predict runs/demo/best.pt scene/image.tif map.tif --confidence conf.tif
    """
    from slgt2_cli.runtime import prepare_compute

    prepare_compute(threads)
    from slgt2_cli.infer.run import PredictConfig, run_predict

    settings = InferenceSettings(tile=tile, stride=stride, batch_size=batch_size, device=device, blend=blend,
                                 units=units, tta=tta, precision=precision)
    config = PredictConfig(checkpoint=checkpoint, stacks=list(stacks), output=output, settings=settings,
                           confidence=confidence, probabilities=probabilities, overwrite=overwrite,
                           progress=not quiet, areas=areas, stac=stac, strict=strict)
    for r in run_predict(config):
        skipped = r.stats.get("skipped", 0)
        say_written([(r.output, f"map of {r.stack.name}: {r.pixels:,} px in {r.seconds:.1f} s, {r.pixels_per_second:,.0f} "
                                f"px/s; {r.stats.get('tiles', 0)} tiles, {skipped} without data skipped"),
                     (r.output.with_suffix(".stac.json") if stac else None, "STAC item")])
    say_written([(confidence, "confidence"), (probabilities, "class probabilities"), (areas, "areas per class")])
