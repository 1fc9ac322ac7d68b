"""`slgt2 evaluate` through the command line: outputs, and one-line errors with exit status 2."""

import csv
import json

import numpy as np
import pytest
from helpers import utm_grid, write_raster
from rasterio.windows import Window
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.geotiff import MapWriter

runner = CliRunner()
TABLE = ClassTable.from_list([{"value": 1110, "name": "winter wheat"}, {"value": 5, "name": "forest"},
                              {"value": 9, "name": "lake"}])


@pytest.fixture
def maps(tmp_path):
    grid = utm_grid(10, 10)
    truth = np.full((10, 10), 1110, np.uint16)
    truth[:, 5:] = 5
    truth[0] = 0  # ignored
    pred = truth.copy()
    pred[0] = 1110
    pred[9, :5] = 5  # 5 wheat pixels called forest
    with MapWriter.classes(tmp_path / "pred.tif", grid, TABLE) as w:
        w.write(Window(0, 0, 10, 10), pred)
    labels = write_raster(tmp_path / "labels.tif", truth, grid)
    return tmp_path / "pred.tif", labels


def _error_line(result):
    err = result.stderr if result.stderr else result.output
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in result.output
    return lines[0]


def test_evaluate_writes_everything(maps, tmp_path):
    pred, labels = maps
    out = tmp_path / "reports"
    result = runner.invoke(app, ["evaluate", str(pred), str(labels), "--json", str(out / "m.json"),
                                 "--csv", str(out / "m.csv"), "--plot", str(out / "cm.png")])
    assert result.exit_code == 0, result.output
    assert "winter wheat" in result.output and "overall accuracy" in result.output
    m = json.loads((out / "m.json").read_text())
    for key in ("overall_accuracy", "kappa", "miou", "mean_f1", "per_class", "confusion_matrix"):
        assert key in m
    assert m["pixels"] == 90 and m["overall_accuracy"] == pytest.approx(85 / 90)
    assert m["confusion_matrix"] == [[40, 5, 0], [0, 45, 0], [0, 0, 0]]
    assert m["absent_classes"] == [9]
    rows = list(csv.DictReader((out / "m.csv").open()))
    assert [r["name"] for r in rows] == ["winter wheat", "forest", "lake"]
    assert float(rows[0]["recall"]) == pytest.approx(40 / 45) and rows[2]["iou"] == ""
    assert (out / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if ".partial-" in p.name]


def test_evaluate_with_classes_file_and_majority(maps, tmp_path):
    pred, labels = maps
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps(TABLE.to_list()))
    result = runner.invoke(app, ["evaluate", str(pred), str(labels), "--classes", str(classes),
                                 "--resampling", "majority"])
    assert result.exit_code == 0, result.output
    assert "94.44 %" in result.output


def test_missing_prediction(maps, tmp_path):
    _, labels = maps
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.tif"), str(labels)])
    assert result.exit_code == 2
    assert "nope.tif" in _error_line(result)


def test_missing_labels(maps, tmp_path):
    pred, _ = maps
    result = runner.invoke(app, ["evaluate", str(pred), str(tmp_path / "none.tif")])
    assert result.exit_code == 2
    assert "not found" in _error_line(result)


def test_not_a_raster(maps, tmp_path):
    pred, _ = maps
    junk = tmp_path / "junk.tif"
    junk.write_text("this is not a GeoTIFF")
    for args in ([str(pred), str(junk)], [str(junk), str(pred), "--classes", str(tmp_path / "c.json")]):
        (tmp_path / "c.json").write_text(json.dumps(TABLE.to_list()))
        result = runner.invoke(app, ["evaluate", *args])
        assert result.exit_code == 2, result.output
        assert "not a readable raster" in _error_line(result)


def test_labels_that_do_not_overlap(maps, tmp_path):
    pred, _ = maps
    far = write_raster(tmp_path / "far.tif", np.full((10, 10), 5, np.uint16),
                       utm_grid(10, 10, origin=(600000.0, 5300000.0)))
    result = runner.invoke(app, ["evaluate", str(pred), str(far)])
    assert result.exit_code == 2
    assert "does not overlap" in _error_line(result)


def test_no_class_table_and_bad_resampling(tmp_path, maps):
    _, labels = maps
    plain = write_raster(tmp_path / "plain.tif", np.full((10, 10), 5, np.uint16), utm_grid(10, 10))
    result = runner.invoke(app, ["evaluate", str(plain), str(labels)])
    assert result.exit_code == 2
    assert "--classes" in _error_line(result)
    pred, _ = maps
    result = runner.invoke(app, ["evaluate", str(pred), str(labels), "--resampling", "bilinear"])
    assert result.exit_code == 2
    assert "resampling" in _error_line(result)


def test_unwritable_report_fails_before_scoring(maps, tmp_path):
    pred, labels = maps
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, ["evaluate", str(pred), str(labels), "--json", str(tmp_path / "afile" / "m.json")])
    assert result.exit_code == 2
    assert "cannot create" in _error_line(result)
