"""Tiny georeferenced SAR stacks and native checkpoints built from an untrained `tiny` model, for predict tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
import torch

from models import create_model
from raster_helpers import utm_grid
from slgt2_cli.checkpoint.format import Checkpoint, save_checkpoint
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule

DATES = [dt.date(2021, 5, 1), dt.date(2021, 5, 13), dt.date(2021, 6, 6), dt.date(2021, 7, 12)]
TABLE = ClassTable.from_list([{"value": 1110, "name": "winter wheat"}, {"value": 2000, "name": "grassland"},
                              {"value": 3100, "name": "forest"}])


def sar_values(height: int, width: int, seed: int = 0, dates=DATES) -> np.ndarray:
    """(T, 2, h, w) float32 dB with some spatial structure (so a model output varies across the scene)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    field = np.sin(yy / 9.0) + np.cos(xx / 13.0)
    vv = -10 + 3 * field[None] + rng.normal(0, 1.0, (len(dates), height, width))
    vh = -17 + 2 * field[None] + rng.normal(0, 1.0, (len(dates), height, width))
    return np.stack([vv, vh], axis=1).astype(np.float32)


def write_stack(path: Path, values: np.ndarray, dates=DATES, per_date_dir: bool = False, nodata=float("nan"),
                origin=(500000.0, 5100000.0), **creation) -> Path:
    """A multi-band stack (bands ``VV_<date>, VH_<date>, ...``) or a directory of per-date files;
    ``creation``: more GeoTIFF creation options (e.g. tiled=True, blockxsize=32, blockysize=32)."""
    t, c, h, w = values.shape
    grid = utm_grid(w, h, origin=origin)
    profile = dict(driver="GTiff", width=w, height=h, dtype="float32", crs=grid.crs, transform=grid.transform,
                   nodata=nodata, **creation)
    if per_date_dir:
        path.mkdir(parents=True)
        for i, d in enumerate(dates):
            with rasterio.open(path / f"S1_{d:%Y%m%d}.tif", "w", count=c, **profile) as dst:
                dst.write(values[i])
                for b, pol in enumerate(("VV", "VH"), start=1):
                    dst.set_band_description(b, pol)
                dst.update_tags(UNITS="dB")
        return path
    with rasterio.open(path, "w", count=t * c, **profile) as dst:
        dst.write(values.reshape(t * c, h, w))
        for i, d in enumerate(dates):
            for j, pol in enumerate(("VV", "VH")):
                dst.set_band_description(1 + i * c + j, f"{pol}_{d.isoformat()}")
        dst.update_tags(UNITS="dB")
    return path


def make_checkpoint(path: Path, constant_class: int | None = None, seed: int = 0, patch: int = 64,
                    stride: int = 48, table: ClassTable = TABLE, dates=DATES) -> Path:
    """A native checkpoint of an untrained tiny model; ``constant_class`` makes it predict that class everywhere."""
    torch.manual_seed(seed)
    model = create_model("tiny", num_classes=len(table))
    if constant_class is not None:
        head = model.seg_head[0]
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[constant_class] = 20.0
    checkpoint = Checkpoint(
        model_config=model.config, state_dict=model.state_dict(), classes=table,
        normalization=Normalization((-10.0, -17.0), (3.0, 2.5)).to_dict(),
        temporal=TemporalRule.fit([dates], length=16).to_dict(), bands=["VV", "VH"], units="db",
        patch_size=patch, stride=stride,
    )
    save_checkpoint(checkpoint, path)
    return path
