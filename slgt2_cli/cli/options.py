"""Options shared by several commands, defined once so their names, defaults and help agree."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DeviceOpt = Annotated[
    str,
    typer.Option("--device", help="Where to run: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")]
TileOpt = Annotated[
    Optional[int],
    typer.Option("--tile", help="Tile size in pixels for sliding-window inference [default: the training patch]."),
]
StrideOpt = Annotated[
    Optional[int],
    typer.Option("--stride", help="Step between tiles in pixels [default: tile × 200/224, as in the paper]."),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per forward pass.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, help="CPU threads for the network; they wait passively, so a busy "
                 "machine slows them gracefully [default: OMP_NUM_THREADS, else the cores this process may use]."),
]
PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", help="Network arithmetic: fp32, bf16 (CUDA; CPUs with AVX512-BF16/AMX) or auto (bf16 on "
                 "CUDA, and on bf16 CPUs for models of 10 M parameters or more (small, paper), else fp32)."),
]
