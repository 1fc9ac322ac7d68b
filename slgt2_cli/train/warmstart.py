"""Starting a training run from a trained model (``train --init CHECKPOINT``): fine-tuning and new classes.

CHECKPOINT is a native checkpoint (``best.pt``, ``last.pt``, a ``convert-checkpoint`` output), a run directory
(its ``best.pt``, else ``last.pt``) or a reference mmseg ``.pth``, read as ``convert-checkpoint`` reads it (safe
loading, the stored mmseg config parsed, never executed). The architecture is the checkpoint's: a preset or a
model override that contradicts it is refused. Every tensor whose name and shape match is copied into the freshly
initialised network; when the class tables differ, the classification head starts from the run's initialisation
and the classes both tables share keep their rows (:func:`class_rows`). What happened is one summary line, kept
in the run's config.yaml and in its checkpoints' provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slgt2_cli.checkpoint.format import Checkpoint, load_checkpoint
from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.units import is_generic_name

HEAD = ("seg_head.0.weight", "seg_head.0.bias")
"""The classifier: one row per class."""
ENCODER = ("patch_embeds", "layers", "norm")
"""The encoder's top-level modules (``--freeze-encoder`` keeps them fixed); the rest is decoder and head."""
NEUTRAL = frozenset({"drop_path"})
"""Model arguments that change no weight (a run may set them); every other one is the checkpoint's."""
_NOT_ARCHITECTURE = NEUTRAL | {"in_chans", "num_classes"}


@dataclass(frozen=True)
class StartPoint:
    """The checkpoint a run starts from, as a native checkpoint (a reference file converted in memory)."""

    checkpoint: Checkpoint
    path: Path
    reference: bool
    """A reference mmseg file: it names no bands (its channel count decides)."""

    @property
    def kind(self) -> str:
        return "reference mmseg .pth" if self.reference else "native checkpoint"


_CACHE: dict[tuple[str, int, int], StartPoint] = {}


def read_start(path: str | Path) -> StartPoint:
    """The start point at ``path`` (a checkpoint file or a run directory); InputError naming it otherwise."""
    path = _checkpoint_file(Path(path))
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE.clear()  # configuration and run read the same file: keep the last one only
        _CACHE[key] = _read(path)
    return _CACHE[key]


def _checkpoint_file(path: Path) -> Path:
    if not path.exists():
        raise MissingFileError("checkpoint to start from not found", path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise InputError("holds no best.pt or last.pt: not a run directory to start from", path)
    return path


def _read(path: Path) -> StartPoint:
    from slgt2_cli.checkpoint.convert import ConvertConfig, reference_checkpoint

    try:
        return StartPoint(load_checkpoint(path), path, reference=False)
    except InputError as native:
        try:
            return StartPoint(reference_checkpoint(ConvertConfig(reference=path)), path, reference=True)
        except InputError as reference:
            raise (reference if path.suffix.lower() == ".pth" else native) from None


# --- configuration -------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def architecture(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The model arguments that fix the weights' shapes and meaning."""
    return {k: _plain(v) for k, v in model_config.items() if k not in _NOT_ARCHITECTURE}


def _differences(wanted: Mapping[str, Any], have: Mapping[str, Any]) -> list[str]:
    return [f"{k} {_plain(v)} (checkpoint: {_plain(have.get(k))})" for k, v in wanted.items()
            if k not in _NOT_ARCHITECTURE and _plain(v) != _plain(have.get(k))]


def check_architecture(start: StartPoint, preset: str | None, model: Mapping[str, Any]) -> None:
    """InputError when the given preset or model overrides contradict the checkpoint's architecture."""
    from models import PRESETS

    have = start.checkpoint.model_config
    if preset is not None and preset in PRESETS:
        diff = _differences(PRESETS[preset], have)
        if diff:
            raise InputError(f"preset {preset!r} is not the architecture of the checkpoint to start from: "
                             f"{'; '.join(diff[:3])} (the architecture comes from the checkpoint: leave out "
                             "{preset})", start.path, options=("preset",))
    diff = _differences(model, have)
    if diff:
        raise InputError(f"the model overrides {'; '.join(diff[:3])} contradict the checkpoint to start from (the "
                         "architecture comes from the checkpoint)", start.path)


def schedule_preset(start: StartPoint) -> str:
    """The preset whose schedule a run from ``start`` takes: the one recorded in it, else the one with its
    architecture, else the one with its widths, else ``paper``."""
    from models import PRESETS

    recorded = start.checkpoint.provenance.get("preset")
    arch = architecture(start.checkpoint.model_config)
    if recorded in PRESETS and not _differences(PRESETS[recorded], arch):
        return str(recorded)
    for name, config in PRESETS.items():
        if not _differences(config, arch):
            return name
    widths = _plain(arch.get("embed_dims"))
    return next((name for name, config in PRESETS.items() if _plain(config["embed_dims"]) == widths), "paper")


def start_model_config(start: StartPoint, overrides: Mapping[str, Any], num_classes: int) -> dict[str, Any]:
    """The run's model: the checkpoint's, with the dataset's class count and the neutral overrides."""
    config = dict(start.checkpoint.model_config)
    config.update({k: v for k, v in overrides.items() if k in NEUTRAL})
    config["num_classes"] = num_classes
    return config


# --- inputs --------------------------------------------------------------------------------------------------
def check_bands(start: StartPoint, bands: Sequence[str]) -> str | None:
    """InputError unless the dataset's bands fit the checkpoint's (count, and names where both name them); a
    note for a reference file, whose channels have no names."""
    theirs = list(start.checkpoint.bands)
    ours = ", ".join(bands)
    if start.reference:
        if len(theirs) != len(bands):
            raise InputError(f"the reference checkpoint reads {len(theirs)} channels but the dataset's stacks have "
                             f"{len(bands)} band(s) ({ours})", start.path)
        return (f"note: a reference .pth names no bands: its {len(theirs)} channels are taken as the dataset's "
                f"{ours}, in that order")
    named = [(a, b) for a, b in zip(theirs, bands) if not is_generic_name(a) and not is_generic_name(b)]
    if len(theirs) != len(bands) or any(a.lower() != b.lower() for a, b in named):
        raise InputError(f"the checkpoint's bands {', '.join(theirs)} differ from the dataset's {ours}", start.path)
    return None


# --- weights -------------------------------------------------------------------------------------------------
def class_rows(old: ClassTable, new: ClassTable) -> list[int | None]:
    """For each class of ``new``, the row of ``old`` that stands for it (None: a new class). A class matches the
    old class of its label value unless both are named and the names differ; failing that, the old class of
    its name."""
    def name(c: Any) -> str:
        return c.name.strip().lower()

    def placeholder(c: Any) -> bool:
        return not c.name.strip() or name(c) == f"class {c.value}"

    by_value = {c.value: i for i, c in enumerate(old.classes)}
    by_name = {name(c): i for i, c in enumerate(old.classes) if not placeholder(c)}
    rows: list[int | None] = []
    for c in new.classes:
        i = by_value.get(c.value)
        if i is not None and (placeholder(c) or placeholder(old.classes[i]) or name(old.classes[i]) == name(c)):
            rows.append(i)
        else:
            rows.append(by_name.get(name(c)) if not placeholder(c) else None)
    return rows


@dataclass(frozen=True)
class InitReport:
    """What ``--init`` did to the network's tensors."""

    source: str
    kind: str
    loaded: int
    total: int
    reinitialised: tuple[str, ...]
    skipped: tuple[str, ...]
    classes_kept: int
    classes: int
    same_classes: bool

    def summary(self) -> str:
        head = ("" if self.same_classes else
                f"; new class table: head re-initialised, {self.classes_kept} of {self.classes} classes keep their rows")
        reinit = f", re-initialised {len(self.reinitialised)}" + (
            f" ({', '.join(self.reinitialised[:4])}{', ...' if len(self.reinitialised) > 4 else ''})"
            if self.reinitialised else "")
        skipped = f", skipped {len(self.skipped)} of the checkpoint's" + (
            f" ({', '.join(self.skipped[:3])}{', ...' if len(self.skipped) > 3 else ''})" if self.skipped else "")
        return f"started from {self.source} ({self.kind}): loaded {self.loaded} of {self.total} tensors{reinit}{skipped}{head}"

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.source, "kind": self.kind, "loaded": self.loaded, "tensors": self.total,
                "reinitialised": list(self.reinitialised), "skipped": list(self.skipped),
                "classes_kept": self.classes_kept, "classes": self.classes, "summary": self.summary()}


def load_start(model: torch.nn.Module, start: StartPoint, classes: ClassTable) -> InitReport:
    """Copy every tensor of ``start`` whose name and shape match into ``model`` (already initialised); for a new
    class table, the head keeps the initialisation except the rows of the classes both tables share."""
    source = start.checkpoint.state_dict
    rows = class_rows(start.checkpoint.classes, classes)
    same = len(start.checkpoint.classes) == len(classes) and rows == list(range(len(classes)))
    target = model.state_dict()
    loaded, reinit = 0, []
    with torch.no_grad():
        for key, tensor in target.items():
            src = source.get(key)
            if key in HEAD and not same:
                reinit.append(key)
                if src is not None and src.shape[1:] == tensor.shape[1:]:
                    for i, j in enumerate(rows):
                        if j is not None:
                            tensor[i].copy_(src[j])
            elif src is not None and src.shape == tensor.shape:
                tensor.copy_(src.to(tensor.dtype))
                loaded += 1
            else:
                reinit.append(key)
    skipped = tuple(k for k, v in source.items() if k not in target or (k not in HEAD and v.shape != target[k].shape))
    return InitReport(source=str(start.path), kind=start.kind, loaded=loaded, total=len(target),
                      reinitialised=tuple(reinit), skipped=skipped,
                      classes_kept=sum(r is not None for r in rows), classes=len(classes), same_classes=same)


def encoder_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The encoder's parameters (stem, stages, final norm), which ``--freeze-encoder`` holds still."""
    return [p for name in ENCODER for p in getattr(model, name).parameters()]
