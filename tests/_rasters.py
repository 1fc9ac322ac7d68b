"""Tiny georeferenced rasters for tests (real CRS and transform)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

UTM33 = CRS.from_epsg(32633)
ORIGIN = (500000.0, 5100000.0)


def write_raster(path: Path, data: np.ndarray, *, crs: CRS = UTM33, transform=None, nodata=None,
                 descriptions: Sequence[str] | None = None, band_tags: Sequence[dict] | None = None,
                 tags: dict | None = None) -> Path:
    """Write (bands, h, w) ``data`` as a GeoTIFF (10 m UTM 33N by default)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    transform = transform or from_origin(*ORIGIN, 10.0, 10.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        for b, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(b, text)
        for b, t in enumerate(band_tags or [], start=1):
            dst.update_tags(b, **t)
        if tags:
            dst.update_tags(**tags)
    return path


def dates_from(start: dt.date, n: int, step: int = 12) -> list[dt.date]:
    return [start + dt.timedelta(days=step * i) for i in range(n)]


def write_multiband(path: Path, values: np.ndarray, dates: Sequence[dt.date], pols=("VV", "VH"), **kw) -> Path:
    """values (T, C, h, w) -> one date-major multi-band file with ``<POL>_<YYYY-MM-DD>`` descriptions."""
    t, c, h, w = values.shape
    names = [f"{p}_{d.isoformat()}" for d in dates for p in pols]
    return write_raster(path, values.reshape(t * c, h, w), descriptions=names, **kw)


def write_dataset(root: Path, scenes: dict[str, list[np.ndarray]], classes: list[dict], dates: Sequence[dt.date]
                  ) -> Path:
    """A dataset directory: ``scenes[split] = [(values (T,C,h,w), labels (h,w)), ...]``."""
    for split, items in scenes.items():
        for i, (values, labels) in enumerate(items):
            write_multiband(root / split / "images" / f"s{i}.tif", values, dates)
            write_raster(root / split / "labels" / f"s{i}.tif", labels, nodata=0)
    (root / "classes.json").write_text(json.dumps(classes))
    return root
