"""SL-GT2Net: the sparse local-global temporal transformer network for SAR time-series segmentation."""

from models.presets import PRESETS, preset
from models.reference import ReferenceCheckpointError, from_reference_checkpoint
from models.slgt2net import SLGT2Net


def create_model(name: str = "paper", **overrides) -> SLGT2Net:
    """Build the network of preset ``name`` with keyword ``overrides``."""
    return SLGT2Net(**preset(name, **overrides))


__all__ = ["PRESETS", "SLGT2Net", "ReferenceCheckpointError", "create_model", "from_reference_checkpoint", "preset"]
