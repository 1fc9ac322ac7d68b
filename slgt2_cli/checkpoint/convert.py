"""Turning a published reference checkpoint (mmseg file) into a native slgt2 checkpoint `predict` accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slgt2_cli.checkpoint.format import Checkpoint, provenance, save_checkpoint
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.io.atomic import check_distinct, prepare_output
from slgt2_cli.data.datasets import MTS12_CLASSES
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule


@dataclass
class ConvertConfig:
    reference: Path
    output: Path
    reference_options: dict[str, Any] = field(default_factory=dict)
    """Reference backbone names: flag, embed_dims, depths, num_heads, wss_lst, dss_lst, topk_div, ..."""
    classes: Path | None = None
    bands: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    patch_size: int = 224
    stride: int = 200
    overwrite: bool = False


def default_classes(num_classes: int, stem: str) -> ClassTable:
    """The seed datasets' legends: label value i + 1 is model class i (0 = no data / background)."""
    if stem == "slovenia" and num_classes == len(MTS12_CLASSES):
        return ClassTable.default(range(1, num_classes + 1), MTS12_CLASSES)
    return ClassTable.default(range(1, num_classes + 1))


def convert_reference(config: ConvertConfig) -> Checkpoint:
    """Load, check and write; returns the native checkpoint."""
    from models import ReferenceCheckpointError, from_reference_checkpoint

    if not config.reference.exists():
        raise InputError("reference checkpoint not found", config.reference)
    check_distinct([("converted checkpoint", config.output)],
                   [("reference checkpoint", config.reference), ("class table", config.classes)])
    prepare_output(config.output, overwrite=config.overwrite)
    try:
        model = from_reference_checkpoint(config.reference, **config.reference_options)
    except ReferenceCheckpointError as exc:
        raise InputError(str(exc), config.reference) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"the reference options do not fit this checkpoint ({exc})", config.reference) from None
    cfg = model.config
    classes = ClassTable.load(config.classes) if config.classes else default_classes(cfg["num_classes"], cfg["stem"])
    if len(classes) != cfg["num_classes"]:
        raise InputError(f"has {len(classes)} classes but the model predicts {cfg['num_classes']}", config.classes)
    channels = cfg["in_chans"]
    bands = config.bands or (["VV", "VH"] if channels == 2 else [f"band{i + 1}" for i in range(channels)])
    mean = config.mean or [0.0] * channels
    std = config.std or [1.0] * channels
    if not (len(bands) == len(mean) == len(std) == channels):
        raise InputError(f"the model reads {channels} channels: give that many --bands, --mean and --std values")
    ck = Checkpoint(
        model_config=cfg,
        state_dict=model.state_dict(),
        classes=classes,
        normalization=Normalization(tuple(mean), tuple(std)).to_dict(),
        # the paper's rule: the T dates zero-padded/cropped symmetrically to the model's length
        temporal=TemporalRule(length=cfg["temporal_length"], mode="pad").to_dict(),
        bands=bands,
        units="db",
        patch_size=config.patch_size,
        stride=config.stride,
        provenance=provenance(kind="converted-reference", source=str(config.reference),
                              reference_options={k: v for k, v in config.reference_options.items()}),
    )
    with terminate_as_interrupt("the checkpoint being written was removed"):
        save_checkpoint(ck, config.output)
    return ck
