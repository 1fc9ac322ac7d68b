"""`slgt2 synth`: a synthetic, georeferenced Sentinel-1 dataset for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slgt2_cli.cli.options import OverwriteOpt, SeedOpt, quiet_option


def synth(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the dataset into.")],
    size: Annotated[int, typer.Option("--size", min=16, help="Width and height of the large scene in pixels.")] = 512,
    dates: Annotated[int, typer.Option("--dates", min=2, help="Nominal acquisition dates per scene (a few go missing).")] = 24,
    scenes: Annotated[int, typer.Option("--scenes", min=3, help="Small scenes, split 60/20/20 into train/val/test.")] = 10,
    scene_size: Annotated[int, typer.Option("--scene-size", min=16, help="Width and height of the small scenes.")] = 192,
    year: Annotated[int, typer.Option("--year", help="Acquisition year of the small scenes (the large one: the next).")] = 2021,
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    quiet: Annotated[bool, quiet_option("Print only the summary.")] = False,
) -> None:
    """Write synthetic Sentinel-1 VV/VH time series with parcels, phenology, speckle and labels.

    Writes OUT_DIR/classes.json, train/ val/ test/ (images + labels) and scene/ (a larger image + labels).

    Example:  slgt2 synth data/ --size 2048 --dates 30
    """
    from slgt2_cli.progress import progress_bar
    from slgt2_cli.synth.scenes import synthesize

    def progress(message: str) -> None:
        if not quiet:
            typer.echo(f"writing {message}", err=True)

    bars = []

    def scene_progress(done: int, total: int) -> None:  # the large scene, block by block
        if not bars:
            bars.append(progress_bar(total=total, desc="scene", unit="px", unit_scale=True, enabled=not quiet))
        bars[0].update(done - bars[0].n)

    try:
        result = synthesize(out_dir, size=size, dates=dates, scenes=scenes, seed=seed, scene_size=scene_size,
                            year=year, overwrite=overwrite, progress=progress, scene_progress=scene_progress)
    finally:
        for bar in bars:
            bar.close()
    counts = ", ".join(f"{k} {len(v)}" for k, v in result.splits.items())
    typer.echo(f"dataset: {result.root} ({counts} scenes, classes.json)")
    typer.echo(f"scene:   {result.scene_image} + {result.scene_labels.name if result.scene_labels else ''}")
