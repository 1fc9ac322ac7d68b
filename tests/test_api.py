"""The Python API (`import slgt2_cli as slgt2`): one engine with `slgt2 predict`, for stacks, in-memory cubes,
dask cubes and openEO/netCDF Datasets; clear errors for cubes it cannot use; write_map and evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from helpers import DATES, TABLE, make_checkpoint, sar_values, utm_grid, write_raster, write_stack
from typer.testing import CliRunner

import slgt2_cli as slgt2
from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.io.cube import pixel_centres

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
H, W = 80, 100


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A stack with a no-data hole, its checkpoint, and what `slgt2 predict` wrote for it."""
    d = tmp_path_factory.mktemp("api")
    values = sar_values(H, W, seed=3)
    values[:, :, 5:15, 10:30] = np.nan
    values[:2, :, 40:50, 40:50] = np.nan
    ck = make_checkpoint(d / "ck.pt", seed=1)
    tif = write_stack(d / "s.tif", values)
    result = runner.invoke(app, ["predict", str(ck), str(tif), str(d / "map.tif"), "--device", "cpu", "--quiet",
                                 "--confidence", str(d / "conf.tif"), "--probabilities", str(d / "prob.tif")])
    assert result.exit_code == 0, result.output
    with rasterio.open(d / "map.tif") as src:
        classes = src.read(1)
    return {"dir": d, "values": values, "ck": ck, "tif": tif, "classes": classes,
            "model": slgt2.load_model(ck, device="cpu")}


def _memory_cube(values: np.ndarray, dims=("time", "band", "y", "x")) -> xr.DataArray:
    x, y = pixel_centres(utm_grid(values.shape[-1], values.shape[-2]))
    cube = xr.DataArray(values, dims=dims, coords={dims[0]: np.array(DATES, "datetime64[ns]"),
                                                   dims[1]: ["VV", "VH"], "y": y, "x": x})
    return cube.rio.write_crs("EPSG:32633")


def _same_as_cli(result: xr.Dataset, scene, tmp_path: Path) -> None:
    """Classes equal the CLI's map pixel for pixel; written with write_map, all three files equal the CLI's."""
    assert result["classes"].dtype == scene["classes"].dtype
    np.testing.assert_array_equal(result["classes"].values, scene["classes"])
    slgt2.write_map(result, tmp_path / "m.tif", confidence=tmp_path / "c.tif", probabilities=tmp_path / "p.tif")
    for ours, theirs in (("m.tif", "map.tif"), ("c.tif", "conf.tif"), ("p.tif", "prob.tif")):
        with rasterio.open(tmp_path / ours) as a, rasterio.open(scene["dir"] / theirs) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=ours)
            assert a.profile == b.profile and a.tags(1) == b.tags(1)
            assert a.colorinterp == b.colorinterp


def test_import_loads_neither_torch_nor_xarray():
    code = ("import sys, slgt2_cli as s; heavy = [m for m in ('torch', 'xarray', 'rioxarray') if m in sys.modules];"
            "assert not heavy, heavy; assert callable(s.predict) and 'xarray' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    cli = ("import sys, slgt2_cli.cli.app; heavy = [m for m in ('torch', 'xarray', 'dask') if m in sys.modules];"
           "assert not heavy, heavy")  # `slgt2 --help` stays fast
    subprocess.run([sys.executable, "-c", cli], check=True, cwd=REPO)


def test_open_stack_is_lazy_for_both_layouts(scene, tmp_path):
    tif_cube = slgt2.open_stack(scene["tif"])
    dir_cube = slgt2.open_stack(write_stack(tmp_path / "dir", scene["values"], per_date_dir=True))
    for cube in (tif_cube, dir_cube):
        assert cube.dims == ("time", "band", "y", "x") and cube.shape == (4, 2, H, W)
        assert not isinstance(cube.variable._data, np.ndarray)  # nothing read yet
        assert [str(t)[:10] for t in cube["time"].values.astype("datetime64[D]")] == [d.isoformat() for d in DATES]
        assert list(cube["band"].values) == ["VV", "VH"] and cube.attrs["units"] == "db"
        assert cube.rio.crs.to_epsg() == 32633 and cube.rio.transform() == utm_grid(W, H).transform
        np.testing.assert_array_equal(cube.isel(time=2, y=slice(30, 60), x=slice(5, 9)).values,
                                      scene["values"][2, :, 30:60, 5:9])
        np.testing.assert_array_equal(cube[1, 0, ::7, ::-9].values, scene["values"][1, 0, ::7, ::-9])


def test_predict_on_a_stack_equals_the_cli(scene, tmp_path):
    result = slgt2.predict(scene["model"], slgt2.open_stack(scene["tif"]), probabilities=True)
    _same_as_cli(result, scene, tmp_path)
    assert result.rio.crs.to_epsg() == 32633 and result.attrs["tile"] == 64 and result.attrs["stride"] == 48
    table = json.loads(result["classes"].attrs["class_table"])
    assert [c["value"] for c in table] == [1110, 2000, 3100]
    assert result["probabilities"].dims == ("class", "y", "x")
    assert np.isnan(result["confidence"].values[5:15, 10:30]).all()


def test_predict_on_an_in_memory_cube_equals_the_cli(scene, tmp_path):
    shuffled = _memory_cube(scene["values"]).isel(time=[2, 0, 3, 1], band=[1, 0])  # dates and bands by coordinate
    _same_as_cli(slgt2.predict(scene["model"], shuffled, probabilities=True), scene, tmp_path)


def test_predict_on_a_dask_cube_equals_the_cli(scene, tmp_path):
    pytest.importorskip("dask")
    cube = _memory_cube(scene["values"]).chunk({"time": 1, "y": 16, "x": 32})
    result = slgt2.predict(scene["model"], cube, probabilities=True)
    _same_as_cli(result, scene, tmp_path)


_READS: list = []  # module level: dask pickles the graph, a class defined in a test would be copied


class _Recorder:
    """An array that notes each window dask asks of it."""

    def __init__(self, values: np.ndarray):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        _READS.append(key)
        return self.values[key]


def test_dask_cube_is_computed_window_by_window(scene, monkeypatch):
    """Chunks of the cube are still unread when the model runs for the first time: the cube is streamed."""
    da = pytest.importorskip("dask.array")
    from slgt2_cli.infer.predictor import Predictor

    values = np.concatenate([scene["values"]] * 5, axis=2)  # 400 rows: 25 chunks of 16
    cube = _memory_cube(values).copy(data=da.from_array(_Recorder(values), chunks=(4, 2, 16, W)))
    _READS.clear()
    seen_at_first_batch: list[int] = []
    original = Predictor._run

    def spy(self, *args):
        if not seen_at_first_batch:
            seen_at_first_batch.append(len({k[2].start for k in _READS}))
        return original(self, *args)

    monkeypatch.setattr(Predictor, "_run", spy)
    result = slgt2.predict(scene["model"], cube, confidence=False)
    assert result["classes"].shape == (5 * H, W)
    assert seen_at_first_batch[0] < 25 == len({k[2].start for k in _READS if k[2].stop - k[2].start == 16})


def test_dask_chunks_wider_than_the_reader_windows_are_computed_once_per_band(scene, monkeypatch):
    """The reader asks for 32-column windows; a 100-column chunk is computed once per band of rows, not 4 times."""
    da = pytest.importorskip("dask.array")
    import slgt2_cli.infer.predictor as predictor

    monkeypatch.setattr(predictor, "BAND_COLUMNS", 32)
    values = scene["values"]
    cube = _memory_cube(values).copy(data=da.from_array(_Recorder(values), chunks=(4, 2, 16, W)))
    _READS.clear()
    result = slgt2.predict(scene["model"], cube, confidence=False, units="db")  # units given: no sampling reads
    np.testing.assert_array_equal(result["classes"].values, scene["classes"])
    per_chunk: dict[int, int] = {}
    for key in _READS:
        if key[2].stop - key[2].start == 16:  # not dask's own zero-size probes
            per_chunk[key[2].start] = per_chunk.get(key[2].start, 0) + 1
    assert len(per_chunk) == H // 16 and max(per_chunk.values()) <= 2  # a chunk may straddle two bands


def test_openeo_dataset_from_netcdf(scene, tmp_path):
    """Separate VV/VH variables, dims t/y/x, y ascending, CRS in a CF grid-mapping variable (netCDF3)."""
    values = scene["values"]
    x, y = pixel_centres(utm_grid(W, H))
    ds = xr.Dataset({pol: (("t", "y", "x"), values[:, i, ::-1]) for i, pol in enumerate(("VV", "VH"))},
                    coords={"t": np.array(DATES, "datetime64[ns]"), "y": y[::-1], "x": x})
    ds.rio.write_crs("EPSG:32633", grid_mapping_name="crs").to_netcdf(tmp_path / "cube.nc", engine="scipy")
    with xr.open_dataset(tmp_path / "cube.nc", engine="scipy") as opened:
        assert "crs" in opened.data_vars  # the grid mapping arrives as a data variable
        result = slgt2.predict(scene["model"], opened)
    np.testing.assert_array_equal(result["classes"].values, scene["classes"])
    assert result["y"].values[0] > result["y"].values[-1]  # north-up
    bands_cube = _memory_cube(values, dims=("t", "bands", "y", "x"))
    np.testing.assert_array_equal(slgt2.predict(scene["model"], bands_cube)["classes"].values, scene["classes"])


@pytest.mark.parametrize("change, message", [
    (lambda c: c.drop_vars("spatial_ref"), "the cube has no CRS"),
    (lambda c: c.assign_coords(time=[0, 1, 2, 3]), "time dimension has no datetime coordinates"),
    (lambda c: c.drop_vars("time"), "time dimension has no datetime coordinates"),
    (lambda c: c.rename(time="date"), "the cube has no time dimension"),
    (lambda c: c.assign_coords(band=["HH", "HV"]), "the cube has no VV, VH band (its bands: HH, HV"),
    (lambda c: c.isel(band=[0]).assign_coords(band=["band1"]), "the cube has 1 unnamed bands but the model needs 2"),
    (lambda c: c.rename(band="pol", x="lon_"), "no spatial dimensions y/x"),
    (lambda c: c.assign_attrs(units="furlongs"), "the cube's units attribute: unknown units 'furlongs'"),
])
def test_cubes_it_cannot_use_are_one_clear_input_error(scene, change, message):
    cube = change(_memory_cube(scene["values"][:, :, :8, :8]))
    with pytest.raises(InputError, match=None) as err:
        slgt2.predict(scene["model"], cube)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_evaluate_matches_the_cli(scene, tmp_path):
    labels = np.where(np.arange(W)[None] < 50, 3100, 2000).repeat(H, 0).astype(np.uint16)
    labels[:3] = 0  # nodata
    write_raster(tmp_path / "labels.tif", labels, utm_grid(W, H), nodata=0)
    cli = runner.invoke(app, ["evaluate", str(scene["dir"] / "map.tif"), str(tmp_path / "labels.tif"),
                              "--json", str(tmp_path / "m.json")])
    assert cli.exit_code == 0, cli.output
    expected = json.loads((tmp_path / "m.json").read_text())
    result = slgt2.predict(scene["model"], slgt2.open_stack(scene["tif"]))
    label_da = slgt2.open_stack(tmp_path / "labels.tif", units="raw")  # any raster opens; take its one band
    label_da = xr.DataArray(labels, dims=("y", "x"), coords={"y": label_da["y"], "x": label_da["x"]})
    label_da = label_da.rio.write_crs("EPSG:32633").rio.write_nodata(0)
    scores = slgt2.evaluate(result["classes"], label_da)
    for key in ("overall_accuracy", "kappa", "miou", "confusion_matrix"):
        assert scores.metrics[key] == expected[key], key
    assert "overall" in scores.text.lower()
    assert slgt2.evaluate(result, label_da, classes=TABLE).metrics["confusion_matrix"] == expected["confusion_matrix"]


def test_evaluate_reprojects_labels_on_another_grid_like_the_cli(scene, tmp_path):
    """Labels at 20 m over a larger extent: aligned onto the map's 10 m grid (nearest), as `slgt2 evaluate` does."""
    coarse = np.where(np.arange(60)[None] % 7 < 3, 3100, 2000).repeat(50, 0).astype(np.uint16)
    write_raster(tmp_path / "labels20.tif", coarse, utm_grid(60, 50, res=20.0, origin=(499900.0, 5100100.0)), nodata=0)
    cli = runner.invoke(app, ["evaluate", str(scene["dir"] / "map.tif"), str(tmp_path / "labels20.tif"),
                              "--json", str(tmp_path / "m.json")])
    assert cli.exit_code == 0, cli.output
    expected = json.loads((tmp_path / "m.json").read_text())
    import rioxarray

    prediction = rioxarray.open_rasterio(scene["dir"] / "map.tif").squeeze("band", drop=True)
    prediction.attrs["class_table"] = json.dumps(TABLE.to_list())
    scores = slgt2.evaluate(prediction, rioxarray.open_rasterio(tmp_path / "labels20.tif"))
    assert scores.metrics["confusion_matrix"] == expected["confusion_matrix"]
