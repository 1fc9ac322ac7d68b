"""Writing maps: classified, confidence and probability GeoTIFFs as Cloud-Optimized GeoTIFFs, atomically.

A :class:`MapWriter` accepts window-by-window writes into a tiled, compressed staging GeoTIFF beside the
output, and on :meth:`MapWriter.commit` builds overviews and copies it to a COG (GDAL streams the copy), which
is renamed onto the output name. Until then nothing exists under the output name; an exception, Ctrl-C or
:meth:`MapWriter.abort` removes the temporaries, and temporaries of killed runs are removed by the next run.

The classified map embeds its class table: the band tag ``CLASS_TABLE`` (JSON list of ``{value, name, color}``),
one ``CLASS_<value>=<name>`` tag per class and, for uint8 maps only, a GDAL colour table; its names and colours
are also written to the sidecars of :mod:`slgt2_cli.io.legend` (``.aux.xml`` attribute table, QGIS ``.qml``).
Sidecars (:meth:`MapWriter.add_sidecar`) are staged beside the map and renamed into place with it on commit.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.atomic import discard, prepare_output, publish, temp_path, write_error, writing
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.legend import class_colormap, legend_sidecars

SidecarContent = str | Callable[[], str]
"""A sidecar's text, or a function giving it at commit time (e.g. areas counted while writing)."""

BLOCK = 512
GDAL_CACHE_MB = 256
"""GDAL block cache while building overviews and the COG (its default, 5 % of RAM, lets that grow with the map)."""
CONFIDENCE_NODATA = 0
"""Confidence = round(max probability × 255), at least 1 on valid pixels; 0 marks no data."""
PROBABILITY_SCALE = 254
PROBABILITY_NODATA = 255
"""Probabilities are stored as round(p × 254) (scale metadata 1/254 set) so 255 can mark no data."""

_DTYPES = (("uint8", 0, 255), ("uint16", 0, 65535), ("int32", -(2**31), 2**31 - 1))


NOT_GEOREFERENCED = ("none: the input carries no georeference (e.g. a seed .mat scene); rows and columns are "
                     "the input's, the transform is the identity")


def class_map_dtype(table: ClassTable) -> tuple[str, int]:
    """The smallest of uint8/uint16/int32 holding every label value plus a free nodata value, and that value."""
    values = set(int(v) for v in table.values)
    lo, hi = min(values), max(values)
    for dtype, dmin, dmax in _DTYPES:
        if lo < dmin or hi > dmax:
            continue
        for nodata in itertools.chain((dmax, dmin), range(dmax - 1, dmin, -1)):
            if nodata not in values:
                return dtype, nodata
    raise InputError(f"class values {lo}..{hi} do not fit a 32-bit integer map")


def gdal_cache(megabytes: float) -> rasterio.Env:
    """A rasterio environment whose GDAL block cache holds at most ``megabytes`` MB.

    rasterio passes an integer GDAL_CACHEMAX to GDAL in bytes: ``Env(GDAL_CACHEMAX=256)`` is a 256-byte cache,
    which turns every windowed read of a compressed tile into a fresh decode.
    """
    return rasterio.Env(GDAL_CACHEMAX=max(1, int(megabytes * (1 << 20))))


def overview_factors(width: int, height: int, block: int = BLOCK) -> list[int]:
    """Decimation factors 2, 4, ... until the smallest overview fits one block (none for a one-block map)."""
    factors, f = [], 2
    while max(width, height) / (f // 2) > block:
        factors.append(f)
        f *= 2
    return factors


class MapWriter:
    """Write a GeoTIFF on ``grid`` window by window; it appears under ``path`` only on :meth:`commit`.

    Writes go through GDAL's block cache; the caller bounds it (:func:`gdal_cache`, at least
    :attr:`cache_bytes`) so that memory stays flat however tall the map is.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: Grid,
        *,
        dtype: str,
        nodata: float | None,
        count: int = 1,
        overwrite: bool = False,
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
        descriptions: Sequence[str] | None = None,
        band_tags: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        scale: float | None = None,
        table: ClassTable | None = None,
        overview_resampling: str = "mode",
        compress: str = "DEFLATE",
    ):
        self.path = Path(path)
        if grid.crs is None:  # e.g. a seed .mat scene: say so in the file, GIS tools show it as a bare pixel grid
            tags = {**(tags or {}), "GEOREFERENCE": NOT_GEOREFERENCED}
        self.grid, self.dtype, self.nodata, self.count = grid, dtype, nodata, count
        self.table, self.overview_resampling, self.compress = table, overview_resampling, compress
        prepare_output(self.path, overwrite=overwrite, need_bytes=estimated_cog_bytes(grid, count, dtype) + (1 << 20))
        self._stage = temp_path(self.path, ".stage.tif")
        self._final = temp_path(self.path, ".tif")
        self._done = False
        self.overwrite = overwrite
        self._sidecars: dict[Path, SidecarContent] = {}
        self.class_observers: list[Callable[[Window, np.ndarray], None]] = []
        """Called with (window, model classes) by :meth:`write_classes` (e.g. an area tally)."""
        profile: dict[str, Any] = dict(
            driver="GTiff", width=grid.width, height=grid.height, count=count, dtype=dtype, crs=grid.crs,
            transform=grid.transform, nodata=nodata, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
            compress="DEFLATE", zlevel=1, bigtiff="IF_SAFER", interleave="band" if count > 1 else "pixel",
        )
        try:
            with warnings.catch_warnings():  # no georeference is said in the GEOREFERENCE tag, not as a warning
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self._stage, "w", **profile)
        except (RasterioIOError, OSError) as exc:
            discard(self._stage)
            raise write_error(exc, self.path) or InputError(f"cannot write the map ({exc})", self.path) from None
        try:
            if colormap:
                self._dst.write_colormap(1, colormap)
            for i, text in enumerate(descriptions or (), start=1):
                self._dst.set_band_description(i, text)
            if band_tags:
                self._dst.update_tags(1, **band_tags)
            if tags:
                self._dst.update_tags(**tags)
            if scale is not None:
                self._dst.scales = (scale,) * count
        except BaseException:
            self.abort()
            raise

    # --- convenience constructors -------------------------------------------------------------------------
    @classmethod
    def classes(cls, path: str | os.PathLike[str], grid: Grid, table: ClassTable, overwrite: bool = False,
                tags: dict[str, str] | None = None) -> MapWriter:
        """A classified map: pixel values are the table's label values, nodata outside them; with its legend
        sidecars (``.aux.xml``, ``.qml``). ``tags``: dataset metadata (provenance)."""
        dtype, nodata = class_map_dtype(table)
        band_tags = {"CLASS_TABLE": json.dumps(table.to_list())}
        band_tags.update({f"CLASS_{c.value}": c.name for c in table.classes})
        writer = cls(path, grid, dtype=dtype, nodata=nodata, overwrite=overwrite,
                     colormap=class_colormap(table, dtype, nodata), descriptions=["class"], band_tags=band_tags,
                     tags=tags, table=table)
        try:
            for sidecar, text in legend_sidecars(path, table, dtype).items():
                writer.add_sidecar(sidecar, text)
        except BaseException:
            writer.abort()
            raise
        return writer

    @classmethod
    def confidence(cls, path: str | os.PathLike[str], grid: Grid, overwrite: bool = False,
                   tags: dict[str, str] | None = None) -> MapWriter:
        """Confidence map: uint8 round(max probability × 255), 0 = no data (see :func:`confidence_bytes`)."""
        return cls(path, grid, dtype="uint8", nodata=CONFIDENCE_NODATA, overwrite=overwrite, descriptions=["confidence"],
                   scale=1 / 255, overview_resampling="average", tags=tags)

    @classmethod
    def probabilities(cls, path: str | os.PathLike[str], grid: Grid, table: ClassTable, overwrite: bool = False,
                      tags: dict[str, str] | None = None) -> MapWriter:
        """Per-class probabilities: one uint8 band per class (see :func:`probability_bytes`)."""
        return cls(path, grid, dtype="uint8", nodata=PROBABILITY_NODATA, count=len(table), overwrite=overwrite,
                   descriptions=[f"p({c.value}: {c.name})" for c in table.classes],
                   band_tags={"CLASS_TABLE": json.dumps(table.to_list())}, scale=1 / PROBABILITY_SCALE,
                   overview_resampling="average", tags=tags)

    def add_sidecar(self, path: str | os.PathLike[str], content: SidecarContent) -> Path:
        """A file written with the map: checked now (exists without overwrite -> InputError), renamed into place
        on :meth:`commit` just before the map, removed with it on failure."""
        path = prepare_output(path, overwrite=self.overwrite)
        self._sidecars[path] = content
        return path

    @property
    def sidecars(self) -> list[Path]:
        return list(self._sidecars)

    # --- writing ------------------------------------------------------------------------------------------
    @property
    def cache_bytes(self) -> int:
        """Block cache that lets row bands be written without recompressing a block: two rows of blocks."""
        across = -(-self.grid.width // BLOCK)
        return 2 * across * BLOCK * BLOCK * self.count * np.dtype(self.dtype).itemsize

    def write(self, window: Window, data: np.ndarray) -> None:
        """Write (h, w) data to band 1, or (count, h, w) data to all bands, at ``window``."""
        if self._done:
            raise RuntimeError("writer already committed or aborted")
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.shape[0] != self.count:
            raise ValueError(f"expected {self.count} bands, got {data.shape[0]}")
        with writing(self.path), gdal_errors_as_oserror():
            self._dst.write(data.astype(self.dtype, copy=False), window=window)

    def write_classes(self, window: Window, classes: np.ndarray) -> None:
        """Write model classes (IGNORE_INDEX = no data) as label values; for :meth:`classes` writers."""
        if self.table is None:
            raise RuntimeError("write_classes needs a writer made by MapWriter.classes")
        classes = np.asarray(classes)
        invalid = classes == IGNORE_INDEX
        labels = self.table.decode(np.where(invalid, 0, classes))
        self.write(window, np.where(invalid, self.nodata, labels))
        for observe in self.class_observers:
            observe(window, classes)

    def commit(self) -> Path:
        """Build overviews, write the COG and move it onto the output name."""
        if self._done:
            raise RuntimeError("writer already committed or aborted")
        placed: list[Path] = []
        try:
            factors = overview_factors(self.grid.width, self.grid.height)
            # Overviews by the COG driver itself: the same pixels as gdaladdo on the staging file (checked in
            # tests/test_gis_cog.py), in one pass instead of two (6000² uint16: 2.3 s instead of 3.8 s).
            overviews = {"OVERVIEWS": "AUTO", "OVERVIEW_COUNT": len(factors),
                         "OVERVIEW_RESAMPLING": self.overview_resampling.upper()} if factors else {"OVERVIEWS": "NONE"}
            with writing(self.path), gdal_errors_as_oserror(), gdal_cache(GDAL_CACHE_MB):
                self._dst.close()
                rasterio.shutil.copy(self._stage, self._final, driver="COG", BLOCKSIZE=BLOCK, COMPRESS=self.compress,
                                     BIGTIFF="IF_SAFER", **overviews)
            discard(self._stage)
            with writing(self.path):
                for path, tmp in self._stage_sidecars().items():
                    os.replace(tmp, path)
                    placed.append(path)
            publish(self._final, self.path, verify=verify_raster)  # never replaces a good map with a broken one
            placed.clear()
            discard(Path(f"{self._final}.aux.xml"))
        except BaseException:
            discard(*placed)  # no sidecar without its map
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Close and delete the temporaries; nothing is written under the output name."""
        self._done = True
        try:
            if not self._dst.closed:
                self._dst.close()
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
        discard(self._stage, Path(f"{self._stage}.ovr"), Path(f"{self._stage}.aux.xml"), self._final,
                Path(f"{self._final}.ovr.tmp"),
                Path(f"{self._final}.aux.xml"), *(temp_path(p, ".sidecar") for p in self._sidecars))

    def _stage_sidecars(self) -> dict[Path, Path]:
        """Write every sidecar to its temporary; {final path: temporary}."""
        staged = {}
        for path, content in self._sidecars.items():
            tmp = temp_path(path, ".sidecar")
            tmp.write_text(content() if callable(content) else content, encoding="utf-8")
            staged[path] = tmp
        return staged

    def __enter__(self) -> MapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.commit()


@contextmanager
def gdal_errors_as_oserror() -> Iterator[None]:
    """GDAL errors inside the block become OSError, so :func:`~slgt2_cli.io.atomic.writing` can tell a full disk
    or an unwritable file from a bug."""
    try:
        yield
    except CPLE_BaseError as exc:  # RasterioIOError already is an OSError; other RasterioErrors are bugs
        raise OSError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def verify_raster(path: str | os.PathLike[str]) -> None:
    """Read back the first and last block of every band and the smallest overview: OSError if any is unreadable
    (a write that failed silently, e.g. on a full disk, leaves a truncated file)."""
    try:
        with rasterio.open(path) as src:
            bh, bw = src.block_shapes[0]
            src.read(window=Window(0, 0, min(bw, src.width), min(bh, src.height)))
            row, col = (src.height - 1) // bh * bh, (src.width - 1) // bw * bw
            src.read(window=Window(col, row, src.width - col, src.height - row))
            levels = len(src.overviews(1))
        if levels:
            with rasterio.open(path, overview_level=levels - 1) as ov:
                ov.read()
    except (CPLE_BaseError, RasterioError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OSError(f"the written file cannot be read back: {text}") from exc


def confidence_bytes(probs: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K, h, w) probabilities -> (h, w) uint8 confidence, 1..255 on valid pixels and 0 elsewhere."""
    conf = np.clip(np.rint(probs.max(axis=0) * 255), 1, 255).astype(np.uint8)
    if valid is not None:
        conf[~valid] = CONFIDENCE_NODATA
    return conf


def probability_bytes(probs: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K, h, w) probabilities -> (K, h, w) uint8 = round(p × 254), 255 on invalid pixels."""
    out = np.clip(np.rint(probs * PROBABILITY_SCALE), 0, PROBABILITY_SCALE).astype(np.uint8)
    if valid is not None:
        out[:, ~valid] = PROBABILITY_NODATA
    return out


def read_class_table(path: str | os.PathLike[str]) -> ClassTable | None:
    """The class table embedded in a map by :meth:`MapWriter.classes`, or None if it has none."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError("not found", path)
    try:
        with rasterio.open(path) as src:
            text = src.tags(1).get("CLASS_TABLE")
    except RasterioIOError as exc:
        raise InputError(f"not a readable raster ({str(exc).splitlines()[0]})", path) from None
    except UnicodeDecodeError:
        raise InputError("its CLASS_TABLE tag is not UTF-8 text", path) from None
    if not text:
        return None
    try:
        return ClassTable.from_list(json.loads(text), path)
    except json.JSONDecodeError:
        raise InputError("its embedded CLASS_TABLE tag is not valid JSON", path) from None


def estimated_cog_bytes(grid: Grid, count: int, dtype: str) -> int:
    """Upper bound of a map's uncompressed size with overviews (used for the free-space check)."""
    return int(math.ceil(grid.width * grid.height * count * np.dtype(dtype).itemsize * 4 / 3))
