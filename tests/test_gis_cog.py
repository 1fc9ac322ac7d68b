"""Issue 14: overviews made by GDAL's COG driver are the pixels `gdaladdo` gives on the staging file."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from gis_tools import cog_report
from helpers import TABLE, utm_grid
from rasterio.enums import Resampling
from rasterio.windows import Window

from slgt2_cli.io.geotiff import MapWriter


def _gdaladdo(path, data, grid, nodata, resampling):
    """The old way: a tiled GeoTIFF with overviews built by GDALBuildOverviews (rasterio's build_overviews)."""
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1, dtype=data.dtype,
                       crs=grid.crs, transform=grid.transform, nodata=nodata, tiled=True) as dst:
        dst.write(data, 1)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], resampling)
    return [rasterio.open(path, overview_level=i).read(1) for i in range(2)]


@pytest.mark.parametrize("product", ["classes", "confidence"])
def test_cog_driver_overviews_equal_gdaladdo(tmp_path, product):
    grid = utm_grid(1100, 700)
    rng = np.random.default_rng(5)
    fields = np.kron(rng.integers(-1, 3, (71, 111)), np.ones((10, 10), int))[:700, :1100]
    noisy = np.where(rng.random((700, 1100)) < 0.3, rng.integers(-1, 3, (700, 1100)), fields)  # many mode ties
    out = tmp_path / "m.tif"
    if product == "classes":
        with MapWriter.classes(out, grid, TABLE) as w:
            w.write_classes(Window(0, 0, 1100, 700), noisy)
        with rasterio.open(out) as src:
            data, nodata = src.read(1), src.nodata
        reference = _gdaladdo(tmp_path / "ref.tif", data, grid, nodata, Resampling.mode)
    else:
        data = rng.integers(0, 256, (700, 1100)).astype(np.uint8)
        with MapWriter.confidence(out, grid) as w:
            w.write(Window(0, 0, 1100, 700), data)
        reference = _gdaladdo(tmp_path / "ref.tif", data, grid, 0, Resampling.average)
    with rasterio.open(out) as src:
        assert src.overviews(1) == [2, 4]
    for level, expected in enumerate(reference):
        np.testing.assert_array_equal(rasterio.open(out, overview_level=level).read(1), expected)
    assert cog_report(out)["errors"] == []
