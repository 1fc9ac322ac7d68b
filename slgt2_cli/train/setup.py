"""Everything fixed before the first training step, checked before it: the run's scenes, temporal rule,
normalisation, bands and model config (:class:`RunSetup`).

Every split is checked here, not at the first validation: each stack opens with the training units and
channel count, the temporal rule maps it, a corner of its pixels and of its labels reads, and some label of
the split is in the class table. A resumed run takes the rule, normalisation and model from its `last.pt`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import preset
from slgt2_cli.checkpoint.format import Checkpoint, default_stride
from slgt2_cli.data.datasets import DatasetSpec, Scene, check_labels, open_dataset
from slgt2_cli.data.normalization import Normalization, seed_normalization
from slgt2_cli.data.survey import (
    Survey,
    SurveySettings,
    probe_windows,
    store_survey,
    survey_dataset,
    survey_settings,
)
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.io.pixelsize import training_gsd
from slgt2_cli.train.config import NormSource, TrainConfig, scale_range_for
from slgt2_cli.train.warmstart import StartPoint, check_bands, read_start, start_model_config


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
    shapes: tuple[tuple[int, int], ...] | None = None
    """(height, width) of each training scene (from the survey: patch sampling opens no file for it)."""
    class_counts: tuple[int, ...] | None = None
    """Labelled pixels per class over the training scenes (the survey's exact census)."""
    survey: Survey | None = None
    survey_settings: SurveySettings | None = None
    val_shapes: tuple[tuple[int, int], ...] = ()
    """(height, width) of each validation scene."""
    start: StartPoint | None = None
    """The trained model a fresh run starts from (``init_checkpoint``)."""
    notes: tuple[str, ...] = ()
    """Lines to print at the start of the run (how the start point's bands and statistics were taken)."""

    def store_survey(self, run_dir: Path) -> None:
        """Cache the survey in the run directory (once it exists) for ``--resume`` and ``evaluate``."""
        if self.survey is not None and self.survey_settings is not None:
            store_survey(run_dir, self.spec, self.survey_settings, self.survey)

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
    """Open the dataset, survey the training scenes in one pass (data/survey.py, cached in the run directory),
    check every split and fix the rule, normalisation and model for the run."""
    spec = open_dataset(config.dataset, val_fraction=config.val_fraction)
    train = tuple(BoundScene(s, config.units) for s in spec.scenes("train"))
    val = tuple(BoundScene(s, config.units) for s in spec.scenes("val"))
    start = read_start(config.init_checkpoint) if resume is None and config.init_checkpoint is not None else None
    if resume:
        model_config = dict(resume.model_config)
    elif start:
        model_config = start_model_config(start, config.model, len(spec.classes))
    else:
        model_config = _model_config(config, 0, len(spec.classes))
    settings = survey_settings(config, model_config["temporal_length"])
    survey = survey_dataset(spec, settings, cache_dir=config.out, workers=config.workers, progress=config.progress)
    bands, units = list(survey.bands), survey.units
    notes = [note for note in [check_bands(start, bands)] if note] if start else []
    if resume is None and start is None:
        model_config["in_chans"] = len(bands)
    rule = resume.temporal if resume else _start_rule(config, start, train, len(bands)) or survey.rule
    val_shapes = tuple(check_scene(scene, rule, len(bands)) for scene in val)  # the survey checked the training scenes
    if val:
        check_labels(spec, "val")
    if resume is not None:
        norm = resume.normalization
    else:
        norm = _normalization(config, spec.kind, survey.norm, units, start, notes)
    setup = RunSetup(spec=spec, train=train, val=val, rule=rule, norm=norm, bands=tuple(bands), units=units,
                     model_config=model_config, scale_range=scale_range_for(config, spec.kind),
                     stride=config.val_stride or default_stride(config.patch_size),
                     gsd=resume.training_gsd_m if resume else _gsd(train), shapes=tuple(survey.shapes),
                     class_counts=tuple(survey.class_counts), survey=survey, survey_settings=settings,
                     val_shapes=val_shapes, start=start, notes=tuple(notes))
    if resume is not None:
        check_same_data(setup, resume)
    return setup


def _gsd(scenes: tuple[BoundScene, ...], most: int = 9) -> float | None:
    """The training pixel size: the median over (at most ``most``, evenly spaced) georeferenced scenes."""
    picked = scenes[:: max(1, len(scenes) // most)][:most]
    grids = []
    for scene in picked:
        with scene.open() as stack:
            grids.append(stack.grid)
    return training_gsd(grids)


def check_scene(scene: BoundScene, rule: TemporalRule, channels: int) -> tuple[int, int]:
    """The scene's (height, width); InputError unless its stack has ``channels`` channels, ``rule`` maps it, and
    its first and last pixels and labels read (a truncated file fails here, not at the first validation)."""
    with scene.open() as stack:
        if stack.num_channels != channels:
            raise InputError(f"has {stack.num_channels} channels, the training stacks have {channels}", scene.image)
        rule.check(stack)
        with scene.open_labels(stack.grid) as labels:
            for window in probe_windows(stack.grid.height, stack.grid.width):
                stack.read(window)
                labels.read(window)
        return stack.grid.height, stack.grid.width


def _model_config(config: TrainConfig, channels: int, num_classes: int) -> dict[str, Any]:
    try:
        model_config = preset(config.preset, **dict(config.model))
    except (KeyError, TypeError) as exc:
        raise InputError(f"model: {exc}") from None
    model_config.update(in_chans=channels, num_classes=num_classes)
    return model_config


def _start_rule(config: TrainConfig, start: StartPoint | None, train: tuple[BoundScene, ...], channels: int
                ) -> TemporalRule | None:
    """The temporal rule of the checkpoint a run starts from (None: the survey's, also when a mode is given),
    checked on every training scene (the survey checked them under its own rule)."""
    if start is None or config.temporal_mode is not None:
        return None
    rule = start.checkpoint.temporal
    for scene in train:
        check_scene(scene, rule, channels)
    return rule


def _normalization(config: TrainConfig, kind: str, surveyed: Normalization, units: str,
                   start: StartPoint | None = None, notes: list[str] | None = None) -> Normalization:
    """The start point's statistics (when its units are the dataset's), the recipe's fixed statistics for the
    seed datasets, else the survey's estimate."""
    if config.normalization is NormSource.CHECKPOINT and start is not None:
        if start.checkpoint.units == units:
            return start.checkpoint.normalization
        if notes is not None:
            notes.append(f"note: the checkpoint's normalisation is for {start.checkpoint.units} values, the dataset's "
                         f"stacks hold {units}: normalising by the dataset's own statistics")
    if config.normalization is NormSource.FIXED:
        fixed = seed_normalization(kind, units)
        if fixed is not None:
            return fixed
    return surveyed


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
