"""Scoring maps against label rasters: hand-computed metrics, labels on other grids, chunked reading."""

import numpy as np
import pytest
import rasterio
from affine import Affine
from helpers import utm_grid, write_raster
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.geotiff import MapWriter
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.labels import open_aligned_labels
from slgt2_cli.scoring.evaluator import EvaluateConfig, chunk_windows, evaluate_maps, score_map

TABLE = ClassTable.from_list([
    {"value": 10, "name": "crop"}, {"value": 20, "name": "forest"},
    {"value": 30, "name": "water"}, {"value": 40, "name": "urban"},
])
N = -1  # prediction nodata marker in the crafted arrays below

PRED = np.array([
    [10, 10, 10, 20, 20, 30],
    [10, 10, 20, 20, 20, 30],
    [10, 10, 10, 20, N, 30],
    [30, 10, 20, 20, 20, 20],
])
LABELS = np.array([
    [10, 10, 10, 20, 20, 0],  # 0: not in the class table -> ignored
    [10, 20, 20, 20, 20, 255],  # 255: the label raster's nodata
    [10, 10, 10, 20, 20, 20],
    [10, 10, 20, 20, 20, 20],
], dtype=np.uint8)


def write_map(path, values, grid, table=TABLE):
    """A classified map via MapWriter (embedded class table); N marks nodata."""
    with MapWriter.classes(path, grid, table) as w:
        w.write(Window(0, 0, grid.width, grid.height), np.where(values == N, w.nodata, values))
    return path


@pytest.fixture
def crafted(tmp_path):
    grid = utm_grid(6, 4)
    return write_map(tmp_path / "pred.tif", PRED, grid), write_raster(tmp_path / "labels.tif", LABELS, grid, nodata=255)


def test_crafted_metrics_by_hand(crafted, tmp_path):
    pred, labels = crafted
    result = evaluate_maps(EvaluateConfig(pred, labels, json_path=tmp_path / "m.json"))
    m = result.metrics
    # Counted by hand: 3 pixels left out (label 0, label nodata, prediction nodata), 21 scored.
    assert m["confusion_matrix"] == [[8, 0, 1, 0], [1, 10, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert m["pixels"] == 21
    assert m["overall_accuracy"] == pytest.approx(18 / 21)
    assert m["kappa"] == pytest.approx(177 / 240)  # p_e = (9*9 + 12*10) / 21^2
    crop, forest, water, urban = m["per_class"]
    assert (crop["precision"], crop["recall"], crop["f1"], crop["iou"]) == pytest.approx((8 / 9, 8 / 9, 8 / 9, 0.8))
    assert (forest["precision"], forest["recall"], forest["f1"], forest["iou"]) == pytest.approx(
        (1.0, 10 / 12, 20 / 22, 10 / 12))
    assert (forest["support"], forest["predicted"]) == (12, 10)
    assert water["present"] and water["support"] == 0 and water["predicted"] == 2 and water["iou"] == 0.0
    assert not urban["present"] and urban["iou"] is None and m["absent_classes"] == [40]
    assert m["miou"] == pytest.approx((0.8 + 10 / 12 + 0) / 3)
    assert m["mean_f1"] == pytest.approx((8 / 9 + 20 / 22 + 0) / 3)
    assert "forest" in result.text and "urban" in result.text


def test_chunked_reading_matches_whole(crafted):
    pred, labels = crafted
    whole, _ = score_map(pred, labels, TABLE)
    tiny, _ = score_map(pred, labels, TABLE, chunk_pixels=1)  # one pixel per window
    assert whole == tiny


@pytest.mark.parametrize("width,height,block,target", [(8192, 8192, (512, 512), 1 << 20), (1000, 37, (1, 1000), 5000),
                                                       (7, 5, (3, 2), 4), (100, 100, (512, 512), 1 << 20)])
def test_chunk_windows_tile_the_raster(width, height, block, target):
    seen = np.zeros((height, width), np.uint8)
    for w in chunk_windows(width, height, block, target):
        assert w.width * w.height <= max(target, block[0] * block[1])
        assert w.col_off % min(block[1], width) == 0 and w.row_off % min(block[0], height) == 0
        seen[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (seen == 1).all()


def test_labels_at_half_resolution(tmp_path):
    coarse = np.array([[10, 10, 20, 20], [10, 10, 20, 20], [30, 30, 20, 20], [30, 30, 0, 0]], dtype=np.uint8)
    label_path = write_raster(tmp_path / "labels20.tif", coarse, utm_grid(4, 4, res=20.0))
    grid = utm_grid(8, 8)
    with open_aligned_labels(label_path, grid, "nearest") as aligned:
        values, valid = aligned.read()
    np.testing.assert_array_equal(values, np.kron(coarse, np.ones((2, 2), np.int64)))
    assert valid.all()
    pred = np.kron(coarse, np.ones((2, 2), np.int64))
    pred[pred == 0] = 10
    pred[0, 0] = 20
    m = evaluate_maps(EvaluateConfig(write_map(tmp_path / "p.tif", pred, grid), label_path)).metrics
    # crop: 4 coarse px = 16 fine, one predicted forest; forest 6 coarse = 24; water 4 coarse = 16; 0 ignored.
    assert m["pixels"] == 56
    assert m["confusion_matrix"][0] == [15, 1, 0, 0] and m["confusion_matrix"][1] == [0, 24, 0, 0]
    assert m["overall_accuracy"] == pytest.approx(55 / 56)
    assert m["per_class"][1]["precision"] == pytest.approx(24 / 25)


def _pattern_per_pixel(rows, cols):
    """Class value of prediction pixel (row, col): 4x4 blocks of crop/forest/water."""
    return np.array([10, 20, 30])[((rows // 4) + 2 * (cols // 4)) % 3]


def _labels_in_crs(path, grid, crs, res):
    """A fine label raster in another CRS whose pixels carry the pattern value of the map pixel they fall in."""
    bounds = transform_bounds(grid.crs, crs, *rasterio.transform.array_bounds(grid.height, grid.width, grid.transform))
    left, bottom, right, top = bounds
    pad = 3 * res
    width, height = int((right - left + 2 * pad) / res), int((top - bottom + 2 * pad) / res)
    transform = Affine(res, 0, left - pad, 0, -res, top + pad)
    rows, cols = np.mgrid[0:height, 0:width]
    xs, ys = transform @ (cols + 0.5, rows + 0.5)
    x, y = Transformer.from_crs(crs, grid.crs, always_xy=True).transform(xs, ys)
    inv = ~grid.transform
    c, r = inv @ (x, y)
    c, r = np.floor(c).astype(int), np.floor(r).astype(int)
    inside = (r >= 0) & (r < grid.height) & (c >= 0) & (c < grid.width)
    values = np.where(inside, _pattern_per_pixel(r, c), 0).astype(np.uint8)
    write_raster(path, values, Grid(crs, transform, width, height), nodata=0)
    return path


@pytest.mark.parametrize("epsg,res,resampling", [(4326, 1e-5, "majority"), (4326, 1e-5, "nearest"),
                                                 (32634, 2.0, "nearest"), (32634, 2.0, "majority")])
def test_labels_in_another_crs(tmp_path, epsg, res, resampling):
    grid = utm_grid(24, 20, origin=(720000.0, 5100000.0))  # ~17.9°E: next to the UTM 34 boundary
    label_path = _labels_in_crs(tmp_path / "labels.tif", grid, CRS.from_epsg(epsg), res)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    expected = _pattern_per_pixel(rows, cols)
    with open_aligned_labels(label_path, grid, resampling) as aligned:
        values, valid = aligned.read(Window(0, 0, grid.width, grid.height))
    assert valid.all()
    np.testing.assert_array_equal(values, expected)
    pred = expected.copy()
    pred[:4, :4] = 30  # one block wrong: 16 crop pixels predicted as water
    m = evaluate_maps(EvaluateConfig(write_map(tmp_path / "p.tif", pred, grid), label_path,
                                     resampling=resampling)).metrics
    assert m["pixels"] == grid.width * grid.height
    assert m["overall_accuracy"] == pytest.approx(1 - 16 / 480)
    assert m["confusion_matrix"][0][2] == 16


def test_class_table_from_file_when_not_embedded(tmp_path):
    grid = utm_grid(6, 4)
    plain = write_raster(tmp_path / "plain.tif", np.where(PRED == N, 0, PRED).astype(np.uint8), grid, nodata=0)
    labels = write_raster(tmp_path / "labels.tif", LABELS, grid, nodata=255)
    with pytest.raises(InputError, match="no embedded class table"):
        evaluate_maps(EvaluateConfig(plain, labels))
    classes = tmp_path / "classes.json"
    classes.write_text('[{"value": 10, "name": "crop"}, {"value": 20}, {"value": 30}, {"value": 40}]')
    m = evaluate_maps(EvaluateConfig(plain, labels, classes=classes)).metrics
    assert m["pixels"] == 21 and m["per_class"][0]["name"] == "crop"


def test_nothing_to_score_and_foreign_values(tmp_path):
    grid = utm_grid(6, 4)
    pred = write_raster(tmp_path / "p.tif", np.full((4, 6), 7, np.uint8), grid)
    labels = write_raster(tmp_path / "l.tif", LABELS, grid, nodata=255)
    classes = tmp_path / "classes.json"
    classes.write_text('[{"value": 10}, {"value": 20}]')
    with pytest.raises(InputError, match="no pixel has both"):
        evaluate_maps(EvaluateConfig(pred, labels, classes=classes))
    mixed = np.where(PRED == N, 7, PRED).astype(np.uint8)
    cm, notes = score_map(write_raster(tmp_path / "m.tif", mixed, grid), labels, ClassTable.load(classes))
    assert any("outside the class table" in n for n in notes)
