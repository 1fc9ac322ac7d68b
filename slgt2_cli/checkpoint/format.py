"""Self-contained slgt2 checkpoints: everything `predict` needs, in one file, written atomically.

A checkpoint holds the model config and weights, the class table, the normalisation statistics, the
temporal rule, the input bands and units, the training patch/stride (inference defaults) and provenance;
`last.pt` also holds the optimiser, scheduler, step, RNG states and best score for `--resume`.
Only plain types and tensors are stored, so loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.torch_version import TorchVersion

from slgt2_cli import __version__
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.atomic import atomic_output
from slgt2_cli.io.classes import ClassTable

_WRITE_FAILED = re.compile(r"inline_container|PytorchStreamWriter|unexpected pos|write failed", re.I)
FORMAT = "slgt2-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """The contents of a native checkpoint."""

    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: ClassTable
    normalization: Normalization
    temporal: TemporalRule
    bands: list[str]
    units: str
    patch_size: int
    stride: int
    provenance: dict[str, Any] = field(default_factory=dict)
    blend: str | None = None
    """Default test-time blend of overlapping tiles (``average`` for converted reference checkpoints)."""
    training_gsd_m: float | None = None
    """Pixel size (m) of the training scenes; None when unknown (old checkpoints, scenes without a CRS)."""
    training_state: dict[str, Any] | None = None
    source: Path | None = field(default=None, compare=False)
    """The file it was loaded from (named in errors); not stored."""

    def __post_init__(self) -> None:
        # The stored (plain) form is parsed here and only here; callers may hand it over as it comes.
        if isinstance(self.normalization, dict):
            self.normalization = Normalization.from_dict(self.normalization)
        if isinstance(self.temporal, dict):
            self.temporal = TemporalRule.from_dict(self.temporal)

    def build_model(self) -> torch.nn.Module:
        """The network with its weights, in eval mode on the CPU; InputError if they do not fit together."""
        from models import SLGT2Net

        try:
            model = SLGT2Net(**self.model_config)
        except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as exc:
            raise InputError(f"its model config cannot build a network ({type(exc).__name__}: {_first_line(exc)})",
                             self.source) from None
        try:
            model.load_state_dict(self.state_dict)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"its weights do not fit its model config, the file is damaged or foreign "
                             f"({_first_line(exc, skip_header=True)})", self.source) from None
        return model.eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"config": self.model_config, "state_dict": self.state_dict},
            "classes": self.classes.to_list(),
            "normalization": self.normalization.to_dict(),
            "temporal": self.temporal.to_dict(),
            "bands": list(self.bands),
            "units": self.units,
            "inference": {"patch_size": int(self.patch_size), "stride": int(self.stride),
                          **({"blend": self.blend} if self.blend else {})},
            "provenance": self.provenance,
            "training_gsd_m": self.training_gsd_m,
            "training_state": self.training_state,
        }


def _first_line(exc: BaseException, skip_header: bool = False, limit: int = 160) -> str:
    """The telling line of an exception's message, shortened (torch's load_state_dict puts it second)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if skip_header and len(lines) > 1:
        lines = lines[1:]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_stride(tile: int) -> int:
    """The default step between inference tiles: the paper's 200 for its 224 tiles, scaled to ``tile``."""
    return max(1, round(int(tile) * 200 / 224))


def _blend(value: Any) -> str | None:
    """A stored blend mode, checked to be one predict knows."""
    from slgt2_cli.infer.tiling import BLEND_MODES

    if value is None:
        return None
    if str(value) not in BLEND_MODES:
        raise ValueError(f"unknown inference blend {value!r}")
    return str(value)


def provenance(**extra: Any) -> dict[str, Any]:
    """Who made a checkpoint, when, with what."""
    return {
        "slgt2_version": __version__,
        "torch_version": str(torch.__version__),  # a TorchVersion object would not load with weights_only
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Write ``obj`` to ``path`` so that ``path`` is always either the old file or the complete new one
    (:func:`~slgt2_cli.io.atomic.atomic_output`: mode 0644 under the usual umask, full disk -> InputError)."""
    with atomic_output(path, verify=_verify_zip) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) as RuntimeError
            if not _WRITE_FAILED.search(str(exc)):
                raise
            raise OSError(f"writing failed: {_first_line(exc)}") from exc


def _verify_zip(path: Path) -> None:
    """OSError unless the written checkpoint reads back whole (a torch file is a zip: every member's CRC)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as exc:
        raise OSError(f"the written file cannot be read back: {exc}") from exc
    if bad is not None:
        raise OSError(f"the written file cannot be read back: {bad} is damaged")


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    atomic_torch_save(checkpoint.to_payload(), path)


def load_checkpoint(path: str | Path, with_training_state: bool = False) -> Checkpoint:
    """Read and validate a native checkpoint; any problem is an InputError naming the file."""
    path = Path(path)
    raw = _read_payload(path)
    _check_format(raw, path)
    try:
        ck = _from_payload(raw, path, with_training_state)
    except InputError as exc:
        raise InputError(f"checkpoint is damaged ({exc})", path) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise InputError(f"checkpoint is incomplete or damaged ({type(exc).__name__}: {_first_line(exc)})",
                         path) from None
    if with_training_state and not isinstance(ck.training_state, dict):
        raise InputError("has no training state to resume from (it is a best.pt or a converted checkpoint)", path)
    if len(ck.classes) != ck.model_config.get("num_classes"):
        raise InputError(
            f"class table has {len(ck.classes)} classes but the model predicts {ck.model_config.get('num_classes')}",
            path,
        )
    return ck


def _read_payload(path: Path) -> Any:
    """The unpickled payload, loaded without unrestricted unpickling; refusals name what the file asked for."""
    if not path.exists():
        raise MissingFileError("checkpoint not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a checkpoint file (did you mean RUN_DIR/best.pt?)", path)
    try:
        # TorchVersion (a str subclass) is allowed so checkpoints written before provenance stored str() still load
        with torch.serialization.safe_globals([TorchVersion]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise InputError("not a readable slgt2 checkpoint: corrupt, truncated or foreign (it asks for more memory "
                         "than there is)", path) from None
    except OSError as exc:
        raise InputError(f"cannot read the checkpoint ({exc.strerror or exc})", path) from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle errors, foreign objects...
        from models.mmseg_config import refusal

        if refusal(exc):  # a pickle payload or foreign object: never unpickled, say so
            raise InputError(refusal(exc), path) from None
        raise InputError(f"not a readable slgt2 checkpoint: corrupt, truncated or foreign ({_first_line(exc, limit=120)})",
                         path) from None


def _check_format(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        hint = "convert a reference checkpoint with `slgt2 convert-checkpoint`"
        if isinstance(raw, dict) and ("state_dict" in raw or "meta" in raw):
            raise InputError("is not an slgt2 checkpoint (it looks like a reference/mmseg file)", path, hint)
        raise InputError("is not an slgt2 checkpoint", path, hint)
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or version < 1:
        raise InputError(f"checkpoint is damaged (format version {version!r})", path)
    if version > FORMAT_VERSION:
        raise InputError(f"was written by a newer slgt2 (format {version}); upgrade slgt2", path)


def _from_payload(raw: dict[str, Any], path: Path, with_training_state: bool) -> Checkpoint:
    """The typed checkpoint of a payload (the one place its fields are parsed); raises on damaged fields."""
    ck = Checkpoint(
        model_config=dict(raw["model"]["config"]),
        state_dict=dict(raw["model"]["state_dict"]),
        classes=ClassTable.from_list(raw["classes"], path),
        normalization=Normalization.from_dict(raw["normalization"]),
        temporal=TemporalRule.from_dict(raw["temporal"]),
        bands=list(raw["bands"]),
        units=str(raw["units"]),
        patch_size=int(raw["inference"]["patch_size"]),
        stride=int(raw["inference"]["stride"]),
        blend=_blend(raw["inference"].get("blend")),
        provenance=dict(raw.get("provenance") or {}),
        training_gsd_m=float(raw["training_gsd_m"]) if raw.get("training_gsd_m") is not None else None,
        training_state=raw.get("training_state") if with_training_state else None,
        source=path,
    )
    bad = [k for k, v in ck.state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad or not ck.state_dict:
        raise ValueError(f"weights missing or not tensors ({', '.join(map(str, bad[:3])) or 'none'})")
    if ck.patch_size < 1 or ck.stride < 1:
        raise ValueError(f"inference patch {ck.patch_size} / stride {ck.stride}")
    return ck
