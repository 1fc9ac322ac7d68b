"""Where and how training runs: distributed ranks, the step sampler, RNG states and mixed precision.

Every sample is drawn from its own seed and the data loader has its own generator, so the RNG states saved
in `last.pt` are all a resumed run needs to end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from slgt2_cli.infer.predictor import resolve_device
from slgt2_cli.train.config import Amp


@dataclass(frozen=True)
class Dist:
    """This process's place among the ranks of a torchrun job (one rank without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """The rank and device of this process; joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


class StepBatches(torch.utils.data.Sampler):
    """Sample indices of micro-batches ``start·A .. iterations·A`` (A micro-batches per step): micro-batch m,
    rank r takes ``m·B·W + r·B + [0, B)``, so every (step, rank) sees the same samples however it is resumed."""

    def __init__(self, start: int, iterations: int, batch: int, d: Dist, accumulate: int = 1):
        self.start, self.iterations, self.batch, self.d, self.accumulate = start, iterations, batch, d, accumulate

    def __iter__(self) -> Iterator[list[int]]:
        for m in range(self.start * self.accumulate, self.iterations * self.accumulate):
            base = m * self.batch * self.d.world + self.d.rank * self.batch
            yield list(range(base, base + self.batch))

    def __len__(self) -> int:
        return (self.iterations - self.start) * self.accumulate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()[1],
            "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 624, 0, 0.0))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, with its fused kernel on CPU and CUDA: one pass over each parameter instead of a dozen foreach
    passes (paper preset on 2 CPU cores: 160 -> 44 ms a step; docs/performance.md)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused or None)


def replan(scheduler: torch.optim.lr_scheduler.LambdaLR, planned: int, iterations: int, step: int) -> str:
    """Re-plan a resumed run's learning rate for ``iterations`` steps instead of ``planned``: from ``step`` on, the
    rate is what a run planned for ``iterations`` steps has at that step (the scheduler already holds the new
    plan's factor; the optimiser still holds the old plan's rate, set here). A line that says so."""
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * factor
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    return (f"{'extending' if iterations > planned else 'shortening'} the run from {planned} to {iterations} steps "
            f"at step {step}: learning rate re-planned for {iterations} steps, now {scheduler._last_lr[0]:.3g}")


def mixed_precision(device: torch.device, mode: Amp) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler)."""
    if device.type != "cuda" or mode is Amp.NO:
        return None, False
    if mode is Amp.BF16 or (mode is Amp.AUTO and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def quiet_worker(_: int) -> None:
    """Data-loader workers leave Ctrl-C and SIGTERM (sent to the whole process group) to the main process,
    which saves last.pt and shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
