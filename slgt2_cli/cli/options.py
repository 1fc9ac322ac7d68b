"""Options shared by several commands, defined once so their names, types, defaults and help agree.

Choices are the library's Enums (:class:`~slgt2_cli.infer.tiling.Blend`, :class:`~slgt2_cli.io.units.Units`,
:class:`~slgt2_cli.io.labels.LabelResampling`), so a new member appears here, in ``--help`` and in the parse-time
check without a change in this package. ``--device`` is a name checked at parse time by
:func:`~slgt2_cli.infer.device.parse_device` (it also takes ``cuda:N``). An option whose default depends on the
command or on the training preset is made by a function here that takes the text ``--help`` shows as its
default.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.infer.device import ACCEPTED as DEVICES
from slgt2_cli.infer.device import parse_device
from slgt2_cli.infer.tiling import Blend
from slgt2_cli.io.labels import LabelResampling
from slgt2_cli.io.units import Units
from slgt2_cli.runtime import Precision


def _device(value: str) -> str:
    try:
        return parse_device(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


DeviceOpt = Annotated[
    str,
    typer.Option("--device", parser=_device, metavar="DEVICE",
                 help=f"Where to run: {DEVICES} (auto: CUDA, then MPS, then CPU)."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")]
TileOpt = Annotated[
    Optional[int],
    typer.Option("--tile", min=1, help="Tile size in pixels for sliding-window inference.",
                 show_default="the checkpoint's tile, else its training patch"),
]
StrideOpt = Annotated[
    Optional[int],
    typer.Option("--stride", min=1, help="Step between tiles in pixels (at most --tile).",
                 show_default="the checkpoint's stride, else tile × 200/224 as in the paper"),
]
UnitsOpt = Annotated[
    Optional[Units],
    typer.Option("--units", case_sensitive=False, help="Override the unit detection of the stacks.",
                 show_default="detected from the values"),
]
BlendOpt = Annotated[
    Optional[Blend],
    typer.Option("--blend", case_sensitive=False,
                 help="Overlapping tiles: cosine or gaussian weight probabilities by a smooth window; average is the "
                      "reference's plain average of logits.",
                 show_default="the checkpoint's: average for converted reference checkpoints, else cosine"),
]
ResamplingOpt = Annotated[
    Optional[LabelResampling],
    typer.Option("--resampling", case_sensitive=False,
                 help="How labels on another grid are aligned onto PREDICTION.", show_default="nearest"),
]


def quiet_option(help: str = "No progress output; print only the result.") -> typer.models.OptionInfo:
    """``--quiet/-q``: a flag, off by default."""
    return typer.Option("--quiet", "-q", help=help)


def seed_option(default: str | None = None) -> typer.models.OptionInfo:
    """``--seed``: ``default`` is the shown default when it is not the value itself (e.g. from a config file)."""
    return typer.Option("--seed", help="Random seed; the same seed gives the same result on CPU.",
                        show_default=default if default is not None else True)


def batch_size_option(what: str = "Tiles per forward pass.", default: str | None = None) -> typer.models.OptionInfo:
    """``--batch-size``, at least 1."""
    return typer.Option("--batch-size", min=1, help=what, show_default=default if default is not None else True)


def classes_option(what: str, default: str) -> typer.models.OptionInfo:
    """``--classes FILE``: a class table (classes.json: value, name and colour per class)."""
    return typer.Option("--classes", metavar="FILE", help=f"{what} (classes.json: value, name, color per class).",
                        show_default=default)


def as_value(choice: Optional[Enum]) -> Optional[str]:
    """An Enum choice as the plain string the library's configurations take (None stays None)."""
    return None if choice is None else choice.value


QuietOpt = Annotated[bool, quiet_option()]
SeedOpt = Annotated[int, seed_option()]
BatchOpt = Annotated[int, batch_size_option()]
ClassesPath = Optional[Path]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, help="CPU threads for the network; they wait passively, so a busy machine "
                 "slows them gracefully.", show_default="OMP_NUM_THREADS, else the cores this process may use"),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", case_sensitive=False,
                 help="Network arithmetic: fp32, bf16 (CUDA; CPUs with AVX512-BF16/AMX) or auto (bf16 on CUDA, and on "
                      "bf16 CPUs for models of 10 M parameters or more (small, paper), else fp32)."),
]


# --- starting from a trained model (train) ---------------------------------------------------------------------
def _norm_sources() -> type[Enum]:
    from slgt2_cli.train.config import NormSource

    return NormSource


InitOpt = Annotated[
    Optional[Path],
    typer.Option("--init", metavar="CHECKPOINT",
                 help="Start from a trained model: a checkpoint, a run directory or a reference mmseg .pth (its "
                      "architecture, temporal rule and statistics; matching tensors load; new classes: a new head).",
                 show_default="none: from scratch"),
]
FreezeEncoderOpt = Annotated[
    Optional[int],
    typer.Option("--freeze-encoder", metavar="STEPS", min=0,
                 help="Train only the decoder and head for the first STEPS steps, then everything (0: never).",
                 show_default="0"),
]
NormOpt = Annotated[
    Optional[_norm_sources()],  # type: ignore[valid-type]
    typer.Option("--norm", case_sensitive=False,
                 help="Normalisation statistics: checkpoint (the --init checkpoint's, when its units are the "
                      "dataset's), computed (from the training stacks) or fixed (a seed dataset's published ones).",
                 show_default="checkpoint with --init, else computed (--recipe reference: fixed)"),
]
