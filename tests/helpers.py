"""The one module of test data: tiny georeferenced rasters (real CRS, 10 m pixels), SAR stacks in both layouts,
dataset directories and native checkpoints of an untrained `tiny` model. Every test writes its rasters here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin

from models import create_model
from slgt2_cli.checkpoint.format import Checkpoint, save_checkpoint
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid

UTM33 = CRS.from_epsg(32633)
ORIGIN = (500000.0, 5100000.0)


def utm_grid(width: int, height: int, res: float = 10.0, origin: tuple[float, float] = ORIGIN) -> Grid:
    """A north-up UTM 33N grid of ``res`` m pixels whose top-left corner is ``origin``."""
    return Grid(UTM33, Affine(res, 0, origin[0], 0, -res, origin[1]), width, height)


def write_raster(path: Path, data: np.ndarray, grid: Grid | None = None, nodata=None, *, crs: CRS | None = None,
                 transform=None, descriptions: Sequence[str] | None = None, band_tags: Sequence[dict] | None = None,
                 tags: dict | None = None, georeferenced: bool = True, **band1_tags: str) -> Path:
    """Write (bands, h, w) or (h, w) ``data`` as a GeoTIFF on ``grid`` (else ``crs``/``transform``: 10 m UTM 33N
    at ORIGIN by default; ``georeferenced=False``: none, as plain image patches), with band descriptions, per-band
    tags, dataset ``tags`` and band-1 tags (keywords)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    if grid is not None:  # the grid's CRS, even none
        crs, transform = grid.crs, grid.transform
    elif not georeferenced:
        crs, transform = None, Affine.identity()
    else:
        crs = crs if crs is not None else UTM33
        transform = transform or from_origin(*ORIGIN, 10.0, 10.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        for b, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(b, text)
        for b, t in enumerate(band_tags or [], start=1):
            dst.update_tags(b, **t)
        if tags:
            dst.update_tags(**tags)
        if band1_tags:
            dst.update_tags(1, **band1_tags)
    return path


def dates_from(start: dt.date, n: int, step: int = 12) -> list[dt.date]:
    return [start + dt.timedelta(days=step * i) for i in range(n)]


def write_multiband(path: Path, values: np.ndarray, dates: Sequence[dt.date], pols=("VV", "VH"), **kw) -> Path:
    """values (T, C, h, w) -> one date-major multi-band file with ``<POL>_<YYYY-MM-DD>`` descriptions."""
    t, c, h, w = values.shape
    names = [f"{p}_{d.isoformat()}" for d in dates for p in pols]
    return write_raster(path, values.reshape(t * c, h, w), descriptions=names, **kw)


def write_dataset(root: Path, scenes: dict[str, list[np.ndarray]], classes: list[dict], dates: Sequence[dt.date]
                  ) -> Path:
    """A dataset directory: ``scenes[split] = [(values (T,C,h,w), labels (h,w)), ...]``."""
    for split, items in scenes.items():
        for i, (values, labels) in enumerate(items):
            write_multiband(root / split / "images" / f"s{i}.tif", values, dates)
            write_raster(root / split / "labels" / f"s{i}.tif", labels, nodata=0)
    (root / "classes.json").write_text(json.dumps(classes))
    return root


DATES = [dt.date(2021, 5, 1), dt.date(2021, 5, 13), dt.date(2021, 6, 6), dt.date(2021, 7, 12)]
TABLE = ClassTable.from_list([{"value": 1110, "name": "winter wheat"}, {"value": 2000, "name": "grassland"},
                              {"value": 3100, "name": "forest"}])


def sar_values(height: int, width: int, seed: int = 0, dates=DATES) -> np.ndarray:
    """(T, 2, h, w) float32 dB with some spatial structure (so a model output varies across the scene)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    field = np.sin(yy / 9.0) + np.cos(xx / 13.0)
    vv = -10 + 3 * field[None] + rng.normal(0, 1.0, (len(dates), height, width))
    vh = -17 + 2 * field[None] + rng.normal(0, 1.0, (len(dates), height, width))
    return np.stack([vv, vh], axis=1).astype(np.float32)


def write_stack(path: Path, values: np.ndarray, dates=DATES, per_date_dir: bool = False, nodata=float("nan"),
                origin=(500000.0, 5100000.0), **creation) -> Path:
    """A multi-band stack (bands ``VV_<date>, VH_<date>, ...``) or a directory of per-date files;
    ``creation``: more GeoTIFF creation options (e.g. tiled=True, blockxsize=32, blockysize=32)."""
    t, c, h, w = values.shape
    grid = utm_grid(w, h, origin=origin)
    profile = dict(driver="GTiff", width=w, height=h, dtype="float32", crs=grid.crs, transform=grid.transform,
                   nodata=nodata, **creation)
    if per_date_dir:
        path.mkdir(parents=True)
        for i, d in enumerate(dates):
            with rasterio.open(path / f"S1_{d:%Y%m%d}.tif", "w", count=c, **profile) as dst:
                dst.write(values[i])
                for b, pol in enumerate(("VV", "VH"), start=1):
                    dst.set_band_description(b, pol)
                dst.update_tags(UNITS="dB")
        return path
    with rasterio.open(path, "w", count=t * c, **profile) as dst:
        dst.write(values.reshape(t * c, h, w))
        for i, d in enumerate(dates):
            for j, pol in enumerate(("VV", "VH")):
                dst.set_band_description(1 + i * c + j, f"{pol}_{d.isoformat()}")
        dst.update_tags(UNITS="dB")
    return path


def make_checkpoint(path: Path, constant_class: int | None = None, seed: int = 0, patch: int = 64,
                    stride: int = 48, table: ClassTable = TABLE, dates=DATES) -> Path:
    """A native checkpoint of an untrained tiny model; ``constant_class`` makes it predict that class everywhere."""
    torch.manual_seed(seed)
    model = create_model("tiny", num_classes=len(table))
    if constant_class is not None:
        head = model.seg_head[0]
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[constant_class] = 20.0
    checkpoint = Checkpoint(
        model_config=model.config, state_dict=model.state_dict(), classes=table,
        normalization=Normalization((-10.0, -17.0), (3.0, 2.5)).to_dict(),
        temporal=TemporalRule.fit([dates], length=16).to_dict(), bands=["VV", "VH"], units="db",
        patch_size=patch, stride=stride,
    )
    save_checkpoint(checkpoint, path)
    return path


def write_mts12(root: Path, t: int = 5, size: int = 24, splits: Sequence[str] = ("train", "val", "test"),
                scaled: bool = False) -> Path:
    """A seed-format MTS12 dataset (``s1/<split>/<id>.mat`` field ``band`` (T, H, W, 2), ``label/<split>/
    <id>_label.mat``), two scenes per split: float dB values, or 1..254 integers as the distributed files."""
    import scipy.io

    rng = np.random.default_rng(0)
    for split in splits:
        for name in ("a", "b"):
            if scaled:
                band = rng.integers(1, 255, (t, size, size, 2)).astype(np.uint8)
            else:
                band = rng.normal(-12, 3, (t, size, size, 2)).astype(np.float32)
            label = rng.integers(0, 9, (size, size)).astype(np.uint8)
            (root / "s1" / split).mkdir(parents=True, exist_ok=True)
            (root / "label" / split).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "s1" / split / f"{name}.mat", {"band": band})
            scipy.io.savemat(root / "label" / split / f"{name}_label.mat", {"label": label})
    return root


def write_brandenburg_tree(root: Path, scenes: dict[str, dict[str, np.ndarray]], splits: dict[str, Sequence[int]],
                           period: str = "s1") -> Path:
    """The Brandenburg tree exactly as distributed: ``trainval_vhvv/VHVV_<id>.mat`` (field ``data`` (T, H, W, 2)
    in dB), ``trainval_label/label_<period>_<id>.mat`` (field ``label``), the same under ``test_*``, and
    ``split/<split>.txt`` with the given indices into the sorted listing of the split's folder.

    ``scenes`` maps ``trainval`` / ``test`` to {4-digit id: data}; labels are ``data``'s parcels, see below."""
    import scipy.io

    for folder, arrays in scenes.items():
        (root / f"{folder}_vhvv").mkdir(parents=True, exist_ok=True)
        (root / f"{folder}_label").mkdir(parents=True, exist_ok=True)
        for sid, data in arrays.items():
            t, h, w, _ = data.shape
            label = ((np.arange(h)[:, None] // 4 + np.arange(w)[None] // 4 + int(sid)) % 16).astype(np.uint8)
            scipy.io.savemat(root / f"{folder}_vhvv" / f"VHVV_{sid}.mat", {"data": data}, do_compression=True)
            scipy.io.savemat(root / f"{folder}_label" / f"label_{period}_{sid}.mat", {"label": label},
                             do_compression=True)
    (root / "split").mkdir(parents=True, exist_ok=True)
    for split, indices in splits.items():
        (root / "split" / f"{split}.txt").write_text("".join(f"{i}\n" for i in indices))
    return root


def brandenburg_data(t: int = 41, size: int = 32, seed: int = 0) -> np.ndarray:
    """One Brandenburg-like scene: (T, H, W, 2) float32 dB, VH about -16, VV about -10."""
    rng = np.random.default_rng(seed)
    return (np.array([-16.4, -10.6], np.float32) + rng.normal(0, 3, (t, size, size, 2))).astype(np.float32)


FLOOD_CLASSES = [{"value": 1, "name": "not flooded", "color": "#a0a0a0"},
                 {"value": 2, "name": "flooded", "color": "#1f5fff"}]


def write_flood_dataset(root: Path, scenes: dict[str, int], size: int = 128, seed: int = 0,
                        contrast_db: float = 4.0) -> Path:
    """A real-like two-date flood set: uint8 VV (before, after), not georeferenced, placeholder dates, smooth flood
    blobs that darken the second date by ``contrast_db`` under single-look speckle (so one pixel alone is a weak
    cue and its neighbourhood a strong one). ``scenes[split]`` scenes of ``size``² per split."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    names = ["VV_2000-01-01", "VV_2000-01-13"]
    for split, count in scenes.items():
        for i in range(count):
            blobs = gaussian_filter(rng.normal(size=(size, size)), 8)
            flooded = blobs > np.quantile(blobs, 0.75)
            base = -9 + 2 * gaussian_filter(rng.normal(size=(size, size)), 4)
            speckle = 10 * np.log10(rng.gamma(1.0, 1.0, size=(2, size, size)))
            db = np.stack([base, base - contrast_db * flooded]) + speckle
            stored = np.clip(np.round((db + 35) * 5), 1, 255).astype(np.uint8)
            write_raster(root / split / "images" / f"s{i}.tif", stored, georeferenced=False, descriptions=names)
            write_raster(root / split / "labels" / f"s{i}.tif", (1 + flooded).astype(np.uint8), georeferenced=False)
    (root / "classes.json").write_text(json.dumps(FLOOD_CLASSES))
    return root


def help_entries(text: str) -> dict[str, list[str]]:
    """``--help`` output as {names line: its text lines} for the Arguments, Options and Commands sections, in either
    layout (text beside the names, or indented under them)."""
    entries: dict[str, list[str]] = {}
    section, current = "", None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section, current = line.rstrip(":"), None
        elif section in ("Arguments", "Options", "Commands") and line.startswith("  ") and line[2] != " ":
            names, _, rest = line[2:].partition("  ")
            current = names.strip()
            entries[current] = [rest.strip()] if rest.strip() else []
        elif line.strip() and current is not None:
            entries[current].append(line.strip())
    return entries
