"""Scoring a classified map against a label raster, window by window, whatever the scene size.

The label raster is aligned onto the prediction's grid (:func:`open_aligned_labels`), both are read in
block-aligned chunks and fed to a streaming :class:`ConfusionMatrix`; :func:`report` turns any confusion
matrix (from maps, or from a predictor scoring a dataset split) into the terminal table and the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from slgt2_cli.classes import IGNORE_INDEX, ClassTable, LabelCensus
from slgt2_cli.errors import InputError
from slgt2_cli.geotiff import read_class_table
from slgt2_cli.grid import Grid
from slgt2_cli.labels import open_aligned_labels
from slgt2_cli.metrics import ConfusionMatrix, compute_metrics
from slgt2_cli.outputs import prepare_output
from slgt2_cli.report import format_table, plot_confusion, write_csv, write_json
from slgt2_cli.stacks import RASTER_ERRORS, _reason

CHUNK_PIXELS = 1 << 20
"""Pixels read per step (~1 Mpx: a few tens of MB of working arrays)."""
GDAL_CACHE_MB = 128


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
        raise InputError("has no embedded class table; pass --classes classes.json", prediction)
    return table


def _open_prediction(path: Path) -> rasterio.io.DatasetReader:
    if not path.exists():
        raise InputError("prediction not found", path)
    try:
        src = rasterio.open(path)
    except RASTER_ERRORS as exc:
        raise InputError(f"not a readable raster ({_reason(exc)})", path) from None
    if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        src.close()
        raise InputError(f"a prediction must be a single-band integer class map (has {src.count} band(s), "
                         f"{src.dtypes[0]})", path)
    return src


def score_map(
    prediction: Path, labels: Path, table: ClassTable, resampling: str = "nearest", chunk_pixels: int = CHUNK_PIXELS
) -> tuple[ConfusionMatrix, list[str]]:
    """Confusion matrix of a classified map against labels aligned onto its grid, plus notes for the user.

    Left out: prediction nodata, label nodata, and values of either that are not in the class table.
    """
    cm = ConfusionMatrix(len(table))
    census = LabelCensus(table)
    foreign = 0
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), _open_prediction(Path(prediction)) as src:
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
                cm.update(pred, census.add(label_values, label_valid))
    notes = []
    if foreign:
        notes.append(f"{foreign:,} predicted pixels have values outside the class table and were left out")
    census.check("in the label raster", labels, "pass the class table the labels use with --classes")
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
) -> Evaluation:
    """Scores of ``cm`` as text, written to whichever of the JSON / CSV / PNG paths are given (atomically)."""
    metrics = compute_metrics(cm, table)
    if source:
        metrics["source"] = source
    if notes:
        metrics["notes"] = list(notes)
    written = []
    if json_path is not None:
        written.append(write_json(metrics, json_path))
    if csv_path is not None:
        written.append(write_csv(metrics, csv_path))
    if plot_path is not None:
        written.append(plot_confusion(metrics, plot_path))
    text = format_table(metrics, notes)
    if written:
        text += "\n\n" + "\n".join(f"wrote {p}" for p in written)
    return Evaluation(metrics, text)


def evaluate_maps(config: EvaluateConfig) -> Evaluation:
    """Score ``config.prediction`` against ``config.labels`` and write the requested reports."""
    outputs = [p for p in (config.json_path, config.csv_path, config.plot_path) if p is not None]
    if len(set(map(os.path.abspath, outputs))) != len(outputs):
        raise InputError("--json, --csv and --plot must name different files")
    for path in outputs:  # fail on unwritable outputs before the (possibly long) scoring
        prepare_output(path, overwrite=True)
    table = resolve_class_table(config.classes, config.prediction)
    cm, notes = score_map(config.prediction, config.labels, table, config.resampling)
    source = {"prediction": str(config.prediction), "labels": str(config.labels), "resampling": config.resampling}
    return report(cm, table, config.json_path, config.csv_path, config.plot_path, notes, source)
