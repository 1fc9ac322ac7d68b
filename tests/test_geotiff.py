"""MapWriter: COG layout, georeference, embedded class table, atomicity."""

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from helpers import utm_grid
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.atomic import temp_path
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.io.geotiff import (
    MapWriter,
    class_map_dtype,
    confidence_bytes,
    gdal_cache,
    overview_factors,
    probability_bytes,
    read_class_table,
)

TABLE = ClassTable.from_list([
    {"value": 1110, "name": "winter wheat", "color": "#e6194b"},
    {"value": 3, "name": "forest", "color": "#3cb44b"},
    {"value": 42, "name": "water", "color": "#4363d8"},
])


def _pattern(h, w):
    rows, cols = np.mgrid[0:h, 0:w]
    return ((rows // 100 + cols // 100) % 3).astype(np.int64)


def _write_map(path, grid, table=TABLE, band=256, **kw):
    classes = _pattern(grid.height, grid.width)
    classes[:10, :10] = IGNORE_INDEX
    with MapWriter.classes(path, grid, table, **kw) as w:
        for r in range(0, grid.height, band):  # row bands, not aligned with the 512 blocks
            h = min(band, grid.height - r)
            w.write_classes(Window(0, r, grid.width, h), classes[r : r + h])
    return classes


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".partial-" in p.name)


def test_class_map_is_a_cog_on_the_grid(tmp_path):
    grid = utm_grid(1100, 700)
    out = tmp_path / "map.tif"
    classes = _write_map(out, grid)
    with rasterio.open(out) as src:
        assert src.crs == grid.crs and src.transform == grid.transform
        assert (src.width, src.height, src.count) == (1100, 700, 1)
        assert src.dtypes[0] == "uint16" and src.nodata not in TABLE.values
        assert src.block_shapes == [(512, 512)] and src.profile["tiled"]
        assert src.overviews(1) == [2, 4]
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure.get("LAYOUT") == "COG"
        assert structure.get("COMPRESSION") in ("DEFLATE", "ZSTD")
        data = src.read(1)
        expected = np.where(classes == IGNORE_INDEX, src.nodata, TABLE.values[np.maximum(classes, 0)])
        np.testing.assert_array_equal(data, expected)
        assert data[0, 0] == src.nodata and (data == 1110).any()
        with pytest.raises(ValueError):  # no 65,536-entry palette in a uint16 COG: colours are in the sidecars
            src.colormap(1)
        assert src.tags(1)["CLASS_1110"] == "winter wheat"
        # Mode overviews keep class values (no averaged in-between values).
        ov = src.read(1, out_shape=(175, 275))
        assert set(np.unique(ov)) <= set(TABLE.values.tolist()) | {src.nodata}
    assert read_class_table(out) == TABLE
    assert _leftovers(tmp_path) == []


def test_small_map_uint8_and_no_overviews(tmp_path):
    table = ClassTable.default([1, 2, 255])
    assert class_map_dtype(table) == ("uint8", 0)
    out = tmp_path / "small.tif"
    with MapWriter.classes(out, utm_grid(40, 30), table) as w:
        w.write(Window(0, 0, 40, 30), np.full((30, 40), 255))
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0 and src.overviews(1) == []
        assert (src.read(1) == 255).all()
    assert read_class_table(out) == table


def test_dtype_choice():
    assert class_map_dtype(ClassTable.default([1, 2])) == ("uint8", 255)
    assert class_map_dtype(ClassTable.default(list(range(256)))) == ("uint16", 65535)
    assert class_map_dtype(ClassTable.default([1110, 2])) == ("uint16", 65535)
    assert class_map_dtype(ClassTable.default([-5, 70000])) == ("int32", 2**31 - 1)
    assert overview_factors(512, 300) == [] and overview_factors(513, 10) == [2]
    assert overview_factors(8192, 8192) == [2, 4, 8, 16]


def test_int32_map_keeps_values(tmp_path):
    table = ClassTable.default([-5, 70000])
    out = tmp_path / "i32.tif"
    with MapWriter.classes(out, utm_grid(8, 8), table) as w:
        w.write_classes(Window(0, 0, 8, 8), np.eye(8, dtype=np.int64))
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "int32"
        assert src.read(1)[0, 0] == 70000 and src.read(1)[0, 1] == -5


def test_exception_inside_block_leaves_nothing(tmp_path):
    out = tmp_path / "map.tif"
    with pytest.raises(RuntimeError, match="boom"):
        with MapWriter.classes(out, utm_grid(600, 600), TABLE) as w:
            w.write(Window(0, 0, 600, 100), np.full((100, 600), 3))
            assert _leftovers(tmp_path)  # the staging file exists while writing
            raise RuntimeError("boom")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_keyboard_interrupt_and_abort_leave_nothing(tmp_path):
    out = tmp_path / "map.tif"
    with pytest.raises(KeyboardInterrupt):
        with MapWriter.classes(out, utm_grid(64, 64), TABLE):
            raise KeyboardInterrupt
    w = MapWriter.confidence(out, utm_grid(64, 64))
    w.abort()
    assert not out.exists() and _leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "map.tif"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        MapWriter.classes(out, utm_grid(8, 8), TABLE)
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []
    with MapWriter.classes(out, utm_grid(8, 8), TABLE, overwrite=True) as w:
        w.write(Window(0, 0, 8, 8), np.full((8, 8), 42))
    with rasterio.open(out) as src:
        assert (src.read(1) == 42).all()


def test_unwritable_directory_and_full_disk(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: simulate the permission check failing
        monkeypatch.setattr("slgt2_cli.io.atomic.os.access", lambda path, mode: False)
    with pytest.raises(InputError, match="not writable"):
        MapWriter.classes(locked / "map.tif", utm_grid(8, 8), TABLE)
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create"):
        MapWriter.classes(blocker / "sub" / "map.tif", utm_grid(8, 8), TABLE)

    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(InputError, match="not enough free disk space"):
        MapWriter.classes(tmp_path / "big.tif", utm_grid(10000, 10000), TABLE)


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path):
    out = tmp_path / "map.tif"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".map.tif.partial-{dead_pid}.stage.tif"
    stale.write_bytes(b"junk")
    alive = tmp_path / f".map.tif.partial-{os.getppid()}.tif"  # a live process: left alone
    alive.write_bytes(b"busy")
    with MapWriter.classes(out, utm_grid(8, 8), TABLE) as w:
        w.write(Window(0, 0, 8, 8), np.full((8, 8), 3))
    assert not stale.exists() and alive.exists()
    assert temp_path(out).name.startswith(".map.tif.partial-")


def test_confidence_and_probability_maps(tmp_path):
    grid = utm_grid(20, 10)
    probs = np.zeros((3, 10, 20), np.float32)
    probs[0] = 0.5
    probs[1] = 0.3
    probs[2] = 0.2
    probs[:, :, 10:] = np.array([0.0, 0.0, 1.0])[:, None, None]
    valid = np.ones((10, 20), bool)
    valid[0, 0] = False
    with MapWriter.confidence(tmp_path / "conf.tif", grid) as w:
        w.write(Window(0, 0, 20, 10), confidence_bytes(probs, valid))
    with MapWriter.probabilities(tmp_path / "prob.tif", grid, TABLE) as w:
        w.write(Window(0, 0, 20, 10), probability_bytes(probs, valid))
    with rasterio.open(tmp_path / "conf.tif") as src:
        c = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        assert c[0, 0] == 0 and c[0, 1] == 128 and c[0, 15] == 255
        assert src.scales[0] == pytest.approx(1 / 255)
    with rasterio.open(tmp_path / "prob.tif") as src:
        p = src.read()
        assert src.count == 3 and src.nodata == 255
        assert (p[:, 0, 0] == 255).all()
        assert p[:, 1, 1].tolist() == [127, 76, 51] and p[:, 1, 15].tolist() == [0, 0, 254]
        assert "winter wheat" in src.descriptions[0]
        np.testing.assert_allclose(p[:, 1, 1] * src.scales[0], [0.5, 0.3, 0.2], atol=0.003)
    assert read_class_table(tmp_path / "prob.tif") == TABLE


def test_read_class_table_absent_and_bad(tmp_path):
    from helpers import write_raster

    plain = write_raster(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8), utm_grid(4, 4))
    assert read_class_table(plain) is None
    bad = write_raster(tmp_path / "bad.tif", np.zeros((4, 4), np.uint8), utm_grid(4, 4), CLASS_TABLE="{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        read_class_table(bad)
    (tmp_path / "text.tif").write_text("hello")
    with pytest.raises(InputError, match="not a readable raster"):
        read_class_table(tmp_path / "text.tif")


def test_gdal_cache_is_in_megabytes_and_writer_needs_two_block_rows(tmp_path):
    """rasterio takes GDAL_CACHEMAX in bytes: a bare 16 would be a 16-byte cache, i.e. none."""
    with gdal_cache(16):
        assert rasterio.env.getenv()["GDAL_CACHEMAX"] == 16 * 1024 * 1024
    with MapWriter.probabilities(tmp_path / "p.tif", utm_grid(1100, 700), TABLE) as writer:
        assert writer.cache_bytes == 2 * 3 * 512 * 512 * len(TABLE)  # 1100 px: 3 blocks across, uint8 bands
