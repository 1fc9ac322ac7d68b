"""Label rasters aligned onto another grid (a stack's or a map's), read window by window.

A label raster may use another CRS, resolution or extent than the grid it is scored or trained on. It is
reprojected on the fly through a GDAL warped VRT (nearest, or majority when labels are finer than the
target), so only the requested window is ever read.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import check_integral_labels
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.stacks import RASTER_ERRORS, _reason, open_raster

RESAMPLING = {"nearest": Resampling.nearest, "majority": Resampling.mode}


class AlignedLabels:
    """A label raster seen on a target grid: ``read(window)`` returns (values int64, valid bool)."""

    def __init__(self, src: rasterio.io.DatasetReader, path: Path, grid: Grid, resampling: str):
        self.path, self.grid = path, grid
        self._nodata = src.nodata
        same = Grid.of(src).same_as(grid)
        if not same and (src.crs is None or grid.crs is None):
            raise InputError(f"label raster cannot be aligned: its grid differs from the image's "
                             f"({Grid.of(src).difference(grid)}) and {'it' if src.crs is None else 'the image'} "
                             f"has no CRS to reproject with", path)
        if same:
            self._reader = src
        else:
            _check_overlap(src, grid, path)
            self._reader = WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=RESAMPLING[resampling],
                src_nodata=src.nodata,
                nodata=src.nodata if src.nodata is not None else _fill_value(src.dtypes[0]),
                init_dest_nodata=True,
            )
            self._nodata = self._reader.nodata

    def read(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        try:
            values = self._reader.read(1, window=window, masked=False)
        except RASTER_ERRORS as exc:
            raise InputError(f"cannot read labels: damaged or truncated raster ({_reason(exc)})", self.path) from None
        valid = np.ones(values.shape, dtype=bool)
        if self._nodata is not None:
            valid &= values != self._nodata
        if np.issubdtype(values.dtype, np.floating):
            valid &= np.isfinite(values)
            values = np.where(valid, values, 0)
            check_integral_labels(values, valid, self.path)
        return values.astype(np.int64), valid


def _fill_value(dtype: str) -> float:
    """A nodata value for warped areas outside the label raster when the file declares none."""
    if np.issubdtype(np.dtype(dtype), np.floating):
        return float("nan")
    info = np.iinfo(np.dtype(dtype))
    return info.max if info.min == 0 else info.min


def _check_overlap(src: rasterio.io.DatasetReader, grid: Grid, path: Path) -> None:
    from rasterio.warp import transform_bounds

    left, top = grid.transform @ (0, 0)
    right, bottom = grid.transform @ (grid.width, grid.height)
    gb = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    try:
        lb = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    except Exception as exc:  # noqa: BLE001 - pyproj/GDAL raise many kinds
        raise InputError(f"cannot transform label bounds to {grid.crs} ({exc})", path) from None
    if lb[0] >= gb[2] or lb[2] <= gb[0] or lb[1] >= gb[3] or lb[3] <= gb[1]:
        raise InputError(f"label raster does not overlap the image ({grid.describe()})", path)


@contextmanager
def open_aligned_labels(path: str | Path, grid: Grid, resampling: str = "nearest") -> Iterator[AlignedLabels]:
    """Open a single-band integer label raster as seen on ``grid``."""
    path = Path(path)
    if resampling not in RESAMPLING:
        raise InputError(f"unknown resampling {resampling!r}; use one of {sorted(RESAMPLING)}")
    src = open_raster(path, "label raster not found")
    with src:
        if src.count != 1:
            raise InputError(f"a label raster must have one band, this one has {src.count}", path)
        try:
            aligned = AlignedLabels(src, path, grid, resampling)
        except RASTER_ERRORS as exc:
            raise InputError(f"damaged or truncated raster ({_reason(exc)})", path) from None
        try:
            yield aligned
        finally:
            if aligned._reader is not src:
                aligned._reader.close()
