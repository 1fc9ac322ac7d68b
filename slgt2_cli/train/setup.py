"""Everything fixed before the first training step, checked before it: the run's scenes, temporal rule,
normalisation, bands and model config (:class:`RunSetup`).

Every split is checked here, not at the first validation: each stack opens with the training units and
channel count, the temporal rule maps it, a corner of its pixels and of its labels reads, and some label of
the split is in the class table. A resumed run takes the rule, normalisation and model from its `last.pt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rasterio.windows import Window

from models import preset
from slgt2_cli.checkpoint.format import Checkpoint, default_stride
from slgt2_cli.data.datasets import DatasetSpec, Scene, check_labels, open_dataset
from slgt2_cli.data.normalization import (
    Normalization,
    compute_normalization,
    seed_normalization,
)
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.io.pixelsize import training_gsd
from slgt2_cli.train.config import NormSource, TrainConfig, scale_range_for


@dataclass(frozen=True)
class BoundScene:
    """A dataset scene whose stack always opens in the run's units (``--units``), wherever it is read."""

    scene: Scene
    units: str | None = None

    @property
    def id(self) -> str:
        return self.scene.id

    @property
    def image(self) -> Any:
        return self.scene.image

    def open(self, units: str | None = None) -> Any:
        return self.scene.open(units or self.units)

    def open_labels(self, grid: Any) -> Any:
        return self.scene.open_labels(grid)


@dataclass(frozen=True, kw_only=True)
class RunSetup:
    """What a run trains on and with; the same for every step, and stored in every checkpoint."""

    spec: DatasetSpec
    train: tuple[BoundScene, ...]
    val: tuple[BoundScene, ...]
    rule: TemporalRule
    norm: Normalization
    bands: tuple[str, ...]
    units: str
    model_config: Mapping[str, Any]
    scale_range: tuple[float, float]
    stride: int
    gsd: float | None = None
    """Pixel size (m) of the training scenes (median), None when none is georeferenced."""

    def record(self) -> dict[str, Any]:
        """config.yaml's ``resolved`` section: what the configuration resolved to for this dataset."""
        return {"model": dict(self.model_config), "classes": self.spec.classes.to_list(),
                "temporal": self.rule.to_dict(), "temporal_rule": self.rule.describe(),
                "normalization": self.norm.to_dict(), "bands": list(self.bands), "units": self.units,
                "scale_range": list(self.scale_range), "inference": {"stride": self.stride},
                "scenes": self.scene_ids()}

    def scene_ids(self) -> dict[str, list[str]]:
        return {"train": [s.id for s in self.train], "val": [s.id for s in self.val]}


def prepare_run(config: TrainConfig, resume: Checkpoint | None = None) -> RunSetup:
    """Open the dataset, check every split and fix the rule, normalisation and model for the run."""
    spec = open_dataset(config.dataset, val_fraction=config.val_fraction)
    train = tuple(BoundScene(s, config.units) for s in spec.scenes("train"))
    val = tuple(BoundScene(s, config.units) for s in spec.scenes("val"))
    dates, bands, units, gsd = _survey(train)
    model_config = dict(resume.model_config) if resume else _model_config(config, len(bands), len(spec.classes))
    rule = resume.temporal if resume else TemporalRule.fit(dates, length=model_config["temporal_length"],
                                                           mode=config.temporal_mode)
    for split, scenes in (("train", train), ("val", val)):
        for scene in scenes:
            check_scene(scene, rule, len(bands))
        if scenes:
            check_labels(spec, split)
    if resume is not None:
        norm = resume.normalization
    else:
        norm = _normalization(config, spec.kind, train, rule, units)
    setup = RunSetup(spec=spec, train=train, val=val, rule=rule, norm=norm, bands=tuple(bands), units=units,
                     model_config=model_config, scale_range=scale_range_for(config, spec.kind),
                     stride=config.val_stride or default_stride(config.patch_size),
                     gsd=resume.training_gsd_m if resume else gsd)
    if resume is not None:
        check_same_data(setup, resume)
    return setup


def _survey(scenes: tuple[BoundScene, ...]) -> tuple[list[Any], list[str], str, float | None]:
    """Dates of each training stack, the band names, the model units (the first stack's) and the pixel size."""
    dates: list[Any] = []
    grids: list[Any] = []
    bands: list[str] = []
    units = ""
    for scene in scenes:
        with scene.open() as stack:
            dates.append(stack.dates)
            grids.append(stack.grid)
            bands = bands or [p or f"band{i + 1}" for i, p in enumerate(stack.polarisations)]
            units = units or stack.model_units
            if stack.num_channels != len(bands):
                raise InputError(f"has {stack.num_channels} channels, other training stacks have {len(bands)}",
                                 scene.image)
    return dates, bands, units, training_gsd(grids)


def check_scene(scene: BoundScene, rule: TemporalRule, channels: int) -> None:
    """InputError unless the scene's stack has ``channels`` channels, ``rule`` maps it, and its first and last
    pixels and labels read (a truncated file fails here, not at the first validation)."""
    with scene.open() as stack:
        if stack.num_channels != channels:
            raise InputError(f"has {stack.num_channels} channels, the training stacks have {channels}", scene.image)
        rule.check(stack)
        with scene.open_labels(stack.grid) as labels:
            for window in probe_windows(stack.grid.height, stack.grid.width):
                stack.read(window)
                labels.read(window)


def probe_windows(height: int, width: int, size: int = 16) -> list[Window]:
    """Small windows at the first and the last pixels of a grid (the ends of a file's data)."""
    h, w = min(size, height), min(size, width)
    return [Window(0, 0, w, h), Window(width - w, height - h, w, h)]


def _model_config(config: TrainConfig, channels: int, num_classes: int) -> dict[str, Any]:
    try:
        model_config = preset(config.preset, **dict(config.model))
    except (KeyError, TypeError) as exc:
        raise InputError(f"model: {exc}") from None
    model_config.update(in_chans=channels, num_classes=num_classes)
    return model_config


def _normalization(config: TrainConfig, kind: str, train: tuple[BoundScene, ...], rule: TemporalRule,
                   units: str) -> Normalization:
    if config.normalization is NormSource.FIXED:
        fixed = seed_normalization(kind, units)
        if fixed is not None:
            return fixed
    return compute_normalization(train, rule, max_windows_per_stack=config.norm_windows)


def check_same_data(setup: RunSetup, resume: Checkpoint) -> None:
    """A resumed run must see the class table, bands and scenes it started with."""
    where = resume.source
    if setup.spec.classes.to_list() != resume.classes.to_list():
        raise InputError("the dataset's class table differs from the one the run was started with", where)
    if list(setup.bands) != list(resume.bands) or setup.units != resume.units:
        raise InputError(f"the dataset's bands {list(setup.bands)} ({setup.units}) differ from the run's "
                         f"{list(resume.bands)} ({resume.units})", where)
    scenes = (resume.training_state or {}).get("scenes")
    if scenes is not None and scenes != setup.scene_ids():
        raise InputError("the dataset's train/val scenes differ from the ones the run was started with", where)
