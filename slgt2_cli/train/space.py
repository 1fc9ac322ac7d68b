"""Room for a training run's checkpoints, checked before the first step rather than found missing at step 2,000.

In: the run directory and the model. Out: nothing, or an InputError naming the directory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from slgt2_cli.io.atomic import require_free_space

LAST_PT_FACTOR = 3
"""last.pt holds the weights and AdamW's two moment buffers of the same size."""


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights (parameters and buffers) of ``model``, as a checkpoint stores them."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_checkpoint_space(run_dir: Path, model: torch.nn.Module) -> int:
    """InputError unless ``run_dir``'s disk holds best.pt and last.pt twice over (the new one is written beside
    the old before it replaces it; files already there count as room); returns the bytes asked for."""
    weights = checkpoint_bytes(model)
    need = 2 * (weights + LAST_PT_FACTOR * weights) + (1 << 20)
    existing = sum((run_dir / n).stat().st_size for n in ("best.pt", "last.pt") if (run_dir / n).is_file())
    need = max(need - existing, 1 << 20)
    require_free_space(run_dir, need, "the checkpoints (best.pt and last.pt, written twice over)")
    return need
