"""Provenance of a map: how it was made, as GDAL dataset metadata on every output of `predict`.

Keys (all strings; documented in docs/inference.md, "Provenance"): ``TIFFTAG_SOFTWARE`` and ``TIFFTAG_DATETIME``
(the standard TIFF tags, shown by every TIFF reader) and ``SLGT2_*`` items, see :data:`KEYS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slgt2_cli import __version__

KEYS = (
    "SLGT2_SOFTWARE", "SLGT2_VERSION", "SLGT2_CREATED", "SLGT2_PRODUCT", "SLGT2_STACK", "SLGT2_CHECKPOINT",
    "SLGT2_CHECKPOINT_SHA256", "SLGT2_MODEL_PRESET", "SLGT2_CLASSES", "SLGT2_DATES", "SLGT2_DATES_USED",
    "SLGT2_TEMPORAL_RULE", "SLGT2_TILE", "SLGT2_STRIDE", "SLGT2_BLEND", "SLGT2_TTA", "SLGT2_UNITS",
    "SLGT2_TRAINING_GSD_M",
)
"""Every provenance key written by :meth:`MapProvenance.tags` (the three outputs differ only in SLGT2_PRODUCT)."""

PRODUCTS = ("classes", "confidence", "probabilities")


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class MapProvenance:
    """What a predicted map records about its making."""

    checkpoint: Path
    checkpoint_sha256: str
    model_preset: str
    classes: list[dict[str, Any]]
    stack: Path
    dates: Sequence[dt.date] | None
    dates_used: Sequence[dt.date] | None
    temporal_rule: dict[str, Any]
    tile: int
    stride: int
    blend: str
    tta: bool
    units: str
    training_gsd_m: float | None = None
    created: str = ""

    def tags(self, product: str) -> dict[str, str]:
        """GDAL metadata items for one output (``product``: classes, confidence or probabilities)."""
        if product not in PRODUCTS:
            raise ValueError(f"unknown product {product!r}")
        created = self.created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        stamp = dt.datetime.fromisoformat(created)
        return {
            "TIFFTAG_SOFTWARE": f"slgt2 {__version__}",
            "TIFFTAG_DATETIME": stamp.strftime("%Y:%m:%d %H:%M:%S"),
            "SLGT2_SOFTWARE": "slgt2",
            "SLGT2_VERSION": __version__,
            "SLGT2_CREATED": created,
            "SLGT2_PRODUCT": product,
            "SLGT2_STACK": self.stack.name,
            "SLGT2_CHECKPOINT": self.checkpoint.name,
            "SLGT2_CHECKPOINT_SHA256": self.checkpoint_sha256,
            "SLGT2_MODEL_PRESET": self.model_preset,
            "SLGT2_CLASSES": json.dumps(self.classes),
            "SLGT2_DATES": ",".join(d.isoformat() for d in self.dates or ()),
            "SLGT2_DATES_USED": ",".join(d.isoformat() for d in self.dates_used or ()),
            "SLGT2_TEMPORAL_RULE": json.dumps(self.temporal_rule),
            "SLGT2_TILE": str(self.tile),
            "SLGT2_STRIDE": str(self.stride),
            "SLGT2_BLEND": self.blend,
            "SLGT2_TTA": "yes" if self.tta else "no",
            "SLGT2_UNITS": self.units,
            "SLGT2_TRAINING_GSD_M": "unknown" if self.training_gsd_m is None else f"{self.training_gsd_m:g}",
        }


def model_preset(model_config: dict[str, Any], provenance: dict[str, Any]) -> str:
    """The preset a checkpoint's model was built from (training records it), else 'custom' or 'reference'."""
    if provenance.get("preset"):
        return str(provenance["preset"])
    if provenance.get("kind") == "converted-reference":
        return "reference"
    from models import PRESETS, preset

    for name in PRESETS:
        try:
            if all(json.dumps(model_config.get(k)) == json.dumps(v) for k, v in preset(name).items()
                   if k not in ("num_classes", "in_chans")):
                return name
        except (KeyError, TypeError):
            continue
    return "custom"


def used_dates(rule: Any, dates: Sequence[dt.date] | None) -> list[dt.date] | None:
    """The stack dates the temporal rule feeds to the model (inside the season; the centre ones when cropped)."""
    if not dates:
        return None
    if rule.mode == "pad":
        lo = max(0, -((rule.length - len(dates)) // 2))  # as temporal.pad_or_crop
        return list(dates[lo: lo + rule.length])
    if rule.mode == "order":
        return list(dates)
    return [d for d, p in zip(dates, rule.period_of(dates)) if p >= 0]
