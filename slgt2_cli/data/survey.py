"""Training start-up in one pass over the dataset: temporal rule, normalisation, class census, split, shapes.

Each training scene is opened once (in worker processes when there are many): its header gives dates, bands,
units and size; its labels are counted in full (the class census is exact); for the statistics a few
block-aligned windows are read and a fixed number of valid pixels is sampled from each (the normalisation is an
estimate: mean and standard deviation from at most ``SAMPLES_PER_WINDOW`` pixels of up to ``max_windows`` windows
of each of at most ``STATS_SCENES`` evenly spaced scenes). The samples keep every date, so the temporal rule,
which needs all dates first, is applied afterwards. The result is cached as ``RUN_DIR/survey.json`` and reused
while the dataset's files (size, modification time) and the settings are unchanged. Ctrl-C and SIGTERM stop the
survey within a second; nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from slgt2_cli.data.datasets import DatasetSpec, Scene
from slgt2_cli.data.normalization import Normalization, _Moments
from slgt2_cli.data.temporal import TemporalRule, choose_mode
from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.io.classes import IGNORE_INDEX, LabelCensus

VERSION = 2  # 2: the automatic temporal rule may be 'order' (short series)
CACHE_NAME = "survey.json"
STAT_WINDOW = 128
SAMPLES_PER_WINDOW = 256
STATS_SCENES = 1000
STATS_WINDOWS = 256
"""Windows for the statistics over the whole dataset, at least: small datasets read several per scene."""
LABEL_ROWS = 512
_PARALLEL_FROM = 16  # scenes: fewer are surveyed in-process (a pool's start-up would not pay)


@dataclass(frozen=True, kw_only=True)
class SurveySettings:
    """What the survey's result depends on besides the files."""

    length: int
    temporal_mode: str | None = None
    units: str | None = None
    max_windows: int | None = 64
    """At most this many statistics windows per scene (``TrainConfig.norm_windows``)."""
    val_fraction: float = 0.2


def survey_settings(config: Any, length: int) -> SurveySettings:
    """The settings of a training configuration (``TrainConfig``) for a model of ``length`` periods."""
    return SurveySettings(length=int(length), temporal_mode=config.temporal_mode, units=config.units,
                          max_windows=config.norm_windows, val_fraction=config.val_fraction)


@dataclass(frozen=True, kw_only=True)
class Survey:
    """Everything training fixes before its first step, from one pass over the training scenes."""

    rule: TemporalRule
    norm: Normalization
    bands: list[str]
    units: str
    shapes: list[tuple[int, int]]
    """(height, width) of each training scene, in ``spec.scenes('train')`` order."""
    class_counts: list[int]
    """Labelled pixels per model class over the training scenes (exact)."""
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    rule_reason: str = ""
    """Why the temporal rule is what it is (printed at the start of a run)."""
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.to_dict(), "norm": self.norm.to_dict(), "bands": self.bands, "units": self.units,
                "shapes": [list(s) for s in self.shapes], "class_counts": self.class_counts,
                "train_ids": self.train_ids, "val_ids": self.val_ids, "rule_reason": self.rule_reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Survey:
        return cls(rule=TemporalRule.from_dict(d["rule"]), norm=Normalization.from_dict(d["norm"]),
                   bands=list(d["bands"]), units=str(d["units"]), shapes=[(int(h), int(w)) for h, w in d["shapes"]],
                   class_counts=[int(c) for c in d["class_counts"]], train_ids=list(d["train_ids"]),
                   val_ids=list(d["val_ids"]), rule_reason=str(d.get("rule_reason", "")), cached=True)


# --- one scene (runs in a worker process) -------------------------------------------------------------------------
def stat_windows(height: int, width: int, max_windows: int | None, index: int = 0, least: int = 1,
                 size: int = STAT_WINDOW) -> list[Window]:
    """Evenly spaced block-aligned ``size``² windows, one per 512² of scene area and at least ``least`` (at most
    ``max_windows``); their phase moves with the scene's ``index`` so that samples cover all parts of scenes."""
    cells = [(r, c) for r in range(0, height, size) for c in range(0, width, size)]
    want = max(1, min(max_windows or len(cells), max(least, round(height * width / 512**2)), len(cells)))
    phase = (index * 0.6180339887) % 1.0
    pick = sorted({int((k + phase) * len(cells) / want) % len(cells) for k in range(want)})
    return [Window(c, r, min(size, width - c), min(size, height - r)) for r, c in (cells[i] for i in pick)]


def _scene_samples(reader: Any, windows: list[Window], seed: int) -> np.ndarray:
    """``(T, C, n)`` float32 model-unit values of up to SAMPLES_PER_WINDOW valid pixels of each window."""
    rng = np.random.default_rng(seed)
    parts = []
    for win in windows:
        raw = reader.read(win)  # (T, C, h, w)
        flat = raw.reshape(raw.shape[0], raw.shape[1], -1)
        valid = np.flatnonzero(~np.isnan(flat).any(axis=1).all(axis=0))
        if len(valid) > SAMPLES_PER_WINDOW:
            valid = np.sort(rng.choice(valid, SAMPLES_PER_WINDOW, replace=False))
        parts.append(flat[:, :, valid])
    return np.concatenate(parts, axis=2)


def probe_windows(height: int, width: int, size: int = 16) -> list[Window]:
    """Small windows at the first and the last pixels of a grid (the ends of a file's data)."""
    h, w = min(size, height), min(size, width)
    return [Window(0, 0, w, h), Window(width - w, height - h, w, h)]


def survey_scene(scene: Scene, classes: Any, units: str | None, max_windows: int | None, stats: int,
                 seed: int) -> dict[str, Any]:
    """Header, exact label counts and (when ``stats`` > 0: at least that many windows) pixel samples of one scene,
    opened once; its first and last pixels are read too, so a truncated file fails before training."""
    k = len(classes)
    census = LabelCensus(classes)
    counts = np.zeros(k, dtype=np.int64)
    with scene.open(units) as stack:
        h, w = stack.grid.height, stack.grid.width
        for window in probe_windows(h, w):
            stack.read(window)
        with scene.open_labels(stack.grid) as labels:
            for row in range(0, h, LABEL_ROWS):
                cls = census.add(*labels.read(Window(0, row, w, min(LABEL_ROWS, h - row))))
                counts += np.bincount(cls[cls != IGNORE_INDEX], minlength=k)[:k]
        samples = _scene_samples(stack, stat_windows(h, w, max_windows, seed, stats), seed) if stats else None
        return {"dates": stack.dates, "num_dates": stack.num_dates, "bands": list(stack.polarisations),
                "channels": stack.num_channels, "units": stack.model_units, "shape": (h, w), "counts": counts,
                "known": census.known, "unknown": sorted(census.unknown), "samples": samples}


def _survey_task(task: tuple[int, Scene, Any, str | None, int | None, int]) -> tuple[int, dict[str, Any]]:
    i, scene, classes, units, max_windows, stats = task
    return i, survey_scene(scene, classes, units, max_windows, stats, seed=i)


def _survey_chunk(tasks: list[tuple]) -> list[tuple[int, dict[str, Any]]]:
    return [_survey_task(t) for t in tasks]


def _worker_init() -> None:
    """Ctrl-C reaches the whole process group: the main process answers it and ends the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- the pass over all scenes -------------------------------------------------------------------------------------
def _stats_scenes(n: int) -> set[int]:
    return set(range(n)) if n <= STATS_SCENES else set(np.linspace(0, n - 1, STATS_SCENES).round().astype(int))


def _run(tasks: list[tuple], workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Survey results as they come, in worker processes when it pays; interruptible within a second."""
    if workers <= 0 or len(tasks) < _PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(_survey_task, tasks)
        return
    size = max(1, min(8, len(tasks) // (8 * workers)))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init)
    _warm_imports()  # after the fork: no worker inherits a held import lock
    try:
        results = pool.imap_unordered(_survey_chunk, chunks)
        for _ in chunks:
            while True:
                try:
                    chunk = results.next(timeout=0.25)
                    break
                except multiprocessing.TimeoutError:
                    continue
            yield from chunk
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _warm_imports() -> None:
    """Import torch._dynamo (~2 s; the optimiser's constructor needs it) in a thread while the main thread
    waits for the survey's workers."""
    import threading

    def work() -> None:
        with contextlib.suppress(Exception):  # only a head start: the optimiser imports it anyway
            import torch._dynamo  # noqa: F401

    threading.Thread(target=work, name="slgt2-warm-imports", daemon=True).start()


def _default_workers(workers: int | None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 2 if workers is None else workers) if cores > 1 else 0


def _scan(scenes: list[Scene], classes: Any, settings: SurveySettings, workers: int, progress: bool
          ) -> list[dict[str, Any]]:
    from slgt2_cli.progress import progress_bar

    with_stats = _stats_scenes(len(scenes))
    least = -(-STATS_WINDOWS // len(with_stats))  # small datasets: more windows per scene
    tasks = [(i, s, classes, settings.units, settings.max_windows, least if i in with_stats else 0)
             for i, s in enumerate(scenes)]
    out: list[dict[str, Any] | None] = [None] * len(scenes)
    with progress_bar(total=len(scenes), desc="survey", unit="scene", enabled=progress) as bar:
        for i, result in _run(tasks, workers):
            out[i] = result
            bar.update(1)
    return out  # type: ignore[return-value]


def _combine(scenes: list[Scene], results: list[dict[str, Any]], spec: DatasetSpec, settings: SurveySettings
             ) -> Survey:
    first = results[0]
    bands = [b or f"band{i + 1}" for i, b in enumerate(first["bands"])]
    for scene, r in zip(scenes, results):
        if r["channels"] != len(bands):
            raise InputError(f"has {r['channels']} channels, other training stacks have {len(bands)}", scene.image)
    _check_census(spec, results)
    date_lists, frame_counts = [r["dates"] for r in results], [r["num_dates"] for r in results]
    rule = TemporalRule.fit(date_lists, length=settings.length, mode=settings.temporal_mode, frame_counts=frame_counts)
    reason = "--temporal-mode" if settings.temporal_mode else choose_mode(date_lists, settings.length, frame_counts)[1]
    for scene, r in zip(scenes, results):
        rule.check(_Header(scene.image, r["dates"], r["num_dates"]))
    moments = _Moments()
    for r in results:
        samples = r["samples"]
        if samples is None or samples.shape[2] == 0:
            continue
        frames = rule.apply(samples[..., None], r["dates"], fill=np.full(samples.shape[1], np.nan))  # (L, C, n, 1)
        values = np.moveaxis(frames, 1, 0).reshape(samples.shape[1], -1)
        moments.add(values[:, np.isfinite(values).all(axis=0)])
    if moments.n == 0:
        raise InputError("no valid pixels in the training stacks to compute normalisation statistics from")
    mean, std = moments.result()
    counts = np.sum([r["counts"] for r in results], axis=0)
    return Survey(rule=rule, norm=Normalization(tuple(map(float, mean)), tuple(map(float, std))), bands=bands,
                  units=first["units"], shapes=[tuple(r["shape"]) for r in results],
                  class_counts=[int(c) for c in counts], train_ids=[s.id for s in scenes],
                  val_ids=[s.id for s in spec.scenes("val")], rule_reason=reason)


@dataclass(frozen=True)
class _Header:
    path: Path
    dates: list[dt.date] | None
    num_dates: int


def _check_census(spec: DatasetSpec, results: list[dict[str, Any]]) -> None:
    """What ``check_labels`` asks: some label of the training scenes has a value of the class table."""
    census = LabelCensus(spec.classes)
    census.known = sum(r["known"] for r in results)
    census.unknown = {v for r in results for v in r["unknown"]}
    table = spec.root / "classes.json"
    census.check("of the train scenes", table if table.exists() else spec.root,
                 "the class table must list the values the label rasters use")


# --- cache ------------------------------------------------------------------------------------------------------
def _stat_key(path: Path) -> list[Any]:
    try:
        if path.is_dir():
            return [path.name, sorted(_stat_key(p) for p in path.iterdir())]
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None]


def cache_key(spec: DatasetSpec, scenes: Sequence[Scene], settings: SurveySettings) -> str:
    """A digest of the survey's inputs: settings, class table, split and every training file's size and mtime."""
    parts: list[Any] = [VERSION, str(Path(spec.root).resolve()), spec.kind, spec.classes.to_list(),
                        sorted(settings.__dict__.items(), key=lambda kv: kv[0]),
                        [s.id for s in spec.scenes("val")], STAT_WINDOW, SAMPLES_PER_WINDOW, STATS_SCENES, STATS_WINDOWS]
    for s in scenes:
        parts.append([s.id, s.image_field, _stat_key(Path(s.image)),
                      _stat_key(Path(s.labels)) if s.labels else None])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def load_cached(cache_dir: Path | None, key: str) -> Survey | None:
    """The cached survey in ``cache_dir`` when it was made from the same inputs, else None."""
    path = Path(cache_dir) / CACHE_NAME if cache_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return Survey.from_dict(data["survey"]) if data.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError, InputError):
        return None  # unreadable or from another version: survey again


def _store(cache_dir: Path, key: str, survey: Survey, dataset: Path) -> None:
    from slgt2_cli.io.atomic import atomic_output

    if cache_dir.is_dir():
        with atomic_output(cache_dir / CACHE_NAME) as tmp:
            tmp.write_text(json.dumps({"version": VERSION, "key": key, "dataset": str(Path(dataset).resolve()),
                                       "survey": survey.to_dict()}, indent=1))


def store_survey(cache_dir: Path, spec: DatasetSpec, settings: SurveySettings, survey: Survey) -> None:
    """Cache ``survey`` in ``cache_dir`` (an existing run directory) for ``--resume`` and ``evaluate``."""
    if not survey.cached:
        _store(Path(cache_dir), cache_key(spec, spec.scenes("train"), settings), survey, spec.root)


# --- entry point ------------------------------------------------------------------------------------------------
def survey_dataset(spec: DatasetSpec, settings: SurveySettings, *, cache_dir: Path | None = None,
                   workers: int | None = None, progress: bool = True, write_cache: bool = True) -> Survey:
    """Survey the training scenes of ``spec`` (or reuse ``cache_dir/survey.json``; written there unless
    ``write_cache`` is False, e.g. on ranks other than 0). Ctrl-C/SIGTERM raise KeyboardInterrupt within a second;
    an empty ``cache_dir`` made for this run is then removed."""
    scenes = spec.scenes("train")
    if not scenes:
        raise InputError("the dataset has no training scenes", spec.root)
    key = cache_key(spec, scenes, settings)
    cached = load_cached(cache_dir, key)
    if cached is not None:
        return cached
    try:
        with terminate_as_interrupt("training start-up stopped, nothing was written"):
            results = _scan(scenes, spec.classes, settings, _default_workers(workers), progress)
    except KeyboardInterrupt:
        if cache_dir is not None and write_cache:
            _remove_if_empty(Path(cache_dir))
        raise
    survey = _combine(scenes, results, spec, settings)
    if cache_dir is not None and write_cache:
        _store(Path(cache_dir), key, survey, spec.root)
    return survey


def apply_run_split(spec: DatasetSpec, run_dir: Path) -> DatasetSpec:
    """``spec`` with the train/val split its training run used (``run_dir/survey.json``), when the dataset has no
    val split of its own and the run surveyed this dataset; otherwise ``spec`` unchanged. So ``evaluate --split val``
    scores the scenes training held out, whatever hold-out fraction the run used."""
    path = Path(run_dir) / CACHE_NAME
    if not spec.held_out or not path.is_file():
        return spec
    try:
        data = json.loads(path.read_text())
        same = data.get("dataset") == str(Path(spec.root).resolve())
        train_ids, val_ids = list(data["survey"]["train_ids"]), set(data["survey"]["val_ids"])
    except (OSError, ValueError, KeyError, TypeError):
        return spec
    scenes = {s.id: s for s in sorted(spec.scenes("train") + spec.scenes("val"), key=lambda s: s.id)}
    if not same or set(train_ids) | val_ids != set(scenes) or not val_ids:
        return spec
    splits = dict(spec.splits)
    splits["train"] = [s for sid, s in scenes.items() if sid not in val_ids]
    splits["val"] = [s for sid, s in scenes.items() if sid in val_ids]
    return DatasetSpec(spec.root, spec.kind, spec.classes, splits, sorted(val_ids))


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()  # only ever succeeds on an empty directory
    except OSError:
        pass


__all__ = [
    "Survey",
    "SurveySettings",
    "apply_run_split",
    "cache_key",
    "load_cached",
    "stat_windows",
    "survey_dataset",
    "survey_scene",
    "survey_settings",
]
