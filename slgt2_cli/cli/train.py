"""`slgt2 train DATASET --out RUN_DIR`: train SL-GT2Net into self-contained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import DeviceOpt, OverwriteOpt
from slgt2_cli.errors import InputError
from slgt2_cli.train.config import Recipe


def train(
    dataset: Annotated[Optional[Path], typer.Argument(help="Dataset directory (classes.json, train/, val/, test/) or a seed .mat dataset.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory for checkpoints, logs and plots (required unless --print-config).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Model preset: tiny, small, paper or paper-brandenburg; also picks the schedule. [default: paper]")] = None,
    recipe: Annotated[Optional[Recipe], typer.Option("--recipe", help="Training procedure: slgt2 (ours) or reference (the paper's code: init, loss, augmentation, fixed normalisation, last checkpoint, batch 8). [default: slgt2]")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML file of training options; command-line options override it.")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Training steps. [default: preset recipe: paper 40000, tiny 600]")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Patches per step (per GPU under torchrun). [default: paper 2, tiny 8]")] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", min=32, help="Patch size in pixels, a multiple of 32. [default: paper 224, tiny 64]")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate (poly decay, power 0.9). [default: paper 1e-4, tiny 1e-2]")] = None,
    val_every: Annotated[Optional[int], typer.Option("--val-every", min=1, help="Validate and checkpoint every N steps. [default: paper 2000, tiny 150]")] = None,
    class_weights: Annotated[Optional[str], typer.Option("--class-weights", help="none, auto (from label frequencies) or one weight per class, comma-separated.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Data-loading processes. [default: 2]")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="The paper's augmentation (rescale 0.5-2, crop, flips). [default: on]")] = None,
    units: Annotated[Optional[str], typer.Option("--units", help="Override unit detection of the dataset's stacks: db, linear, scaled or raw (used for training, normalisation and validation alike).")] = None,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed; the same seed gives the same weights on CPU. [default: 0]")] = None,
    overwrite: OverwriteOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved configuration (YAML that --config accepts) and exit without training.")] = False,
) -> None:
    """Train SL-GT2Net on a dataset (AdamW, poly schedule, rescale/crop/flip augmentation; --recipe reference: as the paper's code).

    Writes RUN_DIR/best.pt (best validation mIoU), last.pt (every validation and on Ctrl-C), metrics.jsonl,
    curves.png, best_confusion.png and config.yaml. Under torchrun it trains with DistributedDataParallel.
    --resume takes the whole configuration from RUN_DIR; options given with it must agree with the run's.
    A diverging loss stops training with exit status 3.

    Example:  slgt2 train data/ --out runs/tiny --preset tiny --iterations 600
    """
    from slgt2_cli.train.config import render_config, resolve_config

    if dataset is None and not print_config:
        raise InputError("missing the DATASET argument (a dataset directory or a seed .mat dataset)")
    if out is None and not print_config:
        raise InputError("missing --out RUN_DIR (required unless --print-config)")
    resolved = resolve_config(
        dataset or Path("."), out or Path("."), config, preset=preset, recipe=recipe, iterations=iterations,
        batch_size=batch_size, patch_size=patch_size, lr=lr, val_every=val_every, augment=augment,
        class_weights=class_weights, workers=workers, seed=seed, units=units,
        device=device if device != "auto" else None,
        resume=resume or None, overwrite=overwrite or None, progress=False if quiet else None,
    )
    if print_config:
        typer.echo(render_config(resolved), nl=False)
        return
    from slgt2_cli.train.loop import describe_result, train as run_training

    typer.echo(describe_result(run_training(resolved)))
