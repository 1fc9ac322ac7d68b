"""Label rasters on another resolution and CRS are aligned onto the stack grid; class values above 255."""

import numpy as np
import pytest
from helpers import ORIGIN, write_raster
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.labels import open_aligned_labels

GRID = Grid(CRS.from_epsg(32633), from_origin(*ORIGIN, 10.0, 10.0), 40, 30)
QUADRANTS = np.array([[1110, 2000], [3100, 5000]], dtype=np.uint16)
MID_X, MID_Y = ORIGIN[0] + 200.0, ORIGIN[1] - 150.0  # centre of the 40 x 30 px grid


def _quadrant(x, y):
    return QUADRANTS[(y < MID_Y).astype(int), (x >= MID_X).astype(int)]


def test_coarser_labels_same_crs_nearest(tmp_path):
    pattern = (np.arange(15)[:, None] * 100 + np.arange(20)[None, :] + 300).astype(np.uint16)  # > 255
    path = write_raster(tmp_path / "l20.tif", pattern, transform=from_origin(*ORIGIN, 20.0, 20.0), nodata=0)
    with open_aligned_labels(path, GRID) as labels:
        values, valid = labels.read()
    assert values.shape == (30, 40) and valid.all()
    np.testing.assert_array_equal(values, np.repeat(np.repeat(pattern, 2, 0), 2, 1).astype(np.int64))
    with open_aligned_labels(path, GRID) as labels:  # windowed reads agree with the whole
        part, _ = labels.read(Window(5, 7, 10, 6))
    np.testing.assert_array_equal(part, values[7:13, 5:15])


def test_labels_in_geographic_crs_at_finer_resolution(tmp_path):
    to_geo = Transformer.from_crs(32633, 4326, always_xy=True)
    to_utm = Transformer.from_crs(4326, 32633, always_xy=True)
    lon0, lat0 = to_geo.transform(ORIGIN[0] - 100, ORIGIN[1] + 100)
    lon1, lat1 = to_geo.transform(ORIGIN[0] + 500, ORIGIN[1] - 400)
    res = 0.00005  # about 4 x 5.5 m
    width, height = int((lon1 - lon0) / res) + 1, int((lat0 - lat1) / res) + 1
    lon = lon0 + (np.arange(width) + 0.5) * res
    lat = lat0 - (np.arange(height) + 0.5) * res
    x, y = to_utm.transform(*np.meshgrid(lon, lat))
    path = write_raster(tmp_path / "geo.tif", _quadrant(x, y), crs=CRS.from_epsg(4326),
                        transform=from_origin(lon0, lat0, res, res), nodata=0)
    with open_aligned_labels(path, GRID) as labels:
        values, valid = labels.read()
    col = ORIGIN[0] + (np.arange(40) + 0.5) * 10
    row = ORIGIN[1] - (np.arange(30) + 0.5) * 10
    expected = _quadrant(*np.meshgrid(col, row))
    away = (np.abs(col - MID_X)[None, :] > 15) & (np.abs(row - MID_Y)[:, None] > 15)  # off the boundaries
    assert valid.all()
    np.testing.assert_array_equal(values[away], expected[away])
    assert (values == expected).mean() > 0.95


def test_labels_outside_are_no_data_and_class_table_ignores(tmp_path):
    half = np.full((30, 20), 2000, dtype=np.uint16)
    half[0, 0] = 999  # not in the class table
    half[1, 1] = 0    # nodata
    path = write_raster(tmp_path / "half.tif", half, nodata=0)  # covers the left half of GRID only
    table = ClassTable.from_list([{"value": 1110}, {"value": 2000}, {"value": 65000}])
    with open_aligned_labels(path, GRID) as labels:
        values, valid = labels.read()
    y = table.encode(values, valid)
    assert (y[:, 20:] == IGNORE_INDEX).all() and y[0, 0] == IGNORE_INDEX and y[1, 1] == IGNORE_INDEX
    assert (y[2:, :20] == 1).all()
    np.testing.assert_array_equal(table.decode(np.array([0, 2])), [1110, 65000])


def test_labels_that_do_not_overlap(tmp_path):
    far = from_origin(ORIGIN[0] + 10000, ORIGIN[1], 10.0, 10.0)
    path = write_raster(tmp_path / "far.tif", np.ones((5, 5), np.uint16), transform=far)
    with pytest.raises(InputError, match="far.tif.*overlap"):
        with open_aligned_labels(path, GRID):
            pass
