"""The Python API on xarray: ``import slgt2_cli as slgt2`` then ``open_stack``, ``load_model``, ``predict``,
``write_map`` and ``evaluate``.

``predict`` runs the engine of ``slgt2 predict`` (:meth:`Predictor.predict`, row band by row band) on any cube
that :func:`slgt2_cli.io.cube.cube_source` accepts, so a stack gives the same map through either door, and a
dask-backed cube is computed one window at a time. torch is imported only by the functions that need it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from rasterio.windows import Window

from slgt2_cli import __version__
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable, LabelCensus
from slgt2_cli.io.cube import CubeSource, cube_source, stack_dataarray
from slgt2_cli.io.geotiff import (
    MapWriter,
    class_map_dtype,
    confidence_bytes,
    gdal_cache,
    probability_bytes,
)
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.stacks import open_stack as _open_stack

if TYPE_CHECKING:
    import torch

    from slgt2_cli.checkpoint.format import Checkpoint
    from slgt2_cli.data.normalization import Normalization
    from slgt2_cli.data.temporal import TemporalRule
    from slgt2_cli.infer.batch import ManySummary
    from slgt2_cli.infer.settings import InferenceSettings
    from slgt2_cli.scoring.evaluator import Evaluation

__all__ = ["Model", "evaluate", "load_model", "open_stack", "predict", "predict_many", "write_map"]

WRITE_ROWS = 512
"""write_map copies results into the GeoTIFF writers this many rows at a time (one block row)."""


def open_stack(path: str | os.PathLike[str], units: str | None = None) -> xr.DataArray:
    """A stack (multi-band GeoTIFF or directory of per-date GeoTIFFs) as a lazy DataArray
    ``(time, band, y, x)`` of its stored values: nothing is read until asked for. ``units`` overrides detection
    and is kept in ``attrs['units']``; CRS, transform and nodata through rioxarray."""
    stack = _open_stack(path, units)
    return stack_dataarray(stack)


@dataclass(frozen=True, kw_only=True)
class Model:
    """A checkpoint loaded for prediction: the network (built once) and everything it expects of its input."""

    checkpoint: Checkpoint
    module: torch.nn.Module = field(repr=False)
    device: torch.device
    path: Path

    @property
    def classes(self) -> ClassTable:
        return self.checkpoint.classes

    @property
    def bands(self) -> list[str]:
        return list(self.checkpoint.bands)

    @property
    def units(self) -> str:
        return self.checkpoint.units

    @property
    def normalization(self) -> Normalization:
        return self.checkpoint.normalization

    @property
    def temporal(self) -> TemporalRule:
        return self.checkpoint.temporal

    @property
    def patch_size(self) -> int:
        return int(self.checkpoint.patch_size)

    @property
    def stride(self) -> int:
        return int(self.checkpoint.stride)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.checkpoint.model_config)

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, {len(self.classes)} classes, bands={self.bands}, units={self.units}, "
                f"temporal: {self.temporal.describe()}, tile {self.patch_size}/{self.stride}, device={self.device})")


def load_model(checkpoint: str | os.PathLike[str], device: str = "auto") -> Model:
    """Load a native checkpoint (from ``slgt2 train`` or ``convert-checkpoint``) for :func:`predict`."""
    from slgt2_cli.checkpoint.format import load_checkpoint
    from slgt2_cli.infer.predictor import resolve_device

    ck = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    return Model(checkpoint=ck, module=ck.build_model().to(dev), device=dev, path=Path(checkpoint))


def _source(model: Model, cube: xr.DataArray | xr.Dataset, units: str | None) -> CubeSource:
    """The cube as a window source with the model's bands in the model's order, dates checked."""
    source = cube_source(cube, units).match_bands(model.bands)
    if source.dates is None and model.temporal.mode == "composite":
        raise InputError("the cube's time dimension has no datetime coordinates, but the model composites by date "
                         f"({model.temporal.describe()})", hint="assign them: cube.assign_coords(time=dates)")
    return source


def predict(model: Model, cube: xr.DataArray | xr.Dataset, *, settings: InferenceSettings | None = None,
            confidence: bool = True, probabilities: bool = False, progress: bool = False, **options: Any) -> xr.Dataset:
    """Classify ``cube`` with ``model``: a Dataset with ``classes`` (y, x) in label values, ``confidence``
    (y, x) float32 (max probability, NaN = no data) and, if asked for, ``probabilities`` (class, y, x).
    ``options``: fields of :class:`~slgt2_cli.infer.settings.InferenceSettings` (``tile``, ``stride``,
    ``batch_size``, ``blend``, ``units``, ``tta``, ``precision``), over ``settings`` if given."""
    from slgt2_cli.infer.predictor import Predictor
    from slgt2_cli.infer.tiling import TileGrid

    settings = _settings(settings, options, "predict")
    source = _source(model, cube, settings.units_name)
    predictor = Predictor.from_settings(model.checkpoint, settings, module=model.module, device=model.device)
    predictor.check_stack(source)
    out = _Outputs(source.grid, model.classes, confidence, probabilities)
    total = len(TileGrid(source.grid.height, source.grid.width, predictor.tile, predictor.stride))
    from slgt2_cli.progress import progress_bar

    with gdal_cache(_cache_mb(source, predictor.tile)), progress_bar(total=total, unit="tile", desc="predict",
                                                                     enabled=progress, leave=False) as bar:
        stats = predictor.predict(source, out.sink, progress=bar.update)
    attrs = {"checkpoint": str(model.path), "tile": predictor.tile, "stride": predictor.stride,
             "blend": predictor.blend, "tta": int(settings.tta), "units": source.units, "bands": ",".join(model.bands),
             "tiles": stats["tiles"], "tiles_skipped": stats["skipped"], "slgt2_version": __version__,
             "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "checkpoint_provenance": json.dumps(model.checkpoint.provenance, default=str)}
    return out.dataset(source, model.classes, attrs)


def predict_many(checkpoint_or_model: Model | str | os.PathLike[str], stacks: Any, out_dir: str | os.PathLike[str],
                 client: Any = None, **options: Any) -> ManySummary:
    """Map many stacks as ``slgt2 predict-many`` does: ``out_dir/<stack name>.tif`` per stack (exactly what
    ``slgt2 predict`` writes) and ``out_dir/summary.json``; returns the summary (``.to_dict()`` is the JSON,
    ``.ok`` says whether every input succeeded, ``.scenes`` the per-input reports).

    ``client``: a ``distributed.Client`` to run the scenes on (its workers load the checkpoint from its path, once
    each); else ``cluster="local:2"`` or a scheduler address, else in this process with the model loaded once.
    ``options``: the fields of :class:`~slgt2_cli.infer.settings.InferenceSettings` (or ``settings=``), and
    ``confidence``, ``probabilities``, ``areas``, ``stac``, ``overwrite``, ``strict``, ``progress``,
    ``list_file``, ``cluster``, ``scheduler_file`` as on the command line."""
    from slgt2_cli.infer.batch import ManyConfig
    from slgt2_cli.infer.batch import predict_many as run
    from slgt2_cli.infer.settings import SETTINGS_FIELDS

    model = checkpoint_or_model if isinstance(checkpoint_or_model, Model) else None
    base = options.pop("settings", None)
    if model is not None and "device" not in options and base is None:
        options["device"] = str(model.device)
    settings = _settings(base, {k: v for k, v in options.items() if k in SETTINGS_FIELDS}, "predict_many")
    rest = {k: v for k, v in options.items() if k not in SETTINGS_FIELDS}
    rest.setdefault("progress", False)
    stacks = [stacks] if isinstance(stacks, (str, os.PathLike)) else list(stacks)
    config = ManyConfig(checkpoint=Path(model.path if model is not None else checkpoint_or_model),
                        out_dir=Path(out_dir), stacks=[Path(s) for s in stacks], settings=settings, **rest)
    local = client is None and config.cluster is None and config.scheduler_file is None
    return run(config, client=client, model=model if local else None)


def _settings(settings: InferenceSettings | None, options: dict[str, Any], where: str) -> InferenceSettings:
    """``settings`` with the keyword ``options`` over it; a TypeError names an unknown keyword."""
    from slgt2_cli.infer.settings import settings_from

    settings, rest = settings_from(options, settings)
    if rest:
        raise TypeError(f"{where}() got unexpected keyword argument(s): {', '.join(sorted(rest))}")
    return settings


def _cache_mb(source: CubeSource, tile: int) -> float:
    from slgt2_cli.infer.predictor import io_cache_mb

    return io_cache_mb(source, tile)


class _Outputs:
    """In-memory result arrays, filled row band by row band by the engine's sink."""

    def __init__(self, grid: Grid, table: ClassTable, confidence: bool, probabilities: bool):
        self.dtype, self.nodata = class_map_dtype(table)
        self.table = table
        self.classes = np.full(grid.shape, self.nodata, self.dtype)
        self.confidence = np.full(grid.shape, np.nan, np.float32) if confidence else None
        self.probabilities = np.full((len(table),) + grid.shape, np.nan, np.float32) if probabilities else None

    def sink(self, window: Window, probs: np.ndarray, valid: np.ndarray) -> None:
        from slgt2_cli.infer.predictor import classes_from_probs

        rows = slice(window.row_off, window.row_off + window.height)
        classes = classes_from_probs(probs, valid)
        invalid = classes == IGNORE_INDEX
        self.classes[rows] = np.where(invalid, self.nodata, self.table.decode(np.where(invalid, 0, classes)))
        if self.confidence is not None:
            self.confidence[rows] = np.where(valid, probs.max(axis=0), np.nan)
        if self.probabilities is not None:
            self.probabilities[:, rows] = np.where(valid, probs, np.nan)

    def dataset(self, source: CubeSource, table: ClassTable, attrs: dict[str, Any]) -> xr.Dataset:
        coords = {"y": source.cube["y"].values, "x": source.cube["x"].values}
        classes = xr.DataArray(self.classes, dims=("y", "x"), coords=coords, name="classes", attrs={
            "long_name": "land-cover class", "class_table": json.dumps(table.to_list()),
            "flag_values": table.values.tolist(), "flag_meanings": " ".join(n.replace(" ", "_") for n in table.names),
            "flag_colors": " ".join(c.color for c in table.classes)})
        variables = {"classes": classes.rio.write_nodata(self.nodata, encoded=False)}
        if self.confidence is not None:
            variables["confidence"] = xr.DataArray(self.confidence, dims=("y", "x"), coords=coords, attrs={
                "long_name": "confidence (max class probability)"}).rio.write_nodata(np.nan, encoded=False)
        if self.probabilities is not None:
            variables["probabilities"] = xr.DataArray(
                self.probabilities, dims=("class", "y", "x"), coords={"class": table.values, **coords},
                attrs={"long_name": "class probability", "class_names": json.dumps(list(table.names))},
            ).rio.write_nodata(np.nan, encoded=False)
        ds = xr.Dataset(variables, attrs=attrs).rio.write_crs(source.grid.crs)
        return ds.rio.write_transform(source.grid.transform)


def _table_of(result: xr.Dataset | xr.DataArray, classes: Any = None) -> ClassTable:
    """``classes`` (a ClassTable, a JSON file or a list of {value, name, color}) else the result's own table."""
    if isinstance(classes, ClassTable):
        return classes
    if isinstance(classes, (str, os.PathLike)):
        return ClassTable.load(classes)
    if classes is not None:
        return ClassTable.from_list(list(classes))
    da = result["classes"] if isinstance(result, xr.Dataset) else result
    text = da.attrs.get("class_table")
    if not text:
        raise InputError("the prediction carries no class table (attrs['class_table']); pass classes=")
    return ClassTable.from_list(json.loads(text))


def _grid_of(da: xr.DataArray, what: str) -> Grid:
    if da.rio.crs is None:
        raise InputError(f"the {what} has no CRS", hint="set one with .rio.write_crs(...)")
    return Grid(da.rio.crs, da.rio.transform(), int(da.sizes[da.rio.x_dim]), int(da.sizes[da.rio.y_dim]))


def write_map(result: xr.Dataset, path: str | os.PathLike[str], *, confidence: str | os.PathLike[str] | None = None,
              probabilities: str | os.PathLike[str] | None = None, overwrite: bool = False) -> Path:
    """Write a :func:`predict` result as ``slgt2 predict`` does: a COG class map with its colours and class
    table, and, where paths are given, the uint8 confidence and probability COGs. Returns ``path``."""
    if not isinstance(result, xr.Dataset) or "classes" not in result:
        raise InputError("write_map needs the Dataset that slgt2.predict returns (with a 'classes' variable)")
    for name, wanted in (("confidence", confidence), ("probabilities", probabilities)):
        if wanted is not None and name not in result:
            raise InputError(f"the result has no {name}; predict with {name}=True to write it")
    table, classes = _table_of(result), result["classes"]
    grid = _grid_of(classes, "result")
    with MapWriter.classes(path, grid, table, overwrite=overwrite) as maps:
        conf = MapWriter.confidence(confidence, grid, overwrite) if confidence is not None else None
        prob = (MapWriter.probabilities(probabilities, grid, table, overwrite) if probabilities is not None else None)
        try:
            for r0 in range(0, grid.height, WRITE_ROWS):
                rows = slice(r0, min(r0 + WRITE_ROWS, grid.height))
                window = Window(0, r0, grid.width, rows.stop - r0)
                maps.write(window, np.asarray(classes[rows].values))
                if conf is not None:
                    c = np.asarray(result["confidence"][rows].values)
                    conf.write(window, confidence_bytes(np.nan_to_num(c)[None], np.isfinite(c)))
                if prob is not None:
                    p = np.asarray(result["probabilities"][:, rows].values)
                    prob.write(window, probability_bytes(np.nan_to_num(p), np.isfinite(p).all(axis=0)))
        except BaseException:
            for w in (conf, prob):
                if w is not None:
                    w.abort()
            raise
        for w in (conf, prob):
            if w is not None:
                w.commit()
    return Path(path)


def _labels_on(labels: xr.DataArray, pred: xr.DataArray) -> xr.DataArray:
    """``labels`` on the prediction's grid: as they are if the grids agree, else reprojected (nearest)."""
    if "band" in labels.dims:
        if labels.sizes["band"] != 1:
            raise InputError(f"the labels have {labels.sizes['band']} bands; expected one")
        labels = labels.squeeze("band", drop=True)
    if labels.ndim != 2:
        raise InputError(f"the labels must be a 2-D (y, x) DataArray, got dims {labels.dims}")
    if _grid_of(labels, "labels").same_as(_grid_of(pred, "prediction")):
        return labels
    from rasterio.enums import Resampling

    return labels.rio.reproject_match(pred, resampling=Resampling.nearest)


def evaluate(prediction: xr.DataArray | xr.Dataset, labels: xr.DataArray, classes: Any = None) -> Evaluation:
    """Score a class map against labels (DataArrays, label values) as ``slgt2 evaluate`` does: the same
    :class:`Evaluation` (``metrics`` dict and ``text`` table). Labels on another grid are reprojected."""
    from slgt2_cli.scoring.evaluator import report
    from slgt2_cli.scoring.metrics import ConfusionMatrix

    table = _table_of(prediction, classes)
    pred = prediction["classes"] if isinstance(prediction, xr.Dataset) else prediction
    labels = _labels_on(labels, pred)
    cm, census, foreign = ConfusionMatrix(len(table)), LabelCensus(table), 0
    p_nodata, l_nodata = pred.rio.nodata, labels.rio.nodata
    for r0 in range(0, pred.sizes[pred.rio.y_dim], WRITE_ROWS):
        values = np.asarray(pred.isel({pred.rio.y_dim: slice(r0, r0 + WRITE_ROWS)}).values)
        truth = np.asarray(labels.isel({labels.rio.y_dim: slice(r0, r0 + WRITE_ROWS)}).values)
        valid = _valid(values, p_nodata)
        encoded = table.encode(np.where(valid, values, 0), valid)
        foreign += int((valid & (encoded == IGNORE_INDEX)).sum())
        label_valid = _valid(truth, l_nodata)
        cm.update(encoded, census.add(np.where(label_valid, truth, 0), label_valid))
    census.check("in the labels", None, "pass the class table the labels use with classes=")
    if cm.total == 0:
        raise InputError(f"no pixel has both a prediction and a label value from the class table "
                         f"({table.describe_values()})")
    notes = [f"{foreign:,} predicted pixels have values outside the class table and were left out"] if foreign else []
    return report(cm, table, notes=notes, source={"prediction": str(pred.name), "labels": str(labels.name)})


def _valid(values: np.ndarray, nodata: float | None) -> np.ndarray:
    valid = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if nodata is not None and not np.isnan(nodata):
        valid &= values != nodata
    return valid



# --- training (the engine of `slgt2 train`) ----------------------------------------------------------------------
def train(dataset: str | os.PathLike[str], out: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = False, threads: int | None = None,
          **options: Any) -> Any:
    """Train (or fine-tune, or resume and extend) a run into ``out`` as ``slgt2 train`` does, with the same
    configuration: ``config`` a YAML/TOML file, ``options`` configuration fields (``preset="tiny"``,
    ``iterations=600``, ``init_checkpoint="runs/a/best.pt"``, ``freeze_encoder=50``, ``normalization="computed"``;
    docs/configuration.md lists them). Returns the :class:`~slgt2_cli.train.loop.TrainResult` (``checkpoint``,
    ``best_miou``, ``step``...); bad input raises :class:`InputError` with the message the command prints."""
    from slgt2_cli.train.config import resolve_config
    from slgt2_cli.train.loop import train as run_training

    resolved = resolve_config(Path(dataset), Path(out), Path(config) if config is not None else None,
                              resume=resume or None, overwrite=overwrite or None, progress=progress, **options)
    if threads is not None:
        from slgt2_cli.runtime import prepare_compute

        prepare_compute(threads)
    return run_training(resolved)


__all__ += ["train"]
