"""Label rasters aligned onto another grid (a stack's or a map's), read window by window.

A label raster may use another CRS, resolution or extent than the grid it is scored or trained on. It is
reprojected on the fly through a GDAL warped VRT (nearest, or majority when labels are finer than the
target), so only the requested window is ever read.

GDAL's majority (mode) resampling is ~30× slower on 16/32-bit data than on bytes (it counts values in a
table sized by the data type), so for majority alignment a label raster with at most 254 distinct values is
first seen through a VRT whose lookup table maps each value to its rank (a byte), warped as bytes, and mapped
back on read: the same pixels, ~30× faster (docs/inference.md, "Label alignment").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import check_integral_labels
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.stacks import RASTER_ERRORS, _reason, open_raster


class LabelResampling(str, Enum):
    """How labels on another grid are aligned (``evaluate --resampling``): nearest, or majority of finer labels."""

    NEAREST = "nearest"
    MAJORITY = "majority"


RESAMPLING = {LabelResampling.NEAREST.value: Resampling.nearest, LabelResampling.MAJORITY.value: Resampling.mode}
MAX_COMPACT_VALUES = 254
"""Majority alignment remaps to bytes when the labels have at most this many distinct values (255 = nodata)."""
COMPACT_NODATA = 255
SCAN_PIXELS = 1 << 22
"""Pixels read per step when listing a label raster's distinct values."""


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
        self._compact: np.ndarray | None = None
        self._source: rasterio.io.DatasetReader | None = None
        if same:
            self._reader = src
            return
        _check_overlap(src, grid, path)
        if resampling == "majority" and src.dtypes[0] != "uint8":
            self._compact = distinct_values(src, _footprint_window(src, grid))
        if self._compact is not None:
            self._source = rasterio.open(compact_vrt(src, path, self._compact))
            self._reader = WarpedVRT(self._source, crs=grid.crs, transform=grid.transform, width=grid.width,
                                     height=grid.height, resampling=Resampling.mode, src_nodata=COMPACT_NODATA,
                                     nodata=COMPACT_NODATA, init_dest_nodata=True)
            self._nodata = COMPACT_NODATA
        else:
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
        if self._compact is not None:
            valid = values != COMPACT_NODATA
            return np.where(valid, self._compact[np.minimum(values, len(self._compact) - 1)], 0), valid
        valid = np.ones(values.shape, dtype=bool)
        if self._nodata is not None:
            valid &= values != self._nodata
        if np.issubdtype(values.dtype, np.floating):
            valid &= np.isfinite(values)
            values = np.where(valid, values, 0)
            check_integral_labels(values, valid, self.path)
        return values.astype(np.int64), valid



def _footprint_window(src: rasterio.io.DatasetReader, grid: Grid, margin: int = 4) -> Window:
    """The part of ``src`` under ``grid`` (plus a margin of target pixels): all a warp onto ``grid`` can read."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    left, top = grid.transform @ (-margin, -margin)
    right, bottom = grid.transform @ (grid.width + margin, grid.height + margin)
    try:
        bounds = transform_bounds(grid.crs, src.crs, min(left, right), min(top, bottom), max(left, right),
                                  max(top, bottom), densify_pts=21)
        w = from_bounds(*bounds, transform=src.transform)
        col, row = math.floor(w.col_off), math.floor(w.row_off)
        window = Window(col, row, math.ceil(w.col_off + w.width) - col, math.ceil(w.row_off + w.height) - row)
        return window.intersection(Window(0, 0, src.width, src.height))
    except Exception:  # noqa: BLE001 - odd transforms or no intersection: scan it all
        return Window(0, 0, src.width, src.height)


def distinct_values(src: rasterio.io.DatasetReader, window: Window | None = None,
                    limit: int = MAX_COMPACT_VALUES) -> np.ndarray | None:
    """Sorted distinct values of an integer band within ``window`` (default: all of it), nodata excluded; None
    past ``limit`` values (or for float data). Read in bands of rows, whole blocks at a time."""
    dtype = np.dtype(src.dtypes[0])
    if not np.issubdtype(dtype, np.integer):
        return None
    window = window or Window(0, 0, src.width, src.height)
    c0, r0, width, height = (int(v) for v in (window.col_off, window.row_off, window.width, window.height))
    block_rows = src.block_shapes[0][0]
    rows = max(block_rows, SCAN_PIXELS // max(1, width) // block_rows * block_rows)
    seen: set[int] = set()
    for row in range(r0, r0 + height, rows):
        data = src.read(1, window=Window(c0, row, width, min(rows, r0 + height - row)))
        if dtype.itemsize <= 2:
            found = np.flatnonzero(np.bincount((data.astype(np.int64) - np.iinfo(dtype).min).ravel()))
            found = found + np.iinfo(dtype).min
        else:
            found = np.unique(data)
        seen.update(int(v) for v in found)
        if src.nodata is not None:
            seen.discard(int(src.nodata))
        if len(seen) > limit:
            return None
    return np.array(sorted(seen), dtype=np.int64)


def compact_vrt(src: rasterio.io.DatasetReader, path: Path, values: np.ndarray) -> str:
    """VRT XML showing band 1 of ``src`` as bytes: the rank of each of ``values``, nodata -> COMPACT_NODATA."""
    lut = ",".join(f"{v}:{i}" for i, v in enumerate(values.tolist())) if len(values) > 1 else \
        f"{int(values[0])}:0" if len(values) else "0:255"
    nodata = f"<NODATA>{src.nodata:.17g}</NODATA>" if src.nodata is not None else ""
    t = src.transform
    return (f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
            f"<SRS>{escape(src.crs.to_wkt())}</SRS>"
            f"<GeoTransform>{t.c:.17g},{t.a:.17g},{t.b:.17g},{t.f:.17g},{t.d:.17g},{t.e:.17g}</GeoTransform>"
            f'<VRTRasterBand dataType="Byte" band="1"><NoDataValue>{COMPACT_NODATA}</NoDataValue>'
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(Path(path).resolve()))}</SourceFilename>'
            f"<SourceBand>1</SourceBand>{nodata}<LUT>{lut}</LUT></ComplexSource></VRTRasterBand></VRTDataset>")


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
            if aligned._source is not None:
                aligned._source.close()
