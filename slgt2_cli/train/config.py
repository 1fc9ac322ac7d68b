"""Training configuration: field defaults < preset schedule < recipe < config file < command-line options.

Every field of :class:`TrainConfig` is declared once, with its default; a preset's schedule and a recipe are data
(the fields they change), not code. A config file (YAML or TOML; ``batch_size`` or ``batch-size``) is coerced by
field type (:mod:`slgt2_cli.train.coerce`); unknown keys and bad values are errors naming the file and the key.
A run writes its configuration to ``RUN_DIR/config.yaml`` (section ``train``), which ``--config`` accepts back
unchanged, and which ``--resume`` takes the whole configuration from.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from slgt2_cli.data.temporal import MODES
from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.train.coerce import coerce_value


class Recipe(str, Enum):
    """The training procedure (the preset picks the model size and its schedule)."""

    SLGT2 = "slgt2"
    REFERENCE = "reference"


class Init(str, Enum):
    SLGT2 = "slgt2"  # convolutions normal(0, 1/sqrt(fan_in)), bias 0; up-sampling affines the identity
    TORCH = "torch"  # PyTorch's defaults (Kaiming uniform, a=sqrt(5)); slgt2's before 0.2
    REFERENCE = "reference"  # every Conv3d normal(0, sqrt(2 / fan_out)), bias 0
    # Linear layers keep the model's trunc_normal(0.02) under all three


class LossAverage(str, Enum):
    LABELLED = "labelled"  # cross-entropy averaged over labelled pixels
    ALL = "all"  # summed over labelled pixels, divided by all pixels (mmseg's avg_non_ignore=False)


class NormSource(str, Enum):
    COMPUTED = "computed"  # per-channel statistics of the training stacks
    FIXED = "fixed"  # the seed dataset's published mean/std (computed for other datasets)
    CHECKPOINT = "checkpoint"  # the --init checkpoint's statistics when its units are the dataset's (else computed)


class Flips(str, Enum):
    FLIP_ROTATE = "flip-rotate"  # horizontal flip p 0.5, then a random quarter turn
    HORIZONTAL = "horizontal"  # horizontal flip p 0.5 only


class ScaleSampling(str, Enum):
    LOG_UNIFORM = "log-uniform"
    UNIFORM = "uniform"


class Result(str, Enum):
    BEST = "best"  # the checkpoint with the best validation mIoU
    LAST = "last"  # the final weights


class Amp(str, Enum):
    AUTO = "auto"
    BF16 = "bf16"
    FP16 = "fp16"
    NO = "no"


def _f(default: Any, **bounds: Any) -> Any:
    """A field with bounds checked when the value is coerced."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=bounds)
    return field(default=default, metadata=bounds)


def _preset_names() -> tuple[str, ...]:
    from models import (
        PRESETS,  # imports torch: only when a preset is checked, not for `slgt2 --help`
    )

    return tuple(PRESETS)


INVOCATION = ("dataset", "out", "resume", "overwrite", "progress")
"""Fields that say how this command runs, not how the model trains: not in config files or config.yaml."""
MAY_CHANGE_ON_RESUME = frozenset({"device", "workers"})
"""Settings a resumed run may change: they do not change the weights it ends with."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's schedule and slgt2's own recipe)."""

    dataset: Path
    out: Path
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    preset: str = _f("paper", choices=_preset_names)
    """Model size (models/presets.py) and its schedule: tiny, small, paper or paper-brandenburg."""
    recipe: Recipe = _f(Recipe.SLGT2)
    """Training procedure: slgt2 or reference (the paper code's; docs/model.md has the differences)."""
    iterations: int = _f(40000, min=1)
    """Optimiser steps (poly decay to 0 over them)."""
    batch_size: int = _f(2, min=1)
    """Patches per device and forward pass."""
    effective_batch: int | None = _f(None, min=1)
    """Patches per optimiser step over all devices, reached by gradient accumulation (None: no accumulation)."""
    patch_size: int = _f(224, min=32, multiple=32, why="the network down-samples by 32")
    """Training patch size in pixels, a multiple of 32 (also the inference tile default)."""
    lr: float = _f(1e-4, above=0)
    """AdamW learning rate."""
    weight_decay: float = _f(1e-5, min=0)
    poly_power: float = _f(0.9, min=0)
    warmup: int = _f(0, min=0)
    """Steps of linear learning-rate warm-up before the poly decay (the paper uses none)."""
    val_every: int = _f(2000, min=1)
    """Validate and write last.pt every N steps (and at the last step)."""
    val_stride: int | None = _f(None, min=1)
    """Tile stride of whole-split validation (--val-pixels 0) and of predict (None: the patch size × 200/224, as the
    paper's test time)."""
    val_pixels: int = _f(1 << 20, min=0)
    """Pixels each validation scores: evenly spread patch-sized windows of the validation split, the same ones
    every time (0: the whole split, tiled as predict does)."""
    baseline: bool = _f(True)
    """Fit and score a per-pixel logistic-regression baseline beside the network (RUN_DIR/baseline.json)."""
    val_fraction: float = _f(0.2, min=0, max=1)
    """Share of the training scenes held out for validation when the dataset has no val split."""
    min_labelled: float = _f(0.05, min=0, max=1)
    """Least share of labelled pixels a training crop should hold."""
    augment: bool = _f(True)
    """Random rescale, class-balanced crop and flips; off: plain random crops."""
    scale_range: tuple[float, float] | None = _f(None, above=0, ordered=True)
    """Rescale factors drawn from this range (None: the recipe's range for the dataset)."""
    scale_sampling: ScaleSampling = _f(ScaleSampling.LOG_UNIFORM)
    """How rescale factors are drawn: log-uniform or uniform."""
    flips: Flips = _f(Flips.FLIP_ROTATE)
    """flip-rotate (horizontal flip and a random quarter turn) or horizontal (flip only)."""
    crop_tries: int = _f(5, min=1)
    """Crops drawn to find one with at most 75 % of one class."""
    init: Init = _f(Init.SLGT2)
    """Convolution initialisation: slgt2 (variance-preserving, docs/training.md), torch (PyTorch's defaults) or
    reference (normal(0, sqrt(2/fan_out)), bias 0)."""
    loss_average: LossAverage = _f(LossAverage.LABELLED)
    """Cross-entropy averaged over labelled pixels, or over all pixels, ignored ones included."""
    normalization: NormSource = _f(NormSource.COMPUTED)
    """computed from the training stacks, or fixed: a seed dataset's published mean/std."""
    result: Result = _f(Result.BEST)
    """The run's result: best (best.pt, best validation mIoU) or last (last.pt)."""
    class_weights: str | None = _f("auto")
    """'auto' (inverse log frequency from the training labels), None/'none' or comma-separated numbers."""
    device: str = _f("auto")
    """auto, cpu, cuda, cuda:N or mps (may change on --resume)."""
    amp: Amp = _f(Amp.AUTO)
    """Mixed precision on GPU: auto (bf16 where supported, else fp16 with a scaler), bf16, fp16 or no."""
    workers: int = _f(2, min=0)
    """Data-loading processes (may change on --resume)."""
    seed: int = _f(0)
    """Random seed: the same seed gives the same weights on CPU."""
    deterministic: bool = _f(True)
    """Deterministic cuDNN kernels on GPU."""
    units: str | None = _f(None)
    """Units of the stored stacks (None: detected)."""
    temporal_mode: str | None = _f(None, choices=MODES)
    """None (composite for dated stacks, pad for date-less ones) or a temporal rule's mode."""
    norm_windows: int | None = _f(64, min=1)
    """At most this many evenly spaced 256² windows per stack for the normalisation statistics."""
    model: Mapping[str, Any] = _f({})
    """Overrides of the preset's model arguments, e.g. {"topk_div": 2, "stcrb": false}."""
    init_checkpoint: Path | None = _f(None)
    """Start from this model: a native checkpoint, a run directory or a reference mmseg .pth; the architecture,
    temporal rule and (normalization: checkpoint) statistics are its, matching tensors load, a new class table
    re-initialises the head (docs/training.md)."""
    freeze_encoder: int = _f(0, min=0)
    """Train only the decoder and head for the first N steps, then everything (0: never)."""

    def settings(self) -> dict[str, Any]:
        """The configuration in plain types (the ``train`` section of config.yaml), without the invocation."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in INVOCATION}


# The paper's schedule is TrainConfig's default; the small presets scale it down so that they train in minutes.
PRESET_SCHEDULES: Mapping[str, Mapping[str, Any]] = {
    "paper": {},
    "paper-brandenburg": {},
    "small": dict(iterations=10000, batch_size=4, patch_size=128, lr=1e-3, val_every=1000, warmup=200),
    "tiny": dict(iterations=600, batch_size=8, patch_size=64, lr=3e-3, val_every=150, warmup=20),
}

# What a run that starts from a trained model (init_checkpoint) changes in its preset's schedule, unless given:
# the learning rate is the preset's times lr_factor (measured in docs/training.md, "Starting from a trained model").
FINE_TUNE: Mapping[str, Any] = dict(lr_factor=1.0, warmup=20)

# What each recipe changes (docs/model.md has the table of differences and why slgt2's defaults differ).
RECIPES: Mapping[Recipe, Mapping[str, Any]] = {
    Recipe.SLGT2: {},
    Recipe.REFERENCE: dict(init=Init.REFERENCE, loss_average=LossAverage.ALL, scale_sampling=ScaleSampling.UNIFORM,
                           flips=Flips.HORIZONTAL, crop_tries=10, normalization=NormSource.FIXED, result=Result.LAST,
                           effective_batch=8, warmup=0, amp=Amp.NO, temporal_mode="reference", class_weights=None),
}

# Rescale ranges by recipe and dataset kind (open_dataset's kind); other datasets get the recipe's "*".
SCALE_RANGES: Mapping[Recipe, Mapping[str, tuple[float, float]]] = {
    Recipe.SLGT2: {"*": (0.5, 2.0)},
    Recipe.REFERENCE: {"*": (0.5, 2.0), "mts12": (0.5, 2.0), "brandenburg": (1.0, 2.0),
                        "brandenburg-s2": (1.0, 2.0)},
}


def scale_range_for(config: TrainConfig, dataset_kind: str) -> tuple[float, float]:
    """The rescale range a run uses: the configured one, else its recipe's for the dataset."""
    if config.scale_range is not None:
        return config.scale_range
    table = SCALE_RANGES[config.recipe]
    return table.get(dataset_kind, table["*"])


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def coerce_settings(values: Mapping[str, Any], source: Path | None = None) -> dict[str, Any]:
    """Configuration values by field name (``-`` or ``_``), each coerced to its field's type; unknown keys and
    invocation fields are errors naming ``source``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in _FIELDS or name in INVOCATION:
            known = ", ".join(sorted(set(_FIELDS) - set(INVOCATION)))
            raise InputError(f"unknown configuration key {key!r} (known: {known})", source)
        out[name] = coerce_value(name, value, _HINTS[name], _FIELDS[name].metadata, source)
    return out


def defaults() -> dict[str, Any]:
    """Every configuration field's declared default."""
    return {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)  # type: ignore[misc]
            for f in fields(TrainConfig) if f.name not in INVOCATION and f.name not in ("dataset", "out")}


def base_values(preset: str, recipe: Recipe) -> dict[str, Any]:
    """Defaults with the preset's schedule and the recipe applied."""
    return {**defaults(), **PRESET_SCHEDULES.get(preset, {}), **RECIPES[recipe], "preset": preset, "recipe": recipe}


# --- reading and resolving ---------------------------------------------------------------------------------
RECORD_SECTION = "resolved"
"""config.yaml's record of what the run resolved (model, classes, normalisation...): written, never read back."""


def _load_toml(text: str) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def read_config_file(path: Path) -> dict[str, Any]:
    """The configuration values of a YAML (.yaml/.yml) or TOML (.toml) file, coerced by field type: a mapping
    of keys, or a run's config.yaml (its ``train`` section; the ``resolved`` record is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise (InputError if path.exists() else MissingFileError)("config file not found", path)
    try:
        text = path.read_text()
        data = _load_toml(text) if path.suffix.lower() == ".toml" else _load_yaml(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"not a readable YAML/TOML config ({str(exc).splitlines()[0]})", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("a config file must hold a mapping of keys to values", path)
    if isinstance(data.get("train"), dict):  # a run's config.yaml
        extra = sorted(set(data) - {"train", RECORD_SECTION})
        if extra:
            raise InputError(f"unknown section {extra[0]!r} beside 'train' (a run's config.yaml has 'train' and "
                             f"'{RECORD_SECTION}')", path)
        data = data["train"]
    return coerce_settings(data, path)


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The configuration a run was started with, from ``RUN_DIR/config.yaml`` (fields it predates: defaults)."""
    record = Path(run_dir) / "config.yaml"
    if not record.is_file():
        raise InputError("cannot resume: the run directory has no config.yaml", run_dir)
    import yaml

    try:
        data = yaml.safe_load(record.read_text())
        section = dict(data["train"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError):
        raise InputError("cannot resume: not a run's config.yaml (no 'train' section)", record) from None
    for key in INVOCATION:  # written by slgt2 before 0.1.1
        section.pop(key, None)
    values = coerce_settings(section, record)
    preset = values.get("preset", "paper")
    return {**base_values(preset, values.get("recipe", Recipe.SLGT2)), **values}


def default_preset(dataset: Path) -> str:
    """``paper``, or ``paper-brandenburg`` (the paper's model for it: 48 frames, temporal kernel 9) for the
    Brandenburg tree as distributed."""
    from slgt2_cli.data.brandenburg import is_distributed_tree

    return "paper-brandenburg" if Path(dataset).is_dir() and is_distributed_tree(Path(dataset)) else "paper"


def resolve_config(dataset: Path, out: Path, config_file: Path | None = None, **options: Any) -> TrainConfig:
    """The run's configuration: defaults < preset schedule < recipe < ``config_file`` < ``options`` (those not
    None). With ``resume=True`` everything comes from the run directory, and what is given must agree with it."""
    invocation = {k: bool(options.pop(k)) for k in ("resume", "overwrite", "progress") if options.get(k) is not None}
    given = read_config_file(config_file) if config_file is not None else {}
    given.update(coerce_settings({k: v for k, v in options.items() if v is not None}))
    if invocation.get("resume"):
        values = _resumed(Path(out), given, overwrite=invocation.get("overwrite", False))
    elif given.get("init_checkpoint") is not None:
        values = _started(given)
    else:
        if given.get("normalization") is NormSource.CHECKPOINT:
            raise InputError("normalization 'checkpoint' needs a checkpoint to start from ({init_checkpoint})",
                             options=("init_checkpoint",))
        values = {**base_values(given.get("preset", default_preset(dataset)), given.get("recipe", Recipe.SLGT2)),
                  **given}
    if not invocation.get("resume") and "val_every" not in given:  # a short run validates at least four times
        values["val_every"] = max(1, min(values["val_every"], values["iterations"] // 4))
    _check_units(values.get("units"))
    return TrainConfig(dataset=Path(dataset), out=Path(out), **values, **invocation)


def _started(given: Mapping[str, Any]) -> dict[str, Any]:
    """A run from a trained model: the schedule of the checkpoint's preset (or the given one, which must be its
    architecture), with the fine-tuning learning rate and warm-up, and the checkpoint's statistics."""
    from slgt2_cli.train.warmstart import check_architecture, read_start, schedule_preset

    start = read_start(given["init_checkpoint"])
    check_architecture(start, given.get("preset"), given.get("model") or {})
    preset = given.get("preset") or schedule_preset(start)
    base = base_values(preset, given.get("recipe", Recipe.SLGT2))
    tuned = {"lr": float(f"{base['lr'] * FINE_TUNE['lr_factor']:.3g}"), "warmup": FINE_TUNE["warmup"],
             "normalization": NormSource.CHECKPOINT}
    return {**base, **tuned, "preset": preset, **given}


def _resumed(out: Path, given: Mapping[str, Any], overwrite: bool) -> dict[str, Any]:
    """The run's own configuration; a given value that differs from it (other than device/workers) is refused,
    except ``iterations``, which extends (or re-plans) the run (checked against its step when last.pt loads)."""
    if overwrite:
        raise InputError("resuming a run and overwriting it cannot be combined", out)
    if not (out / "last.pt").exists():
        raise InputError("nothing to resume: no last.pt in the run directory", out)
    run = read_run_config(out)
    for key, value in given.items():
        if key not in MAY_CHANGE_ON_RESUME and key != "iterations" and value != run[key]:
            raise InputError(f"{key} {_show(value)} differs from the run's {_show(run[key])}; a resumed run keeps "
                             "the configuration it started with (train into another directory to change it)",
                             out / "config.yaml")
    if "iterations" in given:
        check_steps_ahead(given["iterations"], out / "last.pt")
    return {**run, **{k: v for k, v in given.items() if k in MAY_CHANGE_ON_RESUME or k == "iterations"}}


def check_steps_ahead(iterations: int, last: Path, step: int | None = None) -> None:
    """InputError unless ``iterations`` is above the step of the run whose last.pt is ``last``."""
    if step is None:
        from slgt2_cli.checkpoint.format import load_checkpoint

        step = int((load_checkpoint(last, with_training_state=True).training_state or {}).get("step", 0))
    if iterations <= step:
        raise InputError(f"{{iterations}} {iterations} is not above the run's current step {step}: nothing to train "
                         "(give more steps to extend it)", last, options=("iterations",))


def _show(value: Any) -> str:
    return repr(_plain(value)) if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value)


def _check_units(units: str | None) -> None:
    if units is None:
        return
    from slgt2_cli.io.units import normalise_units

    try:
        normalise_units(units)
    except ValueError as exc:
        raise InputError(f"units: {exc}") from None


def render_config(config: TrainConfig) -> str:
    """config.yaml's ``train`` section for ``config``, as YAML ``--config`` accepts, with a comment per field the
    recipe changes from slgt2's defaults."""
    import yaml

    text = yaml.safe_dump({"train": config.settings()}, sort_keys=False)
    changed = RECIPES[config.recipe]
    if changed:
        base = base_values(config.preset, Recipe.SLGT2)
        notes = [f"#   {k}: {_plain(v)} (slgt2: {_plain(base[k])})" for k, v in changed.items() if v != base[k]]
        if config.scale_range is None:
            ranges = ", ".join(f"{'other' if kind == '*' else kind} {lo:g}-{hi:g}"
                               for kind, (lo, hi) in SCALE_RANGES[config.recipe].items())
            notes.append(f"#   scale_range by dataset: {ranges} (slgt2: "
                         f"{'-'.join(f'{v:g}' for v in SCALE_RANGES[Recipe.SLGT2]['*'])})")
        text += f"# recipe {config.recipe.value!r} differs from slgt2's defaults in:\n" + "\n".join(notes) + "\n"
    return text
