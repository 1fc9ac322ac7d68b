"""``slgt2 synth``: write a synthetic Sentinel-1 dataset (train/val/test + classes.json) and a larger scene.

Scenes are written window by window (256-pixel row blocks, 512-pixel column chunks) from block-seeded random
generators, so memory does not grow with the scene size and the output depends only on the seed. Every file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.io.atomic import (
    discard,
    publish,
    remove_stale_temporaries,
    require_free_space,
    temp_path,
    write_text,
    writing,
)
from slgt2_cli.io.geotiff import gdal_cache, gdal_errors_as_oserror, verify_raster
from slgt2_cli.synth.model import CLASSES, acquisition_dates, backscatter, footprint, parcels, season_fraction

CRS_UTM = CRS.from_epsg(32633)  # WGS 84 / UTM zone 33N
PIXEL = 10.0
BLOCK, CHUNK = 256, 512
GDAL_CACHE_MB = 64


@dataclass
class SynthResult:
    """What :func:`synthesize` wrote."""

    root: Path
    splits: dict[str, list[str]] = field(default_factory=dict)
    scene_image: Path | None = None
    scene_labels: Path | None = None


def _profile(width: int, height: int, count: int, dtype: str, nodata: Any, origin: tuple[float, float]) -> dict:
    block = min(BLOCK, 16 * -(-min(width, height) // 32)) if min(width, height) >= 32 else None  # >= 2 tiles a side
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, nodata=nodata,
                   crs=CRS_UTM, transform=from_origin(origin[0], origin[1], PIXEL, PIXEL), compress="deflate",
                   zlevel=4, interleave="pixel", BIGTIFF="IF_SAFER")
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if dtype == "float32":
        profile["predictor"] = 3
    return profile


def write_scene(image: Path, labels: Path, *, size: tuple[int, int], dates: list[dt.date], seed: int,
                scene_seed: int, origin: tuple[float, float], margin: float, per_date_dir: bool = False,
                progress: Callable[[int, int], None] | None = None) -> None:
    """Write one scene: a stack (one file, or a directory of per-date files) and its label raster, under
    temporary names that are verified and renamed when complete, and removed on any error or interrupt."""
    for final in (image, labels):
        remove_stale_temporaries(final)
    tmp_image, tmp_labels = temp_path(image, "" if per_date_dir else ".tif"), temp_path(labels, ".tif")
    try:
        with writing(image), gdal_errors_as_oserror(), gdal_cache(GDAL_CACHE_MB):
            _write_scene_files(tmp_image, tmp_labels, size=size, dates=dates, seed=seed, scene_seed=scene_seed,
                               origin=origin, margin=margin, per_date_dir=per_date_dir, progress=progress)
        if per_date_dir:
            _publish_directory(tmp_image, image)
        else:
            publish(tmp_image, image, verify_raster)
        publish(tmp_labels, labels, verify_raster)
    except BaseException:
        discard(tmp_image, tmp_labels)
        raise


def _publish_directory(tmp: Path, final: Path) -> None:
    """Move a finished per-date directory into place, each file verified first."""
    with writing(final):
        for f in tmp.iterdir():
            if f.stat().st_size == 0:
                raise OSError(f"{f.name} came out empty")
            verify_raster(f)
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)


def _write_scene_files(tmp_image: Path, tmp_labels: Path, *, size: tuple[int, int], dates: list[dt.date], seed: int,
                       scene_seed: int, origin: tuple[float, float], margin: float, per_date_dir: bool,
                       progress: Callable[[int, int], None] | None) -> None:
    height, width = size
    frac = season_fraction(dates)
    scene_rng = np.random.default_rng([seed, scene_seed, 0])
    date_offsets = scene_rng.normal(0.0, 0.3, len(dates))
    water_wind = scene_rng.uniform(0.0, 2.5, len(dates))
    names = [f"{pol}_{d.isoformat()}" for d in dates for pol in ("VV", "VH")]
    with ExitStack() as files:  # closed (flushed) at the end, and on any error
        if per_date_dir:
            tmp_image.mkdir(parents=True)
            outs = [files.enter_context(rasterio.open(tmp_image / f"S1_{d:%Y%m%d}.tif", "w",
                                                      **_profile(width, height, 2, "float32", float("nan"), origin)))
                    for d in dates]
        else:
            outs = [files.enter_context(rasterio.open(tmp_image, "w", **_profile(
                width, height, 2 * len(dates), "float32", float("nan"), origin)))]
        lab = files.enter_context(rasterio.open(tmp_labels, "w", **_profile(width, height, 1, "uint16", 0, origin)))
        for i, dst in enumerate(outs):
            dst.update_tags(UNITS="dB", SOURCE="slgt2 synth", SEED=str(seed))
            band_names = names[2 * i : 2 * i + 2] if per_date_dir else names
            for b, name in enumerate(band_names, start=1):
                dst.set_band_description(b, name)
        lab.update_tags(SOURCE="slgt2 synth")
        lab.set_band_description(1, "land cover")
        done, total = 0, height * width
        for row0 in range(0, height, BLOCK):
            for col0 in range(0, width, CHUNK):
                h, w = min(BLOCK, height - row0), min(CHUNK, width - col0)
                win = Window(col0, row0, w, h)
                p = parcels(seed * 1000 + scene_seed, row0, col0, h, w)
                inside = footprint(row0, col0, h, w, height, width, margin)
                rng = np.random.default_rng([seed, scene_seed, row0, col0])
                values = backscatter(p, frac, date_offsets, water_wind, rng)  # (T, 2, h, w)
                values[:, :, ~inside] = np.nan
                if per_date_dir:
                    for t, dst in enumerate(outs):
                        dst.write(values[t], window=win)
                else:
                    outs[0].write(values.reshape(-1, h, w), window=win)
                del values
                codes = np.array([c["value"] for c in CLASSES], dtype=np.uint16)[p.cls]
                lab.write(np.where(p.labelled & inside, codes, 0).astype(np.uint16)[None], window=win)
                done += h * w
                if progress:
                    progress(done, total)


def estimated_bytes(size: int, dates: int, scenes: int, scene_size: int) -> int:
    """About what :func:`synthesize` writes: float32 VV/VH per date (speckle compresses to 70-80 %), uint16 labels."""
    pixels = size * size + scenes * scene_size * scene_size
    return int(pixels * (dates * 2 * 4 * 0.7 + 2))


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def synthesize(out_dir: str | Path, size: int = 512, dates: int = 24, scenes: int = 10, seed: int = 0,
               scene_size: int = 192, year: int = 2021, overwrite: bool = False,
               progress: Callable[[str], None] | None = None,
               scene_progress: Callable[[int, int], None] | None = None) -> SynthResult:
    """Write a synthetic dataset: ``scenes`` small scenes of ``scene_size`` px split 60/20/20 into
    train/val/test (one training scene as a per-date directory), ``classes.json``, and a ``size`` px scene in
    ``scene/`` acquired the following year. Deterministic for a given seed. SIGTERM stops it like Ctrl-C (the file
    being written is removed); a full disk or an unwritable directory is an InputError naming the path."""
    out = Path(out_dir)
    with terminate_as_interrupt("the file being written was removed"), writing(out):
        return _synthesize(out, size=size, dates=dates, scenes=scenes, seed=seed, scene_size=scene_size, year=year,
                           overwrite=overwrite, progress=progress, scene_progress=scene_progress)


def _synthesize(out: Path, *, size: int, dates: int, scenes: int, seed: int, scene_size: int, year: int,
                overwrite: bool, progress: Callable[[str], None] | None,
                scene_progress: Callable[[int, int], None] | None) -> SynthResult:
    if size < 16 or scene_size < 16:
        raise InputError(f"scene sizes must be at least 16 px (got {size}, {scene_size})")
    if dates < 2:
        raise InputError(f"{{dates}} must be at least 2 (got {dates})", options=("dates",))
    if scenes < 3:
        raise InputError(f"{{scenes}} must be at least 3, one per split (got {scenes})", options=("scenes",))
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("the output directory is not empty (use {overwrite} to replace its contents)", out,
                         options=("overwrite",))
    if overwrite:  # remove what an earlier run wrote, so no stale scenes remain; nothing else is touched
        for name in ("train", "val", "test", "scene"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("classes.json", "synth.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    require_free_space(out, estimated_bytes(size, dates, scenes, scene_size), "the synthetic dataset")
    n_test = n_val = max(1, round(scenes * 0.2))
    n_train = scenes - n_val - n_test
    split_of = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    result = SynthResult(out)
    for index, split in enumerate(split_of):
        sid = f"synth_{index:03d}"
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, index, 1])
        per_dir = split == "train" and index == n_train - 1 and n_train > 1
        image = out / split / "images" / (sid if per_dir else f"{sid}.tif")
        if progress:
            progress(f"{split}/{sid} ({scene_size} px)")
        write_scene(image, out / split / "labels" / f"{sid}.tif", size=(scene_size, scene_size),
                    dates=acquisition_dates(rng, dates, year), seed=seed, scene_seed=index + 1,
                    origin=(400000.0 + index * 5000.0, 5100000.0), margin=0.15 if index % 3 == 1 else 0.0,
                    per_date_dir=per_dir)
        result.splits.setdefault(split, []).append(sid)
    (out / "scene").mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"scene ({size} px, year {year + 1})")
    result.scene_image, result.scene_labels = out / "scene" / "image.tif", out / "scene" / "labels.tif"
    write_scene(result.scene_image, result.scene_labels, size=(size, size),
                dates=acquisition_dates(np.random.default_rng([seed, 10**6, 1]), dates, year + 1), seed=seed,
                scene_seed=10**6, origin=(460000.0, 5080000.0), margin=0.06, progress=scene_progress)
    _write_json(out / "classes.json", CLASSES)
    _write_json(out / "synth.json", {"size": size, "dates": dates, "scenes": scenes, "seed": seed,
                                     "scene_size": scene_size, "year": year, "splits": result.splits})
    return result
