"""`slgt2 train DATASET --out RUN_DIR`: train SL-GT2Net into self-contained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import (
    DeviceOpt,
    FreezeEncoderOpt,
    InitOpt,
    NormOpt,
    OverwriteOpt,
    QuietOpt,
    ThreadsOpt,
    UnitsOpt,
    as_value,
    batch_size_option,
    seed_option,
)
from slgt2_cli.cli.written import run_dir_files, say_written
from slgt2_cli.data.temporal import TemporalMode
from slgt2_cli.train.config import Recipe

RECIPE_DEFAULTS = {
    "iterations": {"tiny": 600, "small": 10000, "paper": 40000},
    "batch_size": {"tiny": 8, "small": 4, "paper": 2},
    "patch_size": {"tiny": 64, "small": 128, "paper": 224},
    "lr": {"tiny": 0.003, "small": 0.001, "paper": 0.0001},
    "val_every": {"tiny": 150, "small": 1000, "paper": 2000},
}
"""The recipes' values as ``--help`` shows them (importing the recipes would import torch; a test compares)."""


def _recipe(name: str) -> str:
    return "preset: " + ", ".join(f"{p} {v:g}" for p, v in RECIPE_DEFAULTS[name].items())


def train(
    dataset: Annotated[Optional[Path], typer.Argument(help="Dataset directory (classes.json, train/, val/, test/) or a seed .mat dataset as distributed (MTS12 Slovenia; the Brandenburg tree with split/*.txt); `slgt2 info DATASET` shows what it holds.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory for checkpoints, logs and plots.", show_default="none: required unless --print-config")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Model preset: tiny, small, paper or paper-brandenburg; also picks the schedule.", show_default="paper (paper-brandenburg for the Brandenburg tree), or the config file's")] = None,
    recipe: Annotated[Optional[Recipe], typer.Option("--recipe", case_sensitive=False, help="Training procedure: slgt2 (ours) or reference (the paper's code: init, loss, augmentation, fixed normalisation, last checkpoint, batch 8).", show_default="slgt2, or the config file's")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML file of training options; command-line options override it.", show_default="none (the preset's recipe)")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Training steps.", show_default=_recipe("iterations"))] = None,
    batch_size: Annotated[Optional[int], batch_size_option("Patches per step (per GPU under torchrun).", _recipe("batch_size"))] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", min=32, help="Patch size in pixels, a multiple of 32.", show_default=_recipe("patch_size"))] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate (poly decay, power 0.9).", show_default=_recipe("lr"))] = None,
    val_every: Annotated[Optional[int], typer.Option("--val-every", min=1, help="Validate and checkpoint every N steps.",
                                                       show_default=_recipe("val_every") + "; at most iterations/4")] = None,
    val_pixels: Annotated[Optional[int], typer.Option("--val-pixels", min=0, help="Pixels each validation scores: evenly spread patch-sized windows of the validation split, the same each time; 0: the whole split, tiled as predict does.", show_default="1048576")] = None,
    baseline: Annotated[Optional[bool], typer.Option("--baseline/--no-baseline", help="Fit a per-pixel logistic-regression baseline and score it beside the network (RUN_DIR/baseline.json, a line on curves.png).", show_default="baseline")] = None,
    class_weights: Annotated[Optional[str], typer.Option("--class-weights", help="auto (inverse log frequency of the training labels), none, or one weight per class, comma-separated.", show_default="auto (--recipe reference: none)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Data-loading processes.", show_default="2")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="The paper's augmentation (rescale 0.5-2, crop, flips).", show_default="augment")] = None,
    temporal_mode: Annotated[Optional[TemporalMode], typer.Option("--temporal-mode", case_sensitive=False, help="How dates become the model's frames: composite (by day of year over the season), order (date order, dates ignored: one or two dates, event mapping), pad or reference.", show_default="order for 1-3 dates or dates within a few days, composite for other dated stacks, pad without dates")] = None,
    units: UnitsOpt = None,
    init_checkpoint: InitOpt = None,
    freeze_encoder: FreezeEncoderOpt = None,
    normalization: NormOpt = None,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt; with --iterations above its total, extend it.")] = False,
    seed: Annotated[Optional[int], seed_option("0, or the config file's")] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved configuration (YAML that --config accepts) and exit without training.")] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Train SL-GT2Net on a dataset (AdamW, poly schedule, rescale/crop/flip augmentation; --recipe reference: as the paper's code).

    Writes RUN_DIR/best.pt (best validation mIoU), last.pt (every validation and on Ctrl-C), metrics.jsonl,
    curves.png, best_confusion.png and config.yaml. Under torchrun it trains with DistributedDataParallel.
    --resume takes the whole configuration from RUN_DIR; options given with it must agree with the run's, but
    --iterations may extend it (the learning rate is re-planned for the new total).
    --init CHECKPOINT starts from a trained model (fine-tuning; new classes re-initialise the head).
    A diverging loss stops training with exit status 3.

    Defaults marked "preset" come from the preset's schedule (a --config file overrides them).

    Example:  slgt2 train data/ --out runs/tiny --preset tiny --iterations 600
    """
    from slgt2_cli.train.config import render_config, resolve_config

    if dataset is None and not print_config:
        raise typer.BadParameter("missing: a dataset directory or a seed .mat dataset", param_hint="'DATASET'")
    if out is None and not print_config:
        raise typer.BadParameter("missing: the run directory (required unless --print-config)", param_hint="'--out'")
    resolved = resolve_config(
        dataset or Path("."), out or Path("."), config, preset=preset, recipe=recipe, iterations=iterations,
        batch_size=batch_size, patch_size=patch_size, lr=lr, val_every=val_every, val_pixels=val_pixels, baseline=baseline, augment=augment,
        class_weights=class_weights, workers=workers, seed=seed, units=as_value(units), temporal_mode=as_value(temporal_mode),
        device=device if device != "auto" else None, init_checkpoint=init_checkpoint, freeze_encoder=freeze_encoder,
        normalization=as_value(normalization),
        resume=resume or None, overwrite=overwrite or None, progress=False if quiet else None,
    )
    if print_config:
        typer.echo(render_config(resolved), nl=False)
        return
    from slgt2_cli.runtime import prepare_compute
    from slgt2_cli.train.loop import describe_result
    from slgt2_cli.train.loop import train as run_training

    prepare_compute(threads)

    result = run_training(resolved)
    typer.echo(describe_result(result))
    say_written(run_dir_files(result.run_dir))
