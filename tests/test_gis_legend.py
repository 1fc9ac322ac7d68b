"""Issue 14: maps GIS tools open with the class table's names and colours (QGIS, GDAL), small valid COGs, sidecars
written, replaced and removed together with the map."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from gis_tools import cog_report, qgis_legend, system_python_has
from helpers import TABLE, make_checkpoint, sar_values, utm_grid, write_stack
from rasterio.windows import Window
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.geotiff import MapWriter

runner = CliRunner()
TABLE8 = ClassTable.from_list([{"value": 10, "name": "cultivated land", "color": "#ffd700"},
                               {"value": 20, "name": "forest & <shrub>", "color": "#228b22"},
                               {"value": 30, "name": "water", "color": "#1e90ff"}])
TABLES = {"uint16": TABLE, "uint8": TABLE8}


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> dict[str, Path]:
    """A map from `slgt2 predict` for uint16 class values (1110...) and one for uint8 values (10, 20, 30)."""
    root = tmp_path_factory.mktemp("gis")
    stack = write_stack(root / "s.tif", sar_values(64, 96))
    out = {}
    for dtype, table in TABLES.items():
        ck = make_checkpoint(root / f"{dtype}.pt", table=table)
        out[dtype] = root / dtype / "map.tif"
        result = runner.invoke(app, ["predict", "-q", "--device", "cpu", str(ck), str(stack), str(out[dtype])])
        assert result.exit_code == 0, result.output
    return out


def _expected(table: ClassTable) -> list[list]:
    return [[float(c.value), c.color.lower(), c.name] for c in table.classes]


@pytest.mark.skipif(not system_python_has("qgis.core"), reason="QGIS (Debian python3-qgis) is not installed")
@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_qgis_shows_a_paletted_legend_of_exactly_the_classes(maps, dtype):
    shown = qgis_legend(maps[dtype])
    assert shown["valid"] and shown["renderer"] == "paletted", shown
    assert shown["entries"] == _expected(TABLES[dtype])
    assert shown["legend"] == TABLES[dtype].names


@pytest.mark.skipif(not system_python_has("qgis.core"), reason="QGIS (Debian python3-qgis) is not installed")
def test_without_its_qml_qgis_would_not_show_the_classes(maps, tmp_path):
    """The .qml is what gives the legend (QGIS 3.22 ignores raster attribute tables)."""
    shutil.copy(maps["uint16"], tmp_path / "bare.tif")
    assert qgis_legend(tmp_path / "bare.tif")["renderer"] != "paletted"


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_gdal_sees_class_names_in_the_attribute_table(maps, dtype):
    table, path = TABLES[dtype], maps[dtype]
    aux = ET.parse(path.with_name("map.tif.aux.xml")).getroot()
    rat = aux.find("PAMRasterBand/GDALRasterAttributeTable")
    assert rat.get("tableType") == "thematic"
    rows = [[f.text for f in row.findall("F")] for row in rat.findall("Row")]
    assert rows == [[str(c.value), c.name, *map(str, rgb), "255"] for c, rgb in zip(table.classes, table.rgb())]
    with rasterio.open(path) as src:
        assert src.dtypes[0] == dtype
        assert src.tags(1)[f"CLASS_{table.values[1]}"] == table.names[1]
        if dtype == "uint8":
            assert src.colormap(1)[10][:3] == (0xFF, 0xD7, 0x00)
        else:
            with pytest.raises(ValueError):
                src.colormap(1)
    if shutil.which("gdalinfo"):
        info = subprocess.run(["gdalinfo", str(path)], capture_output=True, text=True, check=True).stdout
        for name in table.names:
            assert name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in info
        if dtype == "uint8":
            assert "Categories:" in info and "10: cultivated land" in info


def test_uint16_header_within_twice_the_uint8_header_and_both_valid_cogs(maps):
    reports = {dtype: cog_report(path) for dtype, path in maps.items()}
    for dtype, report in reports.items():
        assert report["errors"] == [], (dtype, report)
    assert reports["uint16"]["header_bytes"] <= 2 * reports["uint8"]["header_bytes"], reports


def test_large_uint16_map_is_a_valid_cog_with_a_small_header(tmp_path):
    """Overviews (two levels) and no palette: before issue 14 this header was 1,181,488 bytes."""
    out = tmp_path / "m.tif"
    with MapWriter.classes(out, utm_grid(1100, 700), TABLE) as w:
        w.write_classes(Window(0, 0, 1100, 700), np.random.default_rng(0).integers(-1, 3, (700, 1100)))
    report = cog_report(out)
    assert report["errors"] == [] and report["header_bytes"] < 16_384, report


def test_sidecars_replaced_with_overwrite_refused_without(maps, tmp_path):
    stack = write_stack(tmp_path / "s.tif", sar_values(40, 40))
    ck = make_checkpoint(tmp_path / "ck.pt", table=TABLE8)
    out = tmp_path / "map.tif"
    out.with_suffix(".qml").write_text("my own style")
    args = ["predict", "-q", "--device", "cpu", str(ck), str(stack), str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "map.qml: already exists" in result.output
    assert not out.exists() and out.with_suffix(".qml").read_text() == "my own style"
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "cultivated land" in out.with_suffix(".qml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("map")) == \
        ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_failed_map_leaves_no_sidecar(tmp_path):
    out = tmp_path / "m.tif"
    with pytest.raises(RuntimeError), MapWriter.classes(out, utm_grid(40, 30), TABLE8) as w:
        w.write_classes(Window(0, 0, 40, 30), np.zeros((30, 40), int))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_sidecar_that_cannot_be_written_aborts_the_map(tmp_path, monkeypatch):
    out = tmp_path / "m.tif"
    w = MapWriter.classes(out, utm_grid(40, 30), TABLE8)
    w.write_classes(Window(0, 0, 40, 30), np.zeros((30, 40), int))
    w.add_sidecar(tmp_path / "boom.txt", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        w.commit()
    assert list(tmp_path.iterdir()) == []


def test_map_that_cannot_be_renamed_takes_its_sidecars_along(tmp_path, monkeypatch):
    from slgt2_cli.io import geotiff

    out = tmp_path / "m.tif"
    real = geotiff.os.replace

    def replace(src, dst):
        if Path(dst) == out:
            raise OSError("disk gone")
        real(src, dst)

    monkeypatch.setattr(geotiff.os, "replace", replace)
    w = MapWriter.classes(out, utm_grid(40, 30), TABLE8)
    w.write_classes(Window(0, 0, 40, 30), np.zeros((30, 40), int))
    with pytest.raises(InputError, match="disk gone"):  # a failed write names the file: exit 2, not a traceback
        w.commit()
    assert list(tmp_path.iterdir()) == []
