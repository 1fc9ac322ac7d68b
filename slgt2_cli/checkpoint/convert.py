"""Turning a published reference checkpoint (mmseg file) into a native slgt2 checkpoint `predict` accepts.

The mmseg config stored in the checkpoint (``meta["config"]``, parsed, never executed) says how the reference
ran the model; it becomes the native checkpoint's settings (see :func:`pipeline_settings`). Options override it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slgt2_cli.checkpoint.format import Checkpoint, provenance, save_checkpoint
from slgt2_cli.data.datasets import MTS12_CLASSES
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError, MissingFileError, terminate_as_interrupt
from slgt2_cli.io.atomic import check_distinct, prepare_output
from slgt2_cli.io.classes import ClassTable


@dataclass
class ConvertConfig:
    reference: Path
    output: Path | None = None
    """Where :func:`convert_reference` writes (None: :func:`reference_checkpoint` only, in memory)."""
    reference_options: dict[str, Any] = field(default_factory=dict)
    """Reference backbone names: flag, embed_dims, depths, num_heads, wss_lst, dss_lst, topk_div, ..."""
    classes: Path | None = None
    bands: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    patch_size: int | None = None
    stride: int | None = None
    overwrite: bool = False
    units: str | None = None


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """What the stored mmseg config says about the reference's test procedure (None: it does not say)."""

    mean: list[float] | None = None
    std: list[float] | None = None
    temporal_length: int | None = None
    crop: int | None = None
    stride: int | None = None
    class_names: list[str] | None = None
    palette: list[list[int]] | None = None
    reduce_zero_label: bool = True
    dataset_type: str | None = None


def _steps(pipeline: Any) -> list[dict]:
    """Every step of a pipeline, those nested in MultiScaleFlipAug included, in order."""
    out: list[dict] = []
    for step in pipeline if isinstance(pipeline, list) else []:
        if isinstance(step, dict):
            out.append(step)
            out.extend(_steps(step.get("transforms")))
    return out


def _square(value: Any) -> int | None:
    """224 from ``(224, 224)`` or ``224``; None for non-square or missing values (the caller's default holds)."""
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1] and isinstance(value[0], int):
        return int(value[0])
    return None


def pipeline_settings(config: dict[str, Any], meta: dict[str, Any]) -> PipelineSettings:
    """Normalisation and time length of the *test* pipeline, slide crop/stride, classes, palette, label rule."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    test = data.get("test") if isinstance(data.get("test"), dict) else {}
    steps = _steps(test.get("pipeline")) or _steps(config.get("test_pipeline"))
    norm = next((s for s in steps if s.get("type") == "Normalize"), None) or config.get("img_norm_cfg") or {}
    pad = next((s for s in steps if s.get("type") == "Pad" and isinstance(s.get("num_bands"), int)), {})
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    test_cfg = config.get("test_cfg") if isinstance(config.get("test_cfg"), dict) else model.get("test_cfg") or {}
    slide = isinstance(test_cfg, dict) and test_cfg.get("mode") == "slide"
    names = meta.get("CLASSES") or None
    palette = meta.get("PALETTE") or None
    reduce = test.get("reduce_zero_label")
    if reduce is None:
        load = next((s for s in _steps(data.get("train", {}).get("pipeline") if isinstance(data.get("train"), dict)
                                       else None) if s.get("type") == "LoadAnnotations"), {})
        reduce = load.get("reduce_zero_label", True)
    return PipelineSettings(
        mean=[float(m) for m in norm["mean"]] if isinstance(norm.get("mean"), (list, tuple)) else None,
        std=[float(s) for s in norm["std"]] if isinstance(norm.get("std"), (list, tuple)) else None,
        temporal_length=pad.get("num_bands"),
        crop=_square(test_cfg.get("crop_size")) if slide else None,
        stride=_square(test_cfg.get("stride")) if slide else None,
        class_names=[str(n) for n in names] if isinstance(names, (list, tuple)) else None,
        palette=[list(p) for p in palette] if isinstance(palette, (list, tuple)) else None,
        reduce_zero_label=bool(reduce),
        dataset_type=test.get("type") if isinstance(test.get("type"), str) else config.get("dataset_type"),
    )


def class_table(settings: PipelineSettings, num_classes: int, stem: str) -> ClassTable:
    """Model class i has label value i + 1 (reduce_zero_label: 0 is no data) or i, the stored names and colours."""
    first = 1 if settings.reduce_zero_label else 0
    names = settings.class_names if settings.class_names and len(settings.class_names) == num_classes else None
    if names is None and stem == "slovenia" and num_classes == len(MTS12_CLASSES):
        names = MTS12_CLASSES
    palette = settings.palette if settings.palette and len(settings.palette) == num_classes else None
    items = []
    for i in range(num_classes):
        item: dict[str, Any] = {"value": i + first, "name": names[i] if names else f"class {i + first}"}
        if palette and len(palette[i]) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in palette[i]):
            item["color"] = "#{:02x}{:02x}{:02x}".format(*palette[i])
        items.append(item)
    return ClassTable.from_list(items)


def default_classes(num_classes: int, stem: str) -> ClassTable:
    """The seed datasets' legends: label value i + 1 is model class i (0 = no data / background)."""
    return class_table(PipelineSettings(), num_classes, stem)


def default_bands(settings: PipelineSettings, stem: str, channels: int) -> list[str]:
    """The seed datasets' channel order: Brandenburg (``VHVV_*`` files) VH, VV; MTS12 Slovenia VV, VH."""
    if channels != 2:
        return [f"band{i + 1}" for i in range(channels)]
    brandenburg = "brandenburg" in (settings.dataset_type or "").lower() or (
        stem == "brandenburg" and not settings.dataset_type)
    return ["VH", "VV"] if brandenburg else ["VV", "VH"]


def model_units(settings: PipelineSettings, mean: list[float]) -> str:
    """``scaled`` for the MTS12 0..255 integers (Slovenia), ``db`` for backscatter in dB (negative means)."""
    if settings.dataset_type and "slovenia" in settings.dataset_type.lower():
        return "scaled"
    return "db" if all(m <= 0 for m in mean) else "scaled"


def convert_reference(config: ConvertConfig) -> Checkpoint:
    """Load, check and write; returns the native checkpoint."""
    if not config.reference.exists():
        raise MissingFileError("reference checkpoint not found", config.reference)
    if config.output is None:
        raise InputError("no output path for the converted checkpoint", config.reference)
    check_distinct([("converted checkpoint", config.output)],
                   [("reference checkpoint", config.reference), ("class table", config.classes)])
    prepare_output(config.output, overwrite=config.overwrite)
    ck = reference_checkpoint(config)
    with terminate_as_interrupt("the checkpoint being written was removed"):
        save_checkpoint(ck, config.output)
    return ck


def reference_checkpoint(config: ConvertConfig) -> Checkpoint:
    """The native checkpoint of a reference file, in memory (read safely, its stored mmseg config parsed; what
    :func:`convert_reference` writes and ``train --init`` starts from)."""
    from models import ReferenceCheckpointError
    from models.reference import build_reference_model, load_reference

    if not config.reference.exists():
        raise MissingFileError("reference checkpoint not found", config.reference)
    try:
        ref = load_reference(config.reference)
        settings = pipeline_settings(ref.config, ref.meta)
        options = dict(config.reference_options)
        if "temporal_length" not in options and settings.temporal_length and "img_size" not in ref.backbone:
            options["temporal_length"] = settings.temporal_length
        model = build_reference_model(ref, **options)
    except ReferenceCheckpointError as exc:
        raise InputError(str(exc), config.reference) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"the reference options do not fit this checkpoint ({exc})", config.reference) from None
    cfg = model.config
    classes = ClassTable.load(config.classes) if config.classes else class_table(settings, cfg["num_classes"],
                                                                                  cfg["stem"])
    if len(classes) != cfg["num_classes"]:
        raise InputError(f"has {len(classes)} classes but the model predicts {cfg['num_classes']}", config.classes)
    channels = cfg["in_chans"]
    bands = config.bands or default_bands(settings, cfg["stem"], channels)
    mean = config.mean or settings.mean or [0.0] * channels
    std = config.std or settings.std or [1.0] * channels
    if not (len(bands) == len(mean) == len(std) == channels):
        raise InputError(f"the model reads {channels} channels: give that many {{bands}}, {{mean}} and {{std}} values",
                         options=("bands", "mean", "std"))
    tile = config.patch_size or settings.crop or 224
    ck = Checkpoint(
        model_config=cfg,
        state_dict=model.state_dict(),
        classes=classes,
        normalization=Normalization(tuple(mean), tuple(std)).to_dict(),
        # the reference's data pipeline: dates reflect-padded (or cropped) to the model's length
        temporal=TemporalRule(length=cfg["temporal_length"], mode="reference").to_dict(),
        bands=bands,
        units=config.units or model_units(settings, mean),
        patch_size=tile,
        stride=config.stride or settings.stride or max(1, round(tile * 200 / 224)),
        blend="average",  # the reference's slide inference: plain average of logits
        provenance=provenance(kind="converted-reference", source=str(config.reference),
                              reference_options={k: v for k, v in config.reference_options.items()},
                              reference_dataset=settings.dataset_type,
                              mmseg_version=str(ref.meta.get("mmseg_version", "")),
                              iteration=ref.meta.get("iter") if isinstance(ref.meta.get("iter"), int) else None),
    )
    ck.source = config.reference
    return ck
