"""Scoring a classified map against a label raster, window by window, whatever the scene size.

The label raster is aligned onto the prediction's grid (:func:`open_aligned_labels`), both are read in
block-aligned chunks and fed to a streaming :class:`ConfusionMatrix`; :func:`report` turns any confusion
matrix (from maps, or from a predictor scoring a dataset split) into the terminal table and the files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.infer.settings import InferenceSettings
from slgt2_cli.io.atomic import check_distinct, prepare_output
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable, LabelCensus
from slgt2_cli.io.geotiff import gdal_cache, read_class_table
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.labels import open_aligned_labels
from slgt2_cli.io.stacks import RASTER_ERRORS, _reason, open_raster
from slgt2_cli.scoring.areas import AreaComparison
from slgt2_cli.scoring.metrics import ConfusionMatrix, compute_metrics
from slgt2_cli.scoring.report import format_table, plot_confusion, write_csv, write_json

CHUNK_PIXELS = 1 << 20
"""Pixels read per step (~1 Mpx: a few tens of MB of working arrays)."""
GDAL_CACHE_MB = 16
"""Windows are whole blocks, each read once: a small cache does (8192² map: 3.1 s with 16 MB or 128 MB)."""


@dataclass(frozen=True)
class EvaluateConfig:
    """``slgt2 evaluate PREDICTION LABELS``: what to score and where to write the results."""

    prediction: Path
    labels: Path
    classes: Path | None = None
    json_path: Path | None = None
    csv_path: Path | None = None
    plot_path: Path | None = None
    resampling: str = "nearest"


@dataclass(frozen=True, kw_only=True)
class CheckpointEvaluateConfig:
    """``slgt2 evaluate --checkpoint CK --dataset DATASET``: predict a split with tiled inference and score it."""

    checkpoint: Path
    dataset: Path
    split: str = "test"
    json_path: Path | None = None
    csv_path: Path | None = None
    plot_path: Path | None = None
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    """Tile, stride, batch, device, units and blend as in ``predict`` (None: the checkpoint's)."""
    progress: bool = True


@dataclass(frozen=True)
class Evaluation:
    """The result of an evaluation: scores (the JSON content) and the terminal text."""

    metrics: dict[str, Any]
    text: str


def chunk_windows(width: int, height: int, block: tuple[int, int], target: int = CHUNK_PIXELS) -> Iterator[Window]:
    """Windows covering the raster, made of whole blocks (``block`` = (rows, cols)), about ``target`` pixels."""
    bh, bw = max(1, min(block[0], height)), max(1, min(block[1], width))
    nbw = max(1, min(-(-width // bw), target // (bh * bw)))
    cw = min(nbw * bw, width)
    ch = max(1, target // (bh * cw)) * bh
    for row in range(0, height, ch):
        for col in range(0, width, cw):
            yield Window(col, row, min(cw, width - col), min(ch, height - row))


def resolve_class_table(classes: Path | None, prediction: Path) -> ClassTable:
    """``--classes`` if given, else the table embedded in the prediction; a clear error if neither."""
    if classes is not None:
        return ClassTable.load(classes)
    table = read_class_table(prediction)
    if table is None:
        raise InputError("has no embedded class table; pass {classes} classes.json", prediction, options=("classes",))
    return table


def _open_prediction(path: Path) -> rasterio.io.DatasetReader:
    src = open_raster(path, "prediction not found")
    if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        src.close()
        raise InputError(f"a prediction must be a single-band integer class map (has {src.count} band(s), "
                         f"{src.dtypes[0]})", path)
    return src


def score_map(
    prediction: Path, labels: Path, table: ClassTable, resampling: str = "nearest", chunk_pixels: int = CHUNK_PIXELS,
    areas: AreaComparison | None = None,
) -> tuple[ConfusionMatrix, list[str]]:
    """Confusion matrix of a classified map against labels aligned onto its grid, plus notes for the user.

    Left out: prediction nodata, label nodata, and values of either that are not in the class table.
    ``areas``: also tallies reference and mapped area per class over the scored pixels.
    """
    cm = ConfusionMatrix(len(table))
    census = LabelCensus(table)
    foreign = 0
    with gdal_cache(GDAL_CACHE_MB), _open_prediction(Path(prediction)) as src:
        grid = Grid.of(src)
        nodata = src.nodata
        with open_aligned_labels(labels, grid, resampling) as aligned:
            for window in chunk_windows(src.width, src.height, src.block_shapes[0], chunk_pixels):
                try:
                    values = src.read(1, window=window)
                except RASTER_ERRORS as exc:
                    raise InputError(f"damaged or truncated raster ({_reason(exc)})", prediction) from None
                valid = values != nodata if nodata is not None else None
                pred = table.encode(values, valid)
                known = pred != IGNORE_INDEX
                foreign += int((~known if valid is None else (valid & ~known)).sum())
                label_values, label_valid = aligned.read(window)
                reference = census.add(label_values, label_valid)
                cm.update(pred, reference)
                if areas is not None:
                    areas.add(window, pred, reference)
    notes = []
    if foreign:
        notes.append(f"{foreign:,} predicted pixels have values outside the class table and were left out")
    census.check("in the label raster", labels, "pass the class table the labels use with {classes}", ("classes",))
    if cm.total == 0:
        raise InputError(
            "no pixel has both a prediction and a label value from the class table "
            f"(class values: {', '.join(map(str, table.values[:10]))}{' …' if len(table) > 10 else ''})",
            labels,
        )
    return cm, notes


def report(
    cm: ConfusionMatrix,
    table: ClassTable,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    plot_path: Path | None = None,
    notes: Sequence[str] = (),
    source: dict[str, Any] | None = None,
    areas: AreaComparison | None = None,
) -> Evaluation:
    """Scores of ``cm`` as text, written to whichever of the JSON / CSV / PNG paths are given (atomically);
    with ``areas``, the reference vs mapped area per class too (JSON key ``areas``)."""
    metrics = compute_metrics(cm, table)
    if source:
        metrics["source"] = source
    if areas is not None:
        metrics["areas"] = areas.to_dict(table)
    if notes:
        metrics["notes"] = list(notes)
    written = []  # (path, what), closing the text in the form every command's last lines take: wrote PATH  (what)
    if json_path is not None:
        written.append((write_json(metrics, json_path), "all scores, JSON"))
    if csv_path is not None:
        written.append((write_csv(metrics, csv_path), "per-class scores, CSV"))
    if plot_path is not None:
        written.append((plot_confusion(metrics, plot_path), "confusion matrix"))
    text = format_table(metrics, notes)
    if areas is not None:
        text += "\n\n" + areas.format(table)
    if written:
        text += "\n\n" + "\n".join(f"wrote {p}  ({what})" for p, what in written)
    return Evaluation(metrics, text)


def _check_report_paths(json_path: Path | None, csv_path: Path | None, plot_path: Path | None,
                        inputs: Sequence[tuple[str, Path | None]] = ()) -> None:
    """Report files distinct from each other and from every input, and writable; checked before the (possibly
    long) scoring. An existing report is replaced, an input never."""
    check_distinct([("JSON report", json_path), ("CSV report", csv_path), ("confusion-matrix plot", plot_path)],
                   inputs)
    for path in (json_path, csv_path, plot_path):
        if path is not None:
            prepare_output(path, overwrite=True)


def _sigterm_as_interrupt(func: Callable[..., Evaluation]) -> Callable[..., Evaluation]:
    """Run ``func`` with SIGTERM stopping it like Ctrl-C (exit 130, report temporaries removed)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Evaluation:
        with terminate_as_interrupt("no report was written"):
            return func(*args, **kwargs)

    return wrapper


@_sigterm_as_interrupt
def evaluate_maps(config: EvaluateConfig) -> Evaluation:
    """Score ``config.prediction`` against ``config.labels`` and write the requested reports."""
    _check_report_paths(config.json_path, config.csv_path, config.plot_path,
                        [("prediction", config.prediction), ("label raster", config.labels),
                         ("class table", config.classes)])
    table = resolve_class_table(config.classes, config.prediction)
    with _open_prediction(Path(config.prediction)) as src:
        areas = AreaComparison(Grid.of(src), len(table))
    cm, notes = score_map(config.prediction, config.labels, table, config.resampling, areas=areas)
    source = {"prediction": str(config.prediction), "labels": str(config.labels), "resampling": config.resampling}
    return report(cm, table, config.json_path, config.csv_path, config.plot_path, notes, source, areas)


def _check_same_classes(checkpoint: ClassTable, dataset: ClassTable, ck_path: Path, dataset_path: Path) -> None:
    """The dataset's class values must be the checkpoint's (names and order may differ; the checkpoint's win)."""
    ck_values, ds_values = set(checkpoint.values.tolist()), set(dataset.values.tolist())
    if ck_values == ds_values:
        return
    parts = []
    if ds_values - ck_values:
        parts.append(f"dataset only: {', '.join(map(str, sorted(ds_values - ck_values)))}")
    if ck_values - ds_values:
        parts.append(f"checkpoint only: {', '.join(map(str, sorted(ck_values - ds_values)))}")
    raise InputError(f"the dataset's class values differ from those of the checkpoint {ck_path} "
                     f"({'; '.join(parts)})", dataset_path)


@_sigterm_as_interrupt
def evaluate_checkpoint(config: CheckpointEvaluateConfig) -> Evaluation:
    """Predict every scene of a dataset split with :func:`score_scenes` (the tiled inference of ``predict``) and
    score the whole split at once; every input is checked before any compute."""
    from slgt2_cli.checkpoint.format import load_checkpoint
    from slgt2_cli.data.datasets import SPLITS, open_dataset
    from slgt2_cli.infer.predictor import Predictor
    from slgt2_cli.infer.tiling import TileGrid
    from slgt2_cli.progress import progress_bar
    from slgt2_cli.scoring.scenes import score_scenes

    _check_report_paths(config.json_path, config.csv_path, config.plot_path,
                        [("checkpoint", config.checkpoint),
                         ("dataset", config.dataset if not config.dataset.is_dir() else None)])
    if config.split not in SPLITS:
        raise InputError(f"unknown split {config.split!r}; use one of {', '.join(SPLITS)}")
    ck = load_checkpoint(config.checkpoint)
    from slgt2_cli.data.survey import apply_run_split

    spec = apply_run_split(open_dataset(config.dataset, require_train=False), Path(config.checkpoint).parent)
    scenes = spec.scenes(config.split)
    if not scenes:
        have = ", ".join(s for s in SPLITS if spec.splits.get(s)) or "none"
        raise InputError(f"the dataset has no {config.split!r} split (it has: {have})", config.dataset)
    _check_same_classes(ck.classes, spec.classes, config.checkpoint, config.dataset)
    _check_report_paths(config.json_path, config.csv_path, config.plot_path, _dataset_inputs(spec, scenes))
    predictor = Predictor.from_settings(ck, config.settings)
    tiles = 0
    for scene in scenes:  # everything that can fail on input, before any compute
        with scene.open(config.settings.units_name) as stack, scene.open_labels(stack.grid):
            predictor.check_stack(stack)
            tiles += len(TileGrid(stack.grid.height, stack.grid.width, predictor.tile, predictor.stride))
    with progress_bar(total=tiles, unit="tile", desc=f"{config.split} ({len(scenes)} scenes)",
                      enabled=config.progress, leave=False) as bar:
        cm = score_scenes(predictor, [_UnitsScene(s, config.settings.units_name) for s in scenes], progress=bar.update)
    if cm.total == 0:
        raise InputError(f"no pixel of the {config.split!r} split has both a prediction and a label from the "
                         "class table", config.dataset)
    notes = []
    if config.split == "val" and spec.held_out:
        notes.append(f"the dataset has no val split; scored the {len(spec.held_out)} training scene(s) held out as "
                     "validation")
    source = {"checkpoint": str(config.checkpoint), "dataset": str(config.dataset), "split": config.split,
              "scenes": [s.id for s in scenes], "tile": predictor.tile, "stride": predictor.stride,
              "blend": predictor.blend}
    return report(cm, ck.classes, config.json_path, config.csv_path, config.plot_path, notes, source)


def _dataset_inputs(spec: Any, scenes: Sequence[Any]) -> list[tuple[str, Path | None]]:
    """The dataset files a report must not overwrite: the class table, and the split's images and labels."""
    root = Path(spec.root)
    files: list[tuple[str, Path | None]] = [("class table", root / "classes.json" if root.is_dir() else root)]
    for scene in scenes:
        files += [("image stack", scene.image), ("label raster", scene.labels)]
    return files


@dataclass(frozen=True)
class _UnitsScene:
    """A dataset scene opened with the user's ``--units`` override."""

    scene: Any
    units: str | None

    def open(self) -> Any:
        return self.scene.open(self.units)

    def open_labels(self, grid: Grid) -> Any:
        return self.scene.open_labels(grid)
