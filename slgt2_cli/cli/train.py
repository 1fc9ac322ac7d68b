"""`slgt2 train DATASET --out RUN_DIR`: train SL-GT2Net into self-contained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


from slgt2_cli.cli.options import DeviceOpt, OverwriteOpt, ThreadsOpt


def train(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory (classes.json, train/, val/, test/) or a seed .mat dataset.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory for checkpoints, logs and plots.")],
    preset: Annotated[Optional[str], typer.Option("--preset", help="Model preset: tiny, small, paper or paper-brandenburg; also picks the recipe. [default: paper]")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML file of training options; command-line options override it.")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Training steps. [default: preset recipe: paper 40000, tiny 600]")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Patches per step (per GPU under torchrun). [default: paper 2, tiny 8]")] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", min=32, help="Patch size in pixels, a multiple of 32. [default: paper 224, tiny 64]")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate (poly decay, power 0.9). [default: paper 1e-4, tiny 1e-2]")] = None,
    val_every: Annotated[Optional[int], typer.Option("--val-every", min=1, help="Validate and checkpoint every N steps. [default: paper 2000, tiny 150]")] = None,
    class_weights: Annotated[Optional[str], typer.Option("--class-weights", help="none, auto (from label frequencies) or one weight per class, comma-separated.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Data-loading processes. [default: 2]")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="The paper's augmentation (rescale 0.5-2, crop, flips). [default: on]")] = None,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed; the same seed gives the same weights on CPU. [default: 0]")] = None,
    overwrite: OverwriteOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Train SL-GT2Net on a dataset with the paper's recipe (AdamW, poly schedule, rescale/crop/flip augmentation).

    Writes RUN_DIR/best.pt (best validation mIoU), last.pt (every validation and on Ctrl-C), metrics.jsonl,
    curves.png, best_confusion.png and config.yaml. Under torchrun it trains with DistributedDataParallel.

    Example:  slgt2 train data/ --out runs/tiny --preset tiny --iterations 600
    """
    from slgt2_cli.runtime import configure_threads

    configure_threads(threads)
    from slgt2_cli.train.config import resolve_config
    from slgt2_cli.train.loop import describe_result, train as run_training

    resolved = resolve_config(
        dataset, out, config, preset=preset, iterations=iterations, batch_size=batch_size, patch_size=patch_size,
        lr=lr, val_every=val_every, augment=augment, class_weights=class_weights, workers=workers, seed=seed,
        device=device if device != "auto" else None, resume=resume or None, overwrite=overwrite or None,
        progress=False if quiet else None,
    )
    typer.echo(describe_result(run_training(resolved)))
