"""`slgt2 predict`: grids, class values, no data, batch independence, edges, the CLI, tilings and torchrun.

Every scene here is a few 64-px tiles: the tiny model costs ~0.5 s per tile on a laptop CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from helpers import TABLE, make_checkpoint, sar_values, write_stack
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.infer.predictor import Predictor
from slgt2_cli.infer.run import PredictConfig, run_predict
from slgt2_cli.infer.settings import InferenceSettings
from slgt2_cli.io.stacks import open_stack

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def constant_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "constant.pt", constant_class=1)


def _predict(ck: Path, stack: Path, out: Path, *, tile=None, stride=None, **kw):
    settings = InferenceSettings(device="cpu", tile=tile, stride=stride)
    return run_predict(PredictConfig(checkpoint=ck, stacks=[stack], output=out, progress=False, settings=settings, **kw))


def _read(path: Path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src


def test_output_grid_values_nodata_and_skipped_tiles(tiny_checkpoint, tmp_path):
    values = sar_values(64, 160)
    values[:, :, :, 96:] = np.nan  # the last tile (cols 96..160) has no valid pixel: skipped
    values[:, :, 5:15, 10:30] = np.nan  # a no-data block inside a computed tile
    values[:2, :, 40:50, 40:50] = np.nan  # missing on some dates only: still predicted
    stack = write_stack(tmp_path / "s.tif", values)
    [result] = _predict(tiny_checkpoint, stack, tmp_path / "map.tif")
    assert result.stats["tiles"] == 3 and result.stats["skipped"] == 1

    with rasterio.open(stack) as src_in, rasterio.open(tmp_path / "map.tif") as out:
        assert out.crs == src_in.crs and out.crs.to_epsg() == 32633
        assert out.transform == src_in.transform and (out.width, out.height) == (160, 64)
        assert out.dtypes[0] == "uint16" and out.count == 1
        data, nodata = out.read(1), out.nodata
        assert out.tags(1)["CLASS_2000"] == "grassland"
        assert (tmp_path / "map.qml").exists() and (tmp_path / "map.tif.aux.xml").exists()
    valid = data != nodata
    assert set(np.unique(data[valid])) <= {1110, 2000, 3100}
    assert not valid[:, 96:].any()
    assert not valid[5:15, 10:30].any()
    assert valid[40:50, 40:50].all()
    expected = np.ones((64, 160), bool)
    expected[:, 96:] = False
    expected[5:15, 10:30] = False
    assert (valid == expected).all()


def test_file_nodata_value_and_zero_pixels_are_no_data(tiny_checkpoint, tmp_path):
    values = sar_values(40, 40)
    values[:, :, :4, :] = -9999.0  # the file's nodata value
    values[:, :, :, :3] = 0.0  # zero in every band
    stack = write_stack(tmp_path / "s.tif", values, nodata=-9999.0)
    _predict(tiny_checkpoint, stack, tmp_path / "map.tif")
    data, profile, _ = _read(tmp_path / "map.tif")
    valid = data != profile["nodata"]
    assert not valid[:4].any() and not valid[:, :3].any() and valid[4:, 3:].all()


def _probabilities(ck: Path, stack_path: Path, batch_size: int, **kw) -> np.ndarray:
    predictor = Predictor.from_checkpoint(load_checkpoint(ck), torch.device("cpu"), batch_size=batch_size, **kw)
    with open_stack(stack_path) as stack:
        out = np.zeros((predictor.num_classes + 1, stack.grid.height, stack.grid.width), np.float32)

        def sink(window, probs, valid):
            rows = slice(window.row_off, window.row_off + window.height)
            out[:-1, rows] = probs
            out[-1, rows] = valid

        predictor.predict(stack, sink)
    return out


def test_result_does_not_depend_on_batch_size(tiny_checkpoint, tmp_path):
    stack = write_stack(tmp_path / "s.tif", sar_values(64, 150, seed=3))  # one row of 3 tiles
    one = _probabilities(tiny_checkpoint, stack, batch_size=1)
    three = _probabilities(tiny_checkpoint, stack, batch_size=3)
    np.testing.assert_allclose(one, three, atol=1e-5)
    assert (one[:-1].argmax(0) == three[:-1].argmax(0)).all()
    assert one[-1].all()
    np.testing.assert_allclose(one[:-1].sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 50), (101, 77), (64, 64), (65, 63)])
def test_constant_model_gives_its_class_everywhere(constant_ckpt, tmp_path, shape):
    """Edges, a scene smaller than one tile and odd sizes all get the class (2000) the model always predicts."""
    stack = write_stack(tmp_path / "s.tif", sar_values(*shape))
    _predict(constant_ckpt, stack, tmp_path / "map.tif", confidence=tmp_path / "conf.tif")
    data, profile, _ = _read(tmp_path / "map.tif")
    assert data.shape == shape
    assert (data == 2000).all()
    conf, _, _ = _read(tmp_path / "conf.tif")
    assert (conf == 255).all()


def test_cli_several_stacks_into_a_directory(tiny_checkpoint, tmp_path):
    (tmp_path / "in").mkdir()
    a = write_stack(tmp_path / "in" / "a.tif", sar_values(40, 48, seed=1))
    b = write_stack(tmp_path / "in" / "b", sar_values(36, 44, seed=2), per_date_dir=True)
    out, conf, prob = tmp_path / "maps", tmp_path / "conf", tmp_path / "prob"
    args = ["predict", str(tiny_checkpoint), str(a), str(b), str(out), "--confidence", str(conf), "--probabilities", str(prob),
            "--device", "cpu", "--batch-size", "2", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name, (h, w) in (("a", (40, 48)), ("b", (36, 44))):
        data, profile, _ = _read(out / f"{name}.tif")
        assert data.shape == (h, w) and set(np.unique(data)) <= {1110, 2000, 3100}
        with rasterio.open(conf / f"{name}.confidence.tif") as src:
            assert src.count == 1 and src.dtypes[0] == "uint8" and (src.read(1) >= 85).all()  # > 1/3 for 3 classes
        with rasterio.open(prob / f"{name}.probabilities.tif") as src:
            assert src.count == len(TABLE) and src.dtypes[0] == "uint8"
            p = src.read().astype(int)
            assert (np.abs(p.sum(0) - 254) <= 3).all()
            assert (p.argmax(0) == TABLE.encode(data)).mean() > 0.99  # rounding may flip near-ties
    assert result.output.count("px/s") == 2

    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists" in again.output and "--overwrite" in again.output and "Traceback" not in again.output
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0


def test_cli_bad_inputs_exit_2(tiny_checkpoint, tmp_path):
    stack = write_stack(tmp_path / "s.tif", sar_values(20, 20))
    for args in (["predict", str(tmp_path / "missing.pt"), str(stack), str(tmp_path / "m.tif")],
                 ["predict", str(tiny_checkpoint), str(tmp_path / "missing.tif"), str(tmp_path / "m.tif")],
                 ["predict", str(tiny_checkpoint), str(stack), str(tmp_path / "m.tif"), "--tile", "64", "--stride", "80"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output


def _synth_dataset(root: Path) -> Path:
    from slgt2_cli.synth.scenes import synthesize

    synthesize(root, size=192, dates=8, scenes=5, scene_size=96, seed=0)
    return root


def tiling_agreement(checkpoint: Path, stack: Path, workdir: Path) -> float:
    """Share of valid pixels on which tile 64 / stride 48 and tile 96 / stride 72 give the same class."""
    maps = []
    for tile, stride in ((64, 48), (96, 72)):
        out = workdir / f"map_{tile}.tif"
        _predict(checkpoint, stack, out, tile=tile, stride=stride, overwrite=True)
        maps.append(_read(out))
    (a, profile, _), (b, _, _) = maps
    valid = (a != profile["nodata"]) & (b != profile["nodata"])
    return float((a[valid] == b[valid]).mean())


@pytest.mark.slow
def test_two_tilings_agree_with_a_trained_model(tmp_path):
    """A briefly trained tiny model: two tilings of one scene agree on >= 99 % of pixels (~40 s on 2 CPU cores)."""
    data = _synth_dataset(tmp_path / "ds")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                 "--iterations", "60", "--val-every", "60", "--workers", "0", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    agreement = tiling_agreement(tmp_path / "run" / "best.pt", data / "scene" / "image.tif", tmp_path)
    print(f"two-tilings agreement: {agreement:.4%}")
    assert agreement >= 0.99


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun")
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def test_torchrun_two_ranks_match_one_process(tiny_checkpoint, tmp_path):
    stacks = [write_stack(tmp_path / f"{n}.tif", sar_values(40, 44, seed=s)) for n, s in (("a", 1), ("b", 2))]
    run_predict(PredictConfig(checkpoint=tiny_checkpoint, stacks=stacks, output=tmp_path / "single", progress=False,
                              settings=InferenceSettings(device="cpu")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = _torchrun() + ["--standalone", "--nproc_per_node", "2", "-m", "slgt2_cli", "predict", str(tiny_checkpoint),
                         *map(str, stacks), str(tmp_path / "multi"), "--device", "cpu", "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("a", "b"):
        multi, single_ = _read(tmp_path / "multi" / f"{name}.tif")[0], _read(tmp_path / "single" / f"{name}.tif")[0]
        assert (multi == single_).all()


def test_checkpoint_with_provenance_loads(tmp_path):
    """Provenance (as `slgt2 train` writes it) must survive the weights-only load predict uses."""
    import torch as _torch

    from slgt2_cli.checkpoint.format import provenance, save_checkpoint

    ck = load_checkpoint(make_checkpoint(tmp_path / "a.pt"))
    ck.provenance = provenance(kind="best")
    save_checkpoint(ck, tmp_path / "b.pt")
    assert load_checkpoint(tmp_path / "b.pt").provenance["torch_version"] == str(_torch.__version__)
    ck.provenance["torch_version"] = _torch.__version__  # an older checkpoint: a TorchVersion object
    save_checkpoint(ck, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt").provenance["kind"] == "best"


@pytest.mark.parametrize("shape, columns", [((150, 130), 40), ((150, 130), 256), ((40, 50), 16)])
def test_reader_tiles_equal_tiles_prepared_alone(tiny_checkpoint, tmp_path, monkeypatch, shape, columns):
    """The reader prepares full-width bands (in column chunks, rows shared with the band above taken over) and
    cuts tiles from them; every tile must equal its own window read and prepared alone, as training does."""
    from rasterio.windows import Window

    import slgt2_cli.infer.predictor as inference
    from slgt2_cli.data.preprocess import prepare_input
    from slgt2_cli.infer.tiling import TileGrid

    values = sar_values(*shape, seed=5)
    values[:, :, 10:20, 30:45] = np.nan  # a no-data patch
    values[1:3, :, 30:40, :] = np.nan  # two dates missing on some rows
    values[:, :, :, -8:] = np.nan  # a no-data margin
    monkeypatch.setattr(inference, "BAND_COLUMNS", columns)
    p = Predictor.from_checkpoint(load_checkpoint(tiny_checkpoint), torch.device("cpu"))
    with open_stack(write_stack(tmp_path / "s.tif", values)) as stack:
        grid = TileGrid(stack.grid.height, stack.grid.width, p.tile, p.stride)
        reader = inference._TileReader(stack, grid, p.rule, p.norm, p.tile)
        seen = 0
        for _row0, row in reader:
            for tile, x, valid in row:
                raw = stack.read(Window(tile.col, tile.row, tile.width, tile.height))
                want_x, want_valid = prepare_input(raw, stack.dates, p.rule, p.norm)
                np.testing.assert_array_equal(valid, want_valid)
                if x is None:
                    assert not want_valid.any()
                else:
                    np.testing.assert_array_equal(x[:, :, : tile.height, : tile.width], want_x)
                    assert x.shape[-2:] == (p.tile, p.tile) and not x[:, :, tile.height :].any()
                seen += 1
        reader.close()
    assert seen == len(grid)


@pytest.mark.parametrize("per_date_dir", [False, True])
def test_io_cache_holds_a_tile_row_of_input_blocks_and_grows_with_width_only(tmp_path, per_date_dir):
    """Predict's GDAL cache must hold the input blocks under a tile row and the next (else every compressed
    block is decoded once per overlapping tile row), and must not grow with the scene's height."""
    from slgt2_cli.infer.predictor import io_cache_mb

    tiled = dict(tiled=True, blockxsize=32, blockysize=32, compress="deflate")
    sizes = {"short": (64, 96), "tall": (320, 96), "wide": (64, 192)}
    needs = {}
    for name, (h, w) in sizes.items():
        path = write_stack(tmp_path / name, sar_values(h, w), per_date_dir=per_date_dir, **tiled)
        with open_stack(path) as stack:
            needs[name] = (stack.band_cache_bytes(48), io_cache_mb(stack, 48, []))
    # 48 rows touch 2 rows of 32-px blocks, +1 for the next band: 96 rows x 96 cols x 8 bands x 4 bytes;
    # a 64-row scene has only 2 block rows
    assert needs["tall"][0] == 96 * 96 * 8 * 4
    assert needs["short"][0] == 64 * 96 * 8 * 4
    assert needs["wide"][0] == 2 * needs["short"][0]
    tall_8x = write_stack(tmp_path / "taller", sar_values(640, 96), per_date_dir=per_date_dir, **tiled)
    with open_stack(tall_8x) as stack:
        assert io_cache_mb(stack, 48, []) == needs["tall"][1]


@pytest.mark.parametrize("how", ["linear", "nearest"])
def test_fill_gaps_fast_path_matches_general_path(how):
    """Tiles whose pixels share one gap pattern take a fast path in fill_gaps; it must give the same bits."""
    from slgt2_cli.data.temporal import fill_gaps

    rng = np.random.default_rng(0)
    fill = np.array([-10.0, -17.0], np.float32)
    for gaps in ([0, 1, 5, 6, 7, 15], [3, 4], [], list(range(1, 16)), list(range(15))):
        frames = rng.normal(-12, 3, (16, 2, 9, 7)).astype(np.float32)
        frames[gaps] = np.nan
        fast = fill_gaps(frames, how, fill)
        odd = frames.copy()
        odd[:, :, 0, 0] = np.nan  # one empty pixel: the general path
        general = fill_gaps(odd, how, fill)
        np.testing.assert_array_equal(fast[:, :, 1:], general[:, :, 1:])
        np.testing.assert_array_equal(general[:, :, 0, 0], np.broadcast_to(fill, (16, 2)))
        assert not np.isnan(fast).any()
