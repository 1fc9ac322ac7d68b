"""Issue 14: majority alignment of 16/32-bit labels through byte ranks gives the same pixels as GDAL's 16-bit mode."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rasterio
from affine import Affine
from helpers import UTM33, utm_grid
from rasterio.crs import CRS
from rasterio.windows import Window

from slgt2_cli.io import labels as labels_module
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.labels import open_aligned_labels

VALUES16 = np.array([1110, 1120, 2000, 3100, 3200, 4000, 5000, 6000])


def _labels(path, values, dtype, nodata, n=400, res=2.5, field=8, seed=0):
    """Blocky fields (``field`` px) of ``values`` with some nodata, at ``res`` m."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, len(values), (n // field + 1, n // field + 1))
    data = np.asarray(values)[np.kron(base, np.ones((field, field), int))[:n, :n]]
    data = np.where(rng.random((n, n)) < 0.05, nodata if nodata is not None else values[0], data).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype=dtype, crs=UTM33,
                       transform=Affine(res, 0, 500000, 0, -res, 5100000), nodata=nodata, tiled=True) as dst:
        dst.write(data, 1)
    return path


def _align(path, grid, compact: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not compact:
            m.setattr(labels_module, "distinct_values", lambda src, window=None: None)
        with open_aligned_labels(path, grid, "majority") as aligned:
            used = aligned._compact is not None
            values, valid = aligned.read(Window(0, 0, grid.width, grid.height))
            part = aligned.read(Window(7, 5, 30, 20))
    assert used == compact
    return values, valid, part


TARGETS = {
    "coarser utm": utm_grid(103, 97, res=10.0, origin=(500001.3, 5099998.1)),
    "other crs": Grid(CRS.from_epsg(3035), Affine(10, 0, 4_763_000, 0, -10, 2_560_000), 60, 60),
    "beyond the labels": utm_grid(120, 120, res=10.0, origin=(499700.0, 5100200.0)),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("values", "dtype", "nodata"), [
    (VALUES16, "uint16", 0), (VALUES16, "uint16", None), (np.array([-7, 0, 3, 70000, -40000]), "int32", -9999),
])
def test_compact_majority_equals_gdal_mode_on_the_raw_values(tmp_path, monkeypatch, target, values, dtype, nodata):
    path = _labels(tmp_path / "l.tif", values, dtype, nodata)
    grid = TARGETS[target]
    if target == "other crs":  # make the target overlap the labels: their footprint in EPSG:3035
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds("EPSG:32633", "EPSG:3035", 500000, 5099000, 501000, 5100000)
        grid = Grid(grid.crs, Affine(10, 0, left, 0, -10, top), int((right - left) // 10), int((top - bottom) // 10))
    fast = _align(path, grid, True, monkeypatch)
    slow = _align(path, grid, False, monkeypatch)
    np.testing.assert_array_equal(fast[1], slow[1])  # the same pixels are labelled...
    np.testing.assert_array_equal(fast[0][fast[1]], slow[0][slow[1]])  # ...with the same values
    np.testing.assert_array_equal(fast[2][0][fast[2][1]], slow[2][0][slow[2][1]])
    assert fast[1].any() and set(np.unique(fast[0][fast[1]])) <= set(values.tolist())


def test_more_than_254_values_fall_back_to_the_raw_warp(tmp_path, monkeypatch):
    path = _labels(tmp_path / "l.tif", np.arange(1000, 1300), "uint16", 0, field=4)
    with open_aligned_labels(path, TARGETS["coarser utm"], "majority") as aligned:
        assert aligned._compact is None
        values, valid = aligned.read()
    assert valid.any() and values[valid].min() >= 1000


def test_only_the_labels_under_the_grid_are_scanned(tmp_path):
    """A national label raster is not read whole: values far from the scene do not count (nor cost)."""
    path = _labels(tmp_path / "l.tif", VALUES16, "uint16", 0)
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full((100, 100), 9999, np.uint16), 1, window=Window(300, 300, 100, 100))
    small = utm_grid(20, 20, res=10.0, origin=(500000.0, 5100000.0))  # the top-left 80x80 label pixels
    with open_aligned_labels(path, small, "majority") as aligned:
        assert aligned._compact is not None and 9999 not in aligned._compact.tolist()
    with open_aligned_labels(path, TARGETS["coarser utm"], "majority") as aligned:
        assert 9999 in aligned._compact.tolist()


def test_uint8_labels_and_nearest_are_warped_as_they_are(tmp_path):
    path8 = _labels(tmp_path / "l8.tif", np.arange(1, 9), "uint8", 0)
    path16 = _labels(tmp_path / "l16.tif", VALUES16, "uint16", 0)
    with open_aligned_labels(path8, TARGETS["coarser utm"], "majority") as a8, \
            open_aligned_labels(path16, TARGETS["coarser utm"], "nearest") as a16:
        assert a8._compact is None and a16._compact is None


def test_compact_majority_is_much_faster(tmp_path, monkeypatch):
    """1600² uint16 labels at 2.5 m onto 10 m: GDAL's 16-bit mode is ~15-30× slower than the byte-rank warp."""
    path = _labels(tmp_path / "l.tif", VALUES16, "uint16", 0, n=1600, field=40)
    grid = utm_grid(403, 403, res=10.0, origin=(500001.3, 5099998.1))
    timings = {}
    for compact in (True, False):
        start = time.perf_counter()
        _align(path, grid, compact, monkeypatch)
        timings[compact] = time.perf_counter() - start
    assert timings[True] * 4 < timings[False], timings
