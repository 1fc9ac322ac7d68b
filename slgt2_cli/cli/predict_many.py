"""`slgt2 predict-many CHECKPOINT STACK... --out-dir DIR`: many scenes, in this process or on Dask workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import (
    BatchOpt,
    BlendOpt,
    DeviceOpt,
    PrecisionOpt,
    QuietOpt,
    StrideOpt,
    ThreadsOpt,
    TileOpt,
    UnitsOpt,
)
from slgt2_cli.errors import EXIT_INPUT
from slgt2_cli.infer.settings import DEFAULT_BATCH_SIZE, InferenceSettings
from slgt2_cli.runtime import Precision


def predict_many(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint from `slgt2 train` (RUN_DIR/best.pt) or convert-checkpoint; workers must be able to read it.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", metavar="DIR", help="Directory for <stack name>.tif (and its companions) per stack, and summary.json.")],
    stacks: Annotated[Optional[list[Path]], typer.Argument(help="Image stacks (every form `predict` takes, URLs included); globs allowed.", show_default=False)] = None,
    list_file: Annotated[Optional[Path], typer.Option("--list", metavar="FILE", help="Also map the stacks listed here, one path or URL per line (# comments; relative to FILE's directory).", show_default="none")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", metavar="local[:N]|ADDRESS", help="Run on Dask: local[:N] starts a LocalCluster of N worker processes (CPU threads divided between them; default one per GPU, else one per 4 cores); ADDRESS (tcp://host:8786) uses a running scheduler.", show_default="in this process, one scene after another")] = None,
    scheduler_file: Annotated[Optional[Path], typer.Option("--scheduler-file", metavar="FILE", help="Use the running Dask scheduler described by this file (dask-jobqueue, dask scheduler --scheduler-file).", show_default="none")] = None,
    confidence: Annotated[bool, typer.Option("--confidence", help="Also write <name>.confidence.tif beside each map.")] = False,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write <name>.probabilities.tif beside each map.")] = False,
    areas: Annotated[bool, typer.Option("--areas", help="Also write <name>.areas.csv (pixels and hectares per class) beside each map.")] = False,
    stac: Annotated[bool, typer.Option("--stac", help="Also write a STAC Item per map and a STAC Collection (collection.json) of all maps.")] = False,
    tile: TileOpt = None,
    stride: StrideOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    device: DeviceOpt = "auto",
    tta: Annotated[bool, typer.Option("--tta", help="Average predictions over horizontal and vertical flips (3× compute).")] = False,
    units: UnitsOpt = None,
    blend: BlendOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail stacks whose pixel size differs from the training one by more than 2× (otherwise a warning).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo every scene, replacing its outputs (otherwise scenes already mapped with the same checkpoint and options are skipped).")] = False,
    quiet: QuietOpt = False,
    threads: ThreadsOpt = None,
    precision: PrecisionOpt = Precision.AUTO,
) -> None:
    """Map many scenes with one model load: each stack gets exactly what `slgt2 predict` writes, in DIR.

    DIR/summary.json lists every input with its status (done, skipped, failed), outputs, seconds, pixels and the
    reason of a failure. A bad input fails alone; the exit status is 2 when any failed, after all others are done.
    Re-running the same command skips the scenes already mapped; Ctrl-C keeps finished maps and leaves nothing
    partial.

    Examples:  slgt2 predict-many runs/demo/best.pt scenes/*.tif --out-dir maps/
               slgt2 predict-many best.pt --list stacks.txt --out-dir maps/ --cluster local:4 --stac
    """
    from slgt2_cli.runtime import prepare_compute

    if cluster is None and scheduler_file is None:
        prepare_compute(threads)
    from slgt2_cli.errors import option_flag
    from slgt2_cli.infer.batch import ManyConfig
    from slgt2_cli.infer.batch import predict_many as run

    settings = InferenceSettings(tile=tile, stride=stride, batch_size=batch_size, device=device, blend=blend,
                                 units=units, tta=tta, precision=precision)
    config = ManyConfig(checkpoint=checkpoint, out_dir=out_dir, stacks=list(stacks or []), list_file=list_file,
                        settings=settings, confidence=confidence, probabilities=probabilities, areas=areas, stac=stac,
                        overwrite=overwrite, strict=strict, progress=not quiet, cluster=cluster,
                        scheduler_file=scheduler_file)
    summary = run(config, name_of=option_flag)
    typer.echo(summary.table())
    from slgt2_cli.cli.written import say_written

    say_written(summary.written())
    if not summary.ok:
        raise typer.Exit(EXIT_INPUT)
