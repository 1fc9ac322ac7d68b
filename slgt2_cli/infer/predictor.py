"""Whole-scene tiled inference that streams: read, batch, infer, blend and write in row bands.

A background thread reads and prepares tiles (the same :func:`prepare_input` as training) while the main
thread runs the model; class probabilities of overlapping tiles are blended with a smooth window in a
:class:`BlendAccumulator` that only holds the rows not yet final, and each final band is written at once.
Peak memory depends on tile, batch and scene width, never on scene height. Tiles holding no valid pixel
are not computed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from rasterio.windows import Window

from slgt2_cli.checkpoint.format import Checkpoint
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.preprocess import prepare_input, valid_pixels
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.infer.device import parse_device
from slgt2_cli.infer.settings import DEFAULT_BATCH_SIZE, InferenceSettings
from slgt2_cli.infer.tiling import (
    BLEND_MODES,
    BlendAccumulator,
    Tile,
    TileGrid,
    blend_weights,
    check_tile_stride,
    logits_blended,
)
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.remote import is_remote
from slgt2_cli.io.units import is_generic_name
from slgt2_cli.runtime import autocast, resolve_precision, to_device

BAND_COLUMNS = 256
"""The reader reads and prepares a band of rows in windows this wide (bounds its working arrays)."""

IO_CACHE_MAX_MB = 1024
"""Upper bound of the GDAL block cache while a scene is read and written (see :func:`io_cache_mb`)."""

BandSink = Callable[[Window, np.ndarray, np.ndarray], None]
"""Receives each final band: (window, probabilities (K, h, W) float32, valid (h, W) bool)."""


class WindowSource(Protocol):
    """What the engine reads a scene from: a GeoTIFF stack (:class:`slgt2_cli.io.stacks.Stack`) or an xarray
    cube (:class:`slgt2_cli.io.cube.CubeSource`, numpy- or dask-backed). Only ``read`` touches pixels, one
    window at a time, so a source never has to hold its scene in memory."""

    path: Path | None
    grid: Grid
    dates: list | None
    polarisations: list[str]

    @property
    def num_channels(self) -> int: ...

    @property
    def num_dates(self) -> int: ...

    @property
    def model_units(self) -> str: ...

    def read(self, window: Window | None = None) -> np.ndarray:
        """Float32 ``(T, C, h, w)`` in model units, NaN where an observation has no data."""

    def band_cache_bytes(self, rows: int) -> int:
        """GDAL block cache that lets full-width bands of ``rows`` rows be read without decoding twice."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(parse_device(name))
    except (RuntimeError, ValueError) as exc:
        raise InputError(str(exc) if isinstance(exc, ValueError) else f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("{device} cuda was asked for but no CUDA GPU is available (use {device} cpu or auto)",
                         options=("device",))
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("{device} mps was asked for but MPS is not available", options=("device",))
    return device


@dataclass
class Predictor:
    """A model with everything needed to turn raw stack windows into class probabilities."""

    model: torch.nn.Module
    classes: ClassTable
    rule: TemporalRule
    norm: Normalization
    bands: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    tile: int = 224
    stride: int = 200
    batch_size: int = DEFAULT_BATCH_SIZE
    tta: bool = False
    blend: str = "cosine"
    units: str | None = None
    """The model's input units (``db`` for SAR, ``raw`` for other data); stacks must convert to them."""
    precision: str = "auto"
    """fp32, bf16 or auto (slgt2_cli.runtime.resolve_precision)."""

    def __post_init__(self) -> None:
        # resolved once (auto counts the model's parameters and reads the CPU flags), not for every batch
        self._precision = resolve_precision(self.precision, self.device, self.model)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, device: torch.device, tile: int | None = None,
                        stride: int | None = None, blend: str | None = None,
                        module: torch.nn.Module | None = None, **kwargs) -> Predictor:
        """``blend`` None: the checkpoint's own (``average`` for converted reference checkpoints), else cosine.
        ``module``: the network already built from ``ck`` (the Python API builds it once per model)."""
        tile = int(tile or ck.patch_size)
        kwargs["blend"] = str(blend or getattr(ck, "blend", None) or "cosine")
        if kwargs["blend"] not in BLEND_MODES:
            raise InputError(f"unknown {{blend}} {kwargs['blend']!r}; use one of {', '.join(BLEND_MODES)}",
                             options=("blend",))
        if stride is None:
            stride = ck.stride if tile == ck.patch_size else max(1, round(tile * ck.stride / ck.patch_size))
        model = (module if module is not None else ck.build_model()).to(device)
        return cls(model, ck.classes, ck.temporal, ck.normalization, ck.bands, device, tile, int(stride),
                   units=ck.units, **kwargs)

    @classmethod
    def from_settings(cls, ck: Checkpoint, settings: InferenceSettings, *, module: torch.nn.Module | None = None,
                      device: torch.device | None = None) -> Predictor:
        """The predictor of ``ck`` run as ``settings`` say (tile and stride checked); ``device`` overrides
        ``settings.device`` once resolved (a Dask worker picks its own GPU)."""
        if settings.tile is not None:
            check_tile_stride(settings.tile, settings.stride if settings.stride is not None else settings.tile)
        predictor = cls.from_checkpoint(ck, device if device is not None else resolve_device(settings.device),
                                        tile=settings.tile, stride=settings.stride, blend=settings.blend_name,
                                        module=module, batch_size=settings.batch_size, tta=settings.tta,
                                        precision=settings.precision.value)
        check_tile_stride(predictor.tile, predictor.stride)
        return predictor

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def check_stack(self, stack: WindowSource) -> None:
        """Everything that can be known to fail before any compute."""
        if stack.num_channels != self.norm.num_channels:
            raise InputError(
                f"the stack has {stack.num_channels} channels ({', '.join(stack.polarisations)}) but the model was "
                f"trained on {self.norm.num_channels} ({', '.join(self.bands)})", stack.path)
        known = [p for p in stack.polarisations if p and not is_generic_name(p)]  # 'band1': taken by position
        if known and len(known) == len(self.bands) and [p.upper() for p in known] != [b.upper() for b in self.bands]:
            raise InputError(f"the stack's polarisations {known} differ from the model's {self.bands}", stack.path)
        units = getattr(stack, "model_units", None)
        if self.units and units and units != self.units:
            raise InputError(f"the stack's values map to {units!r} but the model was trained on {self.units!r} "
                             "(override detection with {units})", stack.path, options=("units",))
        self.rule.check(stack)

    @torch.inference_mode()
    def infer(self, x: np.ndarray) -> np.ndarray:
        """(B, C, L, h, w) prepared input -> (B, K, h, w) float32 probabilities (raw logits when the blend
        averages logits, as the reference's slide inference does)."""
        batch = to_device(x, self.device)
        post = (lambda t: t.float()) if logits_blended(self.blend) else (lambda t: t.float().softmax(1))
        with autocast(self.device, self._precision):
            probs = post(self.model(batch))
            if self.tta:
                probs += post(self.model(batch.flip(-1))).flip(-1)
                probs += post(self.model(batch.flip(-2))).flip(-2)
                probs /= 3
        return probs.cpu().numpy()

    def predict(self, stack: WindowSource, sink: BandSink, progress: Callable[[int], None] | None = None) -> dict:
        """Stream ``stack`` through the model; ``sink`` gets every final row band in order. Returns stats.

        The one engine of ``slgt2 predict``, ``slgt2.predict`` and checkpoint evaluation, whatever the source."""
        self.check_stack(stack)
        grid = TileGrid(stack.grid.height, stack.grid.width, self.tile, self.stride)
        weights = blend_weights(self.tile, self.stride, self.blend)
        acc = BlendAccumulator(self.num_classes + 1, stack.grid.width)  # + 1: the validity channel
        stats = {"tiles": len(grid), "skipped": 0, "model_s": 0.0}
        reader = _TileReader(stack, grid, self.rule, self.norm, self.tile)
        # Batches run across tile-row boundaries (full batches are much cheaper per tile than a ragged one
        # per row); a band is written once every tile of the rows above it has been added.
        remaining: dict[int, int] = {}  # tile row -> tiles not yet added
        state = {"next_row": 0, "rows_done": 0}

        def flush_final_bands() -> None:
            while remaining.get(state["next_row"]) == 0:
                until = grid.final_rows_after(state["next_row"])
                if until > state["rows_done"]:
                    row0, probs = acc.pop_final(until)
                    classes = _softmax(probs[:-1]) if logits_blended(self.blend) else probs[:-1]
                    sink(Window(0, row0, stack.grid.width, until - row0), classes, probs[-1] > 0.5)
                    state["rows_done"] = until
                state["next_row"] += 1

        def run(batch: list) -> None:
            self._run([item[1:] for item in batch], acc, weights, stats)
            for r, *_ in batch:
                remaining[r] -= 1

        try:
            pending: list[tuple[int, Tile, np.ndarray, np.ndarray]] = []
            for r, row_tiles in reader:
                remaining[r] = len(row_tiles)
                for tile, x, valid in row_tiles:
                    if x is None:
                        stats["skipped"] += 1
                        acc.add(tile.row, tile.col, np.zeros((self.num_classes + 1, tile.height, tile.width),
                                                             np.float32), weights)
                        remaining[r] -= 1
                    else:
                        pending.append((r, tile, x, valid))
                    if len(pending) == self.batch_size:
                        run(pending)
                        pending = []
                flush_final_bands()
                if progress:
                    progress(len(row_tiles))
            if pending:
                run(pending)
            flush_final_bands()
        finally:
            reader.close()
        return stats

    def _run(self, pending, acc: BlendAccumulator, weights: np.ndarray, stats: dict) -> None:
        t0 = time.perf_counter()
        probs = self.infer(np.stack([x for _, x, _ in pending]))
        stats["model_s"] += time.perf_counter() - t0
        for (tile, _, valid), p in zip(pending, probs):
            h, w = tile.height, tile.width
            ext = np.concatenate([p[:, :h, :w], valid[None].astype(np.float32)])
            acc.add(tile.row, tile.col, ext, weights)


class _TileReader:
    """Reads and prepares tiles on a background thread, a row of tiles at a time, a few rows ahead.

    Each tile row's full-width band of rows is prepared once and the tiles are cut from it; the rows it shares
    with the band above are taken over, not read again. prepare_input works pixel by pixel, so the tiles equal
    tiles prepared one window at a time.
    """

    def __init__(self, stack, grid: TileGrid, rule: TemporalRule, norm: Normalization, tile: int, ahead: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._args = (stack, grid, rule, norm, tile)
        self._thread = threading.Thread(target=self._work, name="slgt2-tile-reader", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        _, grid, _, _, size = self._args
        try:
            band = None
            for r in range(len(grid.rows)):
                tiles = grid.row_tiles(r)
                band = self._next_band(band, tiles[0].row, tiles[0].height)
                if not self._put((r, [_cut(band, tile, size) for tile in tiles])):
                    return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._put(exc)

    def _next_band(self, band: _Band | None, row0: int, height: int) -> _Band:
        """The prepared band of rows ``row0 .. row0 + height``, taking over the rows it shares with ``band``."""
        stack, _, rule, norm, _ = self._args
        x = np.zeros((norm.num_channels, rule.length, height, stack.grid.width), np.float32)  # zero: no data
        valid = np.zeros((height, stack.grid.width), bool)
        keep = 0
        if band is not None and band.row0 <= row0:
            keep = max(0, min(band.row0 + band.valid.shape[0] - row0, height))
            x[:, :, :keep] = band.x[:, :, row0 - band.row0 : row0 - band.row0 + keep]
            valid[:keep] = band.valid[row0 - band.row0 : row0 - band.row0 + keep]
        if keep < height:
            self._prepare_into(x[:, :, keep:], valid[keep:], row0 + keep)
        return _Band(row0, x, valid)

    def _prepare_into(self, x: np.ndarray, valid: np.ndarray, row0: int) -> None:
        """Read and prepare rows ``row0 ..`` across the scene into ``x`` and ``valid``, BAND_COLUMNS at a time."""
        stack, _, rule, norm, _ = self._args
        height, width = valid.shape
        for c0 in range(0, width, BAND_COLUMNS):
            cols = slice(c0, min(c0 + BAND_COLUMNS, width))
            raw = stack.read(Window(c0, row0, cols.stop - c0, height))
            chunk_valid = valid_pixels(raw)
            # else it stays zero and invalid, and is not computed; the reference rule feeds no-data values to
            # the network like any other (they reach valid pixels of the same tile through the network)
            if chunk_valid.any() or rule.maps_every_pixel:
                x[..., cols], valid[:, cols] = prepare_input(raw, stack.dates, rule, norm, chunk_valid)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[int, list]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class _Band:
    """Prepared input of full-width rows ``row0 ..``: x ``(C, L, h, W)``, valid ``(h, W)``."""

    row0: int
    x: np.ndarray
    valid: np.ndarray


def _cut(band: _Band, tile: Tile, size: int) -> tuple[Tile, np.ndarray | None, np.ndarray]:
    """(tile, its input padded to size x size or None when it holds no valid pixel, its validity)."""
    rows = slice(tile.row - band.row0, tile.row - band.row0 + tile.height)
    cols = slice(tile.col, tile.col + tile.width)
    valid = band.valid[rows, cols]
    if not valid.any():
        return tile, None, valid
    x = band.x[:, :, rows, cols]
    if x.shape[-2:] != (size, size):  # scene smaller than a tile: pad (zero = the mean)
        x = np.pad(x, ((0, 0), (0, 0), (0, size - x.shape[-2]), (0, size - x.shape[-1])))
    return tile, x, valid


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (K, h, w) logits, float32."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def io_cache_mb(stack, tile: int, writers: Sequence = ()) -> float:
    """GDAL block cache for one scene: the input blocks under a tile row and the next (so each compressed block
    is decoded once, not once per overlapping tile row) plus two block rows of every output, plus 16 MB;
    at most IO_CACHE_MAX_MB. It grows with the scene's width, never with its height."""
    need = stack.band_cache_bytes(tile) + sum(w.cache_bytes for w in writers)
    return min(IO_CACHE_MAX_MB, need / (1 << 20) + 16)


def classes_from_probs(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(K, h, w) probabilities + validity -> model classes, IGNORE_INDEX where there was no data."""
    return np.where(valid, probs.argmax(0), IGNORE_INDEX)


def output_paths(stacks: Sequence[Path], output: Path) -> list[Path]:
    """One output per stack: ``output`` itself for one stack given as a .tif, else ``output/<stack>.tif``."""
    if len(stacks) == 1 and output.suffix.lower() in (".tif", ".tiff"):
        return [output]
    if output.suffix.lower() in (".tif", ".tiff"):
        raise InputError("several stacks need an output directory, not a .tif file", output)
    names = [Path(s).name.removesuffix(Path(s).suffix) if Path(s).is_file() or is_remote(s) else Path(s).name
             for s in stacks]
    if len(set(names)) != len(names):
        raise InputError("two stacks share a name; their outputs would collide", output)
    return [output / f"{n}.tif" for n in names]
