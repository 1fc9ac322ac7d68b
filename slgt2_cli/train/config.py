"""Training configuration: preset recipe < config file (YAML or TOML) < command-line options.

Every field of :class:`TrainConfig` may appear in a config file (``batch_size`` or ``batch-size``); options
given on the command line win. The resolved configuration is written to ``RUN_DIR/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from models import PRESETS
from slgt2_cli.errors import InputError

# The paper's recipe (ARCHITECTURE.md), scaled down for the small presets so that they train in minutes.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(iterations=40000, batch_size=2, patch_size=224, lr=1e-4, val_every=2000),
    "paper-brandenburg": dict(iterations=40000, batch_size=2, patch_size=224, lr=1e-4, val_every=2000),
    "small": dict(iterations=10000, batch_size=4, patch_size=128, lr=1e-3, val_every=1000, warmup=200),
    "tiny": dict(iterations=600, batch_size=8, patch_size=64, lr=1e-2, val_every=150, warmup=20),
}


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    dataset: Path
    out: Path
    preset: str = "paper"
    iterations: int = 40000
    batch_size: int = 2
    patch_size: int = 224
    lr: float = 1e-4
    weight_decay: float = 1e-5
    poly_power: float = 0.9
    warmup: int = 0
    """Steps of linear learning-rate warm-up before the poly decay (the paper uses none)."""
    val_every: int = 2000
    val_stride: int | None = None
    val_fraction: float = 0.2
    min_labelled: float = 0.05
    augment: bool = True
    """The paper's augmentation: random rescale 0.5-2, class-balanced crop, flips (and rot90)."""
    class_weights: str | None = None
    """None/'none', 'auto' (inverse log frequency from the training labels) or comma-separated numbers."""
    device: str = "auto"
    amp: str = "auto"
    """Mixed precision on GPU: auto (bf16 where supported, else fp16 with a scaler), bf16, fp16 or no."""
    workers: int = 2
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    deterministic: bool = True
    progress: bool = True
    units: str | None = None
    temporal_mode: str | None = None
    """None (composite for dated stacks, pad for date-less ones), 'composite' or 'pad'."""
    norm_windows: int | None = 64
    """At most this many evenly spaced 256² windows per stack for the normalisation statistics."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's model arguments, e.g. {"topk_div": 2, "stcrb": false}."""

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


FIELD_NAMES = {f.name for f in fields(TrainConfig)}


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) file of TrainConfig fields."""
    if not path.exists():
        raise InputError("config file not found", path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"not a readable YAML/TOML config ({str(exc).splitlines()[0]})", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("a config file must hold a mapping of option names to values", path)
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELD_NAMES or name in ("dataset", "out", "resume"):
            raise InputError(f"unknown option {key!r} (known: {', '.join(sorted(FIELD_NAMES - {'dataset', 'out'}))})",
                             path)
        out[name] = value
    return out


def resolve_config(dataset: Path, out: Path, config_file: Path | None = None, **cli: Any) -> TrainConfig:
    """Merge the preset's recipe, the config file and the options given on the command line (not None)."""
    from_file = read_config_file(config_file) if config_file else {}
    name = cli.get("preset") or from_file.get("preset") or "paper"
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values: dict[str, Any] = {"preset": name, **RECIPES.get(name, {})}
    values.update(from_file)
    values.update({k: v for k, v in cli.items() if v is not None})
    values["preset"] = name
    if "val_every" not in from_file and cli.get("val_every") is None and isinstance(values.get("iterations"), int):
        # a short run validates (and writes best.pt) at least four times, not only at its end
        values["val_every"] = max(1, min(values.get("val_every", 2000), values["iterations"] // 4))
    try:
        config = TrainConfig(dataset=Path(dataset), out=Path(out), **values)
    except TypeError as exc:
        raise InputError(f"bad training configuration ({exc})") from None
    _check(config)
    return config


def _check(c: TrainConfig) -> None:
    for name in ("iterations", "batch_size", "patch_size", "val_every"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"{{{name}}} must be a positive integer, not {v!r}", options=(name,))
    if c.patch_size % 32:
        raise InputError(f"{{patch_size}} must be a multiple of 32 (the network's down-sampling), not {c.patch_size}",
                         options=("patch_size",))
    if not (isinstance(c.lr, (int, float)) and c.lr > 0):
        raise InputError(f"{{lr}} must be a positive number, not {c.lr!r}", options=("lr",))
    if c.amp not in ("auto", "bf16", "fp16", "no"):
        raise InputError(f"amp must be auto, bf16, fp16 or no, not {c.amp!r}")
    if not isinstance(c.model, dict):
        raise InputError("'model' in a config file must be a mapping of model arguments")
