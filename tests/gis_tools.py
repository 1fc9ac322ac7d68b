"""Outside GIS tools for the tests: QGIS and GDAL's COG validator, both run by Debian's /usr/bin/python3.

Our interpreter is another Python than the system one that has ``qgis`` and ``osgeo`` (python3-qgis,
python3-gdal; .ci/run installs them), so they run as subprocesses on probe scripts beside this file.
Without system GDAL, :func:`cog_report` applies the same structural checks through rasterio.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import rasterio

SYSTEM_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).resolve().parent


@functools.cache
def system_python_has(module: str) -> bool:
    """True when /usr/bin/python3 can import ``module`` (e.g. qgis.core, osgeo_utils)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], check=False, env=env, capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _system_run(script: str, *args: str) -> list[dict]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([SYSTEM_PYTHON, str(HERE / script), *args], check=False, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def qgis_legend(path: Path) -> dict:
    """What QGIS (headless) shows for a raster loaded as a layer: renderer type, palette entries, legend labels."""
    [out] = _system_run("qgis_legend_probe.py", str(path))
    return out


def cog_report(path: Path) -> dict:
    """{"errors": [...], "header_bytes": int}: GDAL's own validate_cloud_optimized_geotiff when the system has it,
    else :func:`_rasterio_cog_checks` (the same IFD and tile-order rules)."""
    if system_python_has("osgeo_utils.samples.validate_cloud_optimized_geotiff"):
        [out] = _system_run("cog_probe.py", str(path))
        out["validator"] = "gdal"
        return out
    return _rasterio_cog_checks(path)


def _rasterio_cog_checks(path: Path) -> dict:
    """GDAL's COG rules read through rasterio's TIFF metadata domain: tiled; main IFD first, then the overview
    IFDs in order; all IFDs before any tile data; overview data before the full-resolution data, smallest last
    written first; tiles of each level in row-major order."""
    errors = []
    with rasterio.open(path) as src:
        if src.block_shapes[0][1] == src.width and src.width > 512:
            errors.append("not tiled")
        levels = [None] + list(range(len(src.overviews(1))))
        ifds = [int(src.get_tag_item("IFD_OFFSET", "TIFF", bidx=1, ovr=lv)) for lv in levels]
        firsts, lasts = [], []
        for lv in levels:
            with rasterio.open(path, overview_level=lv) if lv is not None else rasterio.open(path) as ds:
                bh, bw = ds.block_shapes[0]
                nx, ny = -(-ds.width // bw), -(-ds.height // bh)
                offs = [int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1, ovr=lv) or 0)
                        for y in range(ny) for x in range(nx)]
            present = [o for o in offs if o]
            if present != sorted(present):
                errors.append(f"tiles of level {lv} not in row-major order")
            firsts.append(min(present) if present else None)
            lasts.append(max(present) if present else None)
    if ifds != sorted(ifds):
        errors.append("IFDs not in main, overview 1, overview 2, ... order")
    data = [f for f in firsts if f is not None]
    if data and max(ifds) >= min(data):
        errors.append("an IFD comes after tile data")
    if data != sorted(data, reverse=True):
        errors.append("tile data not written smallest overview first, full resolution last")
    return {"errors": errors, "warnings": [], "header_bytes": min(data) if data else None, "validator": "rasterio"}
