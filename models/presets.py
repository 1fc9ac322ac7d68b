"""Named model configurations. Each is a small dict of :class:`models.SLGT2Net` keyword arguments."""

from __future__ import annotations

import copy
from typing import Any

PAPER = dict(
    embed_dims=(96, 192, 384, 768),
    depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24),
    window_sizes=((7, 14, 21), (7, 14, 21), (7, 14, 14), (7, 7, 7)),
    window_depths=((8, 4, 2), (4, 4, 2), (2, 2, 2), (1, 1, 1)),
    temporal_length=16,
    stem="slovenia",
    num_classes=8,
    in_chans=2,
)

PRESETS: dict[str, dict[str, Any]] = {
    # The Slovenia (MTS12, S1) network of the paper: 62.5 M parameters used in forward.
    "paper": PAPER,
    # The Brandenburg S1 network: temporal kernel 9 in the stem, 48 frames (41 dates), 15 classes.
    "paper-brandenburg": {
        **PAPER,
        "window_depths": ((8, 4, 2), (8, 4, 2), (4, 4, 2), (2, 2, 2)),
        "temporal_length": 48,
        "stem": "brandenburg",
        "num_classes": 15,
    },
    # Half the width, two blocks per stage: for a single GPU or a patient CPU.
    "small": {
        **PAPER,
        "embed_dims": (48, 96, 192, 384),
        "depths": (2, 2, 2, 2),
        "num_heads": (3, 6, 6, 12),
    },
    # Laptop-CPU size for demos and tests: windows scaled to 64–128 px patches.
    "tiny": {
        **PAPER,
        "embed_dims": (24, 48, 96, 192),
        "depths": (2, 2, 2, 2),
        "num_heads": (3, 3, 6, 6),
        "window_sizes": ((4, 8, 16), (4, 8, 8), (4, 4, 4), (2, 2, 2)),
        "window_depths": ((8, 4, 2), (4, 4, 2), (2, 2, 2), (1, 1, 1)),
        "drop_path": 0.0,
    },
}


def preset(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
    config = copy.deepcopy(PRESETS[name])
    config.update(overrides)
    return config
