"""`slgt2 demo`: synthesise, train, predict and evaluate on this machine in a few minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slgt2_cli.cli.options import DeviceOpt, OverwriteOpt, SeedOpt, ThreadsOpt
from slgt2_cli.cli.written import say_written


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the data, the run, the map and its pictures.")] = Path("slgt2-demo"),
    quick: Annotated[bool, typer.Option("--quick", help="A smaller run (under 2 minutes on 2 CPU cores).")] = False,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Run the whole path on built-in synthetic Sentinel-1 data: synth -> train (tiny) -> predict -> evaluate.

    Prints the scene's metrics and where the map, its quick-look picture and the training curves are.

    Example:  slgt2 demo --quick
    """
    from slgt2_cli.runtime import prepare_compute

    prepare_compute(threads)
    from slgt2_cli.demo.run import DemoConfig, run_demo

    result = run_demo(DemoConfig(out, quick, device, seed, overwrite), say=typer.echo)
    m = result.metrics
    typer.echo(f"\nscene mIoU {m['miou']:.3f}, overall accuracy {m['overall_accuracy']:.3f}, kappa {m['kappa']:.3f}"
               f"  ({result.seconds / 60:.1f} min)")
    say_written([(result.map, "classified map of the scene"), (result.quicklook, "quick-look picture of the map"),
                 (result.curves, "training curves")])
