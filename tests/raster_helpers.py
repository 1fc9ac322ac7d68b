"""Small georeferenced rasters for tests (real CRS, 10 m pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from slgt2_cli.io.grid import Grid

UTM33 = CRS.from_epsg(32633)
ORIGIN = (500000.0, 5100000.0)


def utm_grid(width: int, height: int, res: float = 10.0, origin: tuple[float, float] = ORIGIN) -> Grid:
    return Grid(UTM33, Affine(res, 0, origin[0], 0, -res, origin[1]), width, height)


def write_raster(path: Path, data: np.ndarray, grid: Grid, nodata=None, **tags) -> Path:
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(
        path, "w", driver="GTiff", width=grid.width, height=grid.height, count=data.shape[0], dtype=data.dtype,
        crs=grid.crs, transform=grid.transform, nodata=nodata,
    ) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(1, **tags)
    return path
