"""docs/python.md runs as written: every ```python block (except those marked `# not run`), in order, in one
namespace, on a small scene with the file names the page uses (the netCDF cube written with scipy, netCDF3)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import xarray as xr
from helpers import DATES, make_checkpoint, sar_values, utm_grid, write_raster, write_stack

from slgt2_cli.io.cube import pixel_centres

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def _blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return [b for b in blocks if not b.startswith("# not run")]


def test_the_python_walkthrough_runs(tmp_path, monkeypatch):
    pytest.importorskip("dask")
    matplotlib.use("Agg")
    h, w = 72, 90
    values = sar_values(h, w, seed=2)
    write_stack(tmp_path / "stack.tif", values)
    make_checkpoint(tmp_path / "best.pt")
    write_raster(tmp_path / "labels.tif", np.where(np.arange(w)[None] < 40, 2000, 3100).repeat(h, 0).astype("uint16"),
                 utm_grid(w, h), nodata=0)
    x, y = pixel_centres(utm_grid(w, h))
    ds = xr.Dataset({pol: (("t", "y", "x"), values[:, i]) for i, pol in enumerate(("VV", "VH"))},
                    coords={"t": np.array(DATES, "datetime64[ns]"), "y": y, "x": x})
    ds.rio.write_crs("EPSG:32633", grid_mapping_name="crs").to_netcdf(tmp_path / "s1_cube.nc", engine="scipy")
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert len(blocks) >= 8
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "map.tif").exists() and (tmp_path / "map.confidence.tif").exists()
    np.testing.assert_array_equal(namespace["openeo_result"]["classes"].values, namespace["result"]["classes"].values)
    assert 0 <= namespace["scores"].metrics["overall_accuracy"] <= 1
