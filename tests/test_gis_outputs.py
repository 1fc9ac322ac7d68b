"""Issue 14: provenance on every output, the STAC item, areas (planar and geodesic), evaluate's areas, and the
pixel-size check against the training GSD."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from gis_tools import cog_report
from helpers import DATES, TABLE, make_checkpoint, sar_values, utm_grid, write_raster, write_stack
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.windows import Window
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint, save_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.pixelsize import ground_sampling_distance, training_gsd
from slgt2_cli.io.provenance import KEYS
from slgt2_cli.io.stac import validate_item
from slgt2_cli.scoring.areas import AreaMethod, AreaTally, PixelAreas

runner = CliRunner()
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def run(tiny_checkpoint, tmp_path_factory) -> Path:
    """predict with every GIS output: confidence, probabilities, areas CSV, STAC item."""
    root = tmp_path_factory.mktemp("run")
    values = sar_values(64, 80)
    values[:, :, :8, :] = np.nan
    stack = write_stack(root / "scene.tif", values)
    out = root / "out"
    result = runner.invoke(app, ["predict", "-q", "--device", "cpu", str(tiny_checkpoint), str(stack), str(out / "map.tif"),
                                 "--confidence", str(out / "conf.tif"), "--probabilities", str(out / "prob.tif"),
                                 "--areas", str(out / "areas.csv"), "--stac", "--tile", "64", "--stride", "48"])
    assert result.exit_code == 0, result.output
    return out


def test_provenance_on_all_three_outputs(run, tiny_checkpoint):
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    for name, product in (("map.tif", "classes"), ("conf.tif", "confidence"), ("prob.tif", "probabilities")):
        with rasterio.open(run / name) as src:
            tags = src.tags()
        assert set(KEYS) <= set(tags), set(KEYS) - set(tags)
        assert tags["SLGT2_PRODUCT"] == product and tags["TIFFTAG_SOFTWARE"].startswith("slgt2 ")
        assert tags["SLGT2_CHECKPOINT"] == "tiny.pt" and tags["SLGT2_CHECKPOINT_SHA256"] == sha
        assert tags["SLGT2_MODEL_PRESET"] == "tiny" and tags["SLGT2_STACK"] == "scene.tif"
        assert json.loads(tags["SLGT2_CLASSES"]) == TABLE.to_list()
        assert tags["SLGT2_DATES"] == ",".join(d.isoformat() for d in DATES)
        assert json.loads(tags["SLGT2_TEMPORAL_RULE"])["mode"] == "composite"
        assert (tags["SLGT2_TILE"], tags["SLGT2_STRIDE"], tags["SLGT2_BLEND"]) == ("64", "48", "cosine")
        assert tags["SLGT2_UNITS"] == "db -> db" and tags["SLGT2_TRAINING_GSD_M"] == "unknown"
        assert dt.datetime.fromisoformat(tags["SLGT2_CREATED"]).tzinfo is not None
        assert cog_report(run / name)["errors"] == []


def test_stac_item_has_the_documented_structure(run):
    item = json.loads((run / "map.stac.json").read_text())
    assert validate_item(item) == []
    props, assets = item["properties"], item["assets"]
    assert props["start_datetime"] == "2021-05-01T00:00:00Z" and props["end_datetime"] == "2021-07-12T23:59:59Z"
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [64, 80]
    assert item["stac_version"] == "1.1.0" and "projection/v2.0.0" in " ".join(item["stac_extensions"])
    assert props["proj:transform"][:6] == [10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0]
    assert props["slgt2:checkpoint"] == "tiny.pt"
    classes = assets["classes"]["classification:classes"]
    assert [(c["value"], c["title"], "#" + c["color_hint"].lower()) for c in classes] == \
        [(c.value, c.name, c.color) for c in TABLE.classes]
    assert classes[0]["name"] == "winter_wheat"
    assert assets["classes"]["raster:bands"][0]["data_type"] == "uint16"
    assert set(assets) == {"classes", "confidence", "probabilities", "aux", "style", "areas"}
    for asset in assets.values():
        assert (run / asset["href"]).is_file(), asset["href"]
    lon0, lat0, lon1, lat1 = item["bbox"]
    assert 14.99 < lon0 < lon1 < 15.02 and 46.04 < lat0 < lat1 < 46.06


def test_areas_and_stac_refused_before_compute(tiny_checkpoint, tmp_path):
    stack = write_stack(tmp_path / "s.tif", sar_values(32, 32))
    base = ["predict", "-q", "--device", "cpu", str(tiny_checkpoint), str(stack), str(tmp_path / "m.tif")]
    result = runner.invoke(app, [*base, "--areas", str(tmp_path / "m.qml")])
    assert result.exit_code == 2 and "--areas must name a file of its own" in result.output
    (tmp_path / "m.stac.json").write_text("{}")
    result = runner.invoke(app, [*base, "--stac"])
    assert result.exit_code == 2 and "m.stac.json: already exists" in result.output
    assert not (tmp_path / "m.tif").exists()


def test_stac_validation_finds_problems(run):
    item = json.loads((run / "map.stac.json").read_text())
    del item["properties"]["proj:code"]
    item["assets"]["classes"]["classification:classes"][0]["color_hint"] = "#e6194b"
    problems = validate_item(item)
    assert any("proj:code" in p for p in problems) and any("classification:classes" in p for p in problems)


def test_areas_on_a_projected_map_are_pixels_times_pixel_area(run):
    rows = list(csv.DictReader((run / "areas.csv").open()))
    with rasterio.open(run / "map.tif") as src:
        data = src.read(1)
    assert [int(r["value"]) for r in rows] == TABLE.values.tolist()
    for r in rows:
        assert r["method"] == "planar"
        assert int(r["pixels"]) == int((data == int(r["value"])).sum())
        assert float(r["hectares"]) == pytest.approx(int(r["pixels"]) * 100 / 10_000)
    assert sum(int(r["pixels"]) for r in rows) == 56 * 80  # the 8 rows without data are not counted


def _geodesic_pixel_areas(grid: Grid, to_lonlat) -> np.ndarray:
    """pyproj's geodesic area of every pixel, one polygon per pixel."""
    out = np.empty((grid.height, grid.width))
    for r in range(grid.height):
        for c in range(grid.width):
            xs, ys = zip(*(grid.transform @ p for p in ((c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1))))
            lon, lat = to_lonlat(xs, ys)
            out[r, c] = abs(GEOD.polygon_area_perimeter(lon, lat)[0])
    return out


def test_areas_on_an_epsg4326_map_are_geodesic(tiny_checkpoint, tmp_path):
    values = sar_values(40, 48, seed=3)
    stack = tmp_path / "geo.tif"
    transform = Affine(0.0002, 0, 15.0, 0, -0.0002, 60.0)
    with rasterio.open(stack, "w", driver="GTiff", width=48, height=40, count=8, dtype="float32",
                       crs=CRS.from_epsg(4326), transform=transform, nodata=float("nan")) as dst:
        dst.write(values.reshape(8, 40, 48))
        for i, d in enumerate(DATES):
            dst.set_band_description(2 * i + 1, f"VV_{d}")
            dst.set_band_description(2 * i + 2, f"VH_{d}")
    out = tmp_path / "map.tif"
    result = runner.invoke(app, ["predict", "-q", "--device", "cpu", str(tiny_checkpoint), str(stack), str(out),
                                 "--areas", str(tmp_path / "areas.json")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "areas.json").read_text())
    assert doc["method"] == "geodesic" and doc["crs"] == "EPSG:4326"
    with rasterio.open(out) as src:
        data, grid = src.read(1), Grid.of(src)
    truth = _geodesic_pixel_areas(grid, lambda x, y: (x, y))
    for row in doc["classes"]:
        expected = truth[data == row["value"]].sum() / 10_000
        assert row["hectares"] == pytest.approx(expected, rel=0.005, abs=1e-9)
    assert doc["total"]["hectares"] == pytest.approx(truth.sum() / 10_000, rel=0.005)


def test_web_mercator_is_not_equal_area_so_its_areas_are_geodesic():
    grid = Grid(CRS.from_epsg(3857), Affine(30, 0, 1_669_792, 0, -30, 8_399_737), 50, 40)  # ~60° N
    areas = PixelAreas(grid)
    assert areas.method is AreaMethod.GEODESIC
    tally = AreaTally(grid, 2)
    classes = (np.arange(50)[None, :] >= 20).astype(int).repeat(40, 0)
    tally.add(Window(0, 0, 50, 40), classes)
    to_lonlat = Transformer.from_crs(3857, 4326, always_xy=True).transform
    truth = _geodesic_pixel_areas(grid, to_lonlat)
    assert tally.m2[0] == pytest.approx(truth[:, :20].sum(), rel=0.005)
    assert tally.m2[1] == pytest.approx(truth[:, 20:].sum(), rel=0.005)
    assert tally.m2.sum() < 0.3 * 30 * 30 * 2000  # planar would be 4× too large at 60° N
    assert PixelAreas(utm_grid(50, 40)).method is AreaMethod.PLANAR


def test_evaluate_reports_reference_and_mapped_area(run, tmp_path):
    with rasterio.open(run / "map.tif") as src:
        data, grid = src.read(1), Grid.of(src)
    labels = np.where(data == 65535, 0, 1110).astype(np.uint16)
    write_raster(tmp_path / "labels.tif", labels, grid, nodata=0)
    result = runner.invoke(app, ["evaluate", str(run / "map.tif"), str(tmp_path / "labels.tif"),
                                 "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "Area per class (planar" in result.output
    areas = json.loads((tmp_path / "m.json").read_text())["areas"]
    scored = (labels > 0).sum()
    by_value = {r["value"]: r for r in areas["per_class"]}
    assert by_value[1110]["reference_hectares"] == pytest.approx(scored * 0.01)
    for value, row in by_value.items():
        assert row["mapped_pixels"] == int((data == value).sum())
        assert row["difference_hectares"] == pytest.approx(row["mapped_hectares"] - row["reference_hectares"])


def test_pixel_size_warns_and_strict_refuses(tmp_path):
    ck_path = make_checkpoint(tmp_path / "ck.pt")
    ck = load_checkpoint(ck_path)
    assert ck.training_gsd_m is None  # written without one: unknown, as old checkpoints
    ck.training_gsd_m = 10.0
    save_checkpoint(ck, ck_path)
    assert load_checkpoint(ck_path).training_gsd_m == 10.0
    coarse = tmp_path / "coarse.tif"
    write_stack(coarse, sar_values(32, 32))
    with rasterio.open(coarse, "r+") as dst:
        dst.transform = Affine(30, 0, 500000, 0, -30, 5100000)
    args = ["predict", "-q", "--device", "cpu", str(ck_path), str(coarse), str(tmp_path / "m.tif")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "pixel size is 30 m but the model was trained on 10 m" in result.output
    result = runner.invoke(app, [*args, "--strict", "--overwrite"])
    assert result.exit_code == 2 and "--strict" in result.output and "Traceback" not in result.output
    fine = write_stack(tmp_path / "fine.tif", sar_values(32, 32))
    result = runner.invoke(app, ["predict", "-q", "--device", "cpu", "--strict", str(ck_path), str(fine),
                                 str(tmp_path / "f.tif")])
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_ground_sampling_distance_of_geographic_and_projected_grids():
    assert ground_sampling_distance(utm_grid(10, 10, res=20.0)) == pytest.approx(20.0)
    geo = Grid(CRS.from_epsg(4326), Affine(0.0001, 0, 15.0, 0, -0.0001, 46.0), 100, 100)
    dx = GEOD.inv(15.0, 45.995, 15.0001, 45.995)[2]
    dy = GEOD.inv(15.0, 45.995, 15.0, 45.9949)[2]
    assert ground_sampling_distance(geo) == pytest.approx(np.sqrt(dx * dy), rel=1e-3)
    assert ground_sampling_distance(Grid(None, Affine.identity(), 5, 5)) is None
    assert training_gsd([utm_grid(4, 4, res=10.0), utm_grid(4, 4, res=10.0), utm_grid(4, 4, res=20.0)]) == 10.0


def test_training_records_the_ground_sampling_distance(tmp_path):
    from slgt2_cli.synth.scenes import synthesize
    from slgt2_cli.train.config import resolve_config
    from slgt2_cli.train.setup import prepare_run

    synthesize(tmp_path / "ds", size=32, dates=4, scenes=3, seed=1, scene_size=32)
    config = resolve_config(tmp_path / "ds", tmp_path / "run", preset="tiny", patch_size=32, norm_windows=1)
    assert prepare_run(config).gsd == 10.0
