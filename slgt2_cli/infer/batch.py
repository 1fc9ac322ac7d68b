"""`slgt2 predict-many`: many scenes, one model load per process, in this process or on Dask workers.

In: a checkpoint, stacks (arguments and/or a list file), an output directory, the inference settings. Out: for
each stack exactly what ``slgt2 predict`` writes (the same :func:`~slgt2_cli.infer.run.predict_scene`), and
``DIR/summary.json``: per input its status (done, skipped, failed), outputs, seconds, pixels and, for a failure,
the one-line reason. A scene is one task (:func:`run_scene`); a bad input fails alone; a scene whose outputs exist
and were made by the same checkpoint and options is skipped. Where the scenes run: :mod:`slgt2_cli.infer.cluster`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.infer.cluster import open_client, set_worker_threads, worker_device, worker_slot
from slgt2_cli.infer.run import PredictSession, SceneOutputs, expand_stacks, predict_scene
from slgt2_cli.infer.settings import InferenceSettings
from slgt2_cli.infer.summary import SUMMARY, ManySummary, SceneReport
from slgt2_cli.io.atomic import check_distinct, prepare_output, remove_stale_temporaries, write_text
from slgt2_cli.io.remote import is_remote

FAULT_ENV = "SLGT2_TEST_KILL_DIR"
"""Test hook: a worker that finds ``$SLGT2_TEST_KILL_DIR/<stack name>`` removes it and dies mid-scene."""
STOP_CHECK_SECONDS = 0.5
RETRIES = 2
"""Dask retries of a scene whose task raised; a scene whose worker died is re-run by the scheduler anyway."""


@dataclass(frozen=True, kw_only=True)
class ManyConfig:
    """``slgt2 predict-many``: the checkpoint, the stacks, where the maps go, how the model runs and where."""

    checkpoint: Path
    out_dir: Path
    stacks: list[Path] = field(default_factory=list)
    list_file: Path | None = None
    """A text file with one stack path or URL per line (blank lines and ``#`` comments skipped; relative paths
    are taken from the list file's directory)."""
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    confidence: bool = False
    probabilities: bool = False
    areas: bool = False
    stac: bool = False
    overwrite: bool = False
    strict: bool = False
    progress: bool = True
    cluster: str | None = None
    """None: in this process; ``local[:N]``: a LocalCluster of N worker processes; else a scheduler address."""
    scheduler_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class SceneJob:
    """One scene's task: everything a worker needs (small, pickled)."""

    index: int
    checkpoint: Path
    stack: Path
    outputs: SceneOutputs
    settings: InferenceSettings
    overwrite: bool = False
    strict: bool = False
    threads: int | None = None
    """Torch threads on a worker (a LocalCluster's share of the cores); None: the worker's default."""
    stop: str | None = None
    """Name of the Dask Event that stops the run (a scene in flight aborts and leaves nothing)."""


# --- inputs ---------------------------------------------------------------------------------------------------
def read_list(path: Path) -> list[Path]:
    """Stacks named in a list file, one per line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the list of stacks ({getattr(exc, 'strerror', None) or exc})", path) from None
    stacks = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(entry)
        stacks.append(p if p.is_absolute() or is_remote(entry) else Path(path).parent / p)
    return stacks


def gather_stacks(config: ManyConfig) -> list[Path]:
    stacks = expand_stacks(list(config.stacks)) + (read_list(config.list_file) if config.list_file else [])
    if not stacks:
        raise InputError("no stacks to map: give STACK arguments or a {list_file} file", options=("list_file",))
    return stacks


def scene_outputs(stacks: Sequence[Path], config: ManyConfig) -> list[SceneOutputs]:
    """``DIR/<stack name>.tif`` and its companions ``<name>.confidence.tif`` ... for each stack."""
    from slgt2_cli.infer.predictor import output_paths

    out_dir = Path(config.out_dir)
    if out_dir.suffix.lower() in (".tif", ".tiff") or out_dir.is_file():
        raise InputError("the output must be a directory", out_dir)
    maps = output_paths(list(stacks) + [Path("_")], out_dir)[:-1] if len(stacks) == 1 else output_paths(stacks, out_dir)
    return [SceneOutputs(map=m, confidence=m.with_suffix(".confidence.tif") if config.confidence else None,
                         probabilities=m.with_suffix(".probabilities.tif") if config.probabilities else None,
                         areas=m.with_suffix(".areas.csv") if config.areas else None, stac=config.stac)
            for m in maps]


# --- one scene (on whichever process runs it) -----------------------------------------------------------------
_SESSIONS: dict[tuple, PredictSession] = {}
SESSION_LOADS = 0
"""Models loaded by this process (a worker loads one per checkpoint and settings, not one per scene)."""


def worker_session(job: SceneJob) -> PredictSession:
    """This process's session for the job's checkpoint and settings, loaded on first use and kept."""
    global SESSION_LOADS
    if worker_slot() is not None:
        set_worker_threads(job.threads)
    device = worker_device(job.settings.device)
    path = Path(job.checkpoint)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, job.settings, str(device))
    if key not in _SESSIONS:
        _SESSIONS.clear()  # one model at a time per process
        _SESSIONS[key] = PredictSession.open(path, job.settings, device=device)
        SESSION_LOADS += 1
    return _SESSIONS[key]


class _Stopped(Exception):
    """The run was interrupted: the scene in flight is abandoned (its writers remove their temporaries)."""


def _previous(job: SceneJob, session: PredictSession) -> tuple[str, int]:
    """What the output directory holds for this scene: ``new`` (no map), ``complete`` (a map made by the same
    checkpoint and options, with every requested output), ``incomplete`` (same, some outputs missing) or
    ``other`` (a map made otherwise, or not by slgt2); and the map's pixel count."""
    import rasterio

    if not job.outputs.map.exists():
        return "new", 0
    try:
        with rasterio.open(job.outputs.map) as src:
            tags, pixels = src.tags(), src.width * src.height
    except Exception:  # noqa: BLE001 - unreadable: not ours to skip
        return "other", 0
    p = session.predictor
    want = {"SLGT2_CHECKPOINT_SHA256": session.facts.sha256, "SLGT2_STACK": Path(job.stack).name,
            "SLGT2_TILE": str(p.tile), "SLGT2_STRIDE": str(p.stride), "SLGT2_BLEND": p.blend,
            "SLGT2_TTA": "yes" if p.tta else "no"}
    units = job.settings.units_name
    if any(tags.get(k) != v for k, v in want.items()) or (units and not tags.get("SLGT2_UNITS", "").startswith(units)):
        return "other", pixels
    return ("complete" if all(f.exists() for f in job.outputs.files()) else "incomplete"), pixels


def run_scene(job: SceneJob, session: PredictSession | None = None) -> SceneReport:
    """Skip, predict or fail one scene; never raises for a bad input (the report says why)."""
    start, name = time.perf_counter(), str(job.stack)
    try:
        session = session if session is not None else worker_session(job)
        state, pixels = _previous(job, session)
        outputs = [str(p) for p in job.outputs.files()]
        if state == "complete" and not job.overwrite:
            return SceneReport(stack=name, status="skipped", outputs=outputs, pixels=pixels)
        if state == "other" and not job.overwrite:
            raise InputError("already exists, made by another checkpoint or other options (pass {overwrite} to "
                             "replace it)", job.outputs.map, options=("overwrite",))
        # 'new': what is there are leftovers of an interrupted run (the map is committed last); 'incomplete': ours
        overwrite = True
        grid = session.check_stack(job.stack, job.settings.units_name, job.strict)
        session.check_outputs(job.stack, grid, job.outputs, overwrite)
        result = predict_scene(session, job.stack, job.outputs, units=job.settings.units_name, overwrite=overwrite,
                               on_tiles=_watcher(job))
        return SceneReport(stack=name, status="done", outputs=outputs, seconds=time.perf_counter() - start,
                           pixels=result.pixels)
    except InputError as exc:
        return SceneReport(stack=name, status="failed", seconds=time.perf_counter() - start, error=exc.render(),
                           error_parts=(exc.message, exc.path, exc.hint, exc.options))
    except _Stopped:
        return SceneReport(stack=name, status="failed", error="interrupted before it was finished")
    except Exception as exc:  # noqa: BLE001 - one scene's failure must not stop the others
        first = (str(exc).splitlines() or [""])[0]
        return SceneReport(stack=name, status="failed", seconds=time.perf_counter() - start,
                           error=f"{type(exc).__name__}: {first}")


def _watcher(job: SceneJob) -> Callable[[int], None]:
    """Called after each tile row: the run's stop event (checked at most every STOP_CHECK_SECONDS), the test hook."""
    kill_dir = os.environ.get(FAULT_ENV)
    fault = Path(kill_dir) / Path(job.stack).name if kill_dir else None
    event = None
    if job.stop is not None:
        from distributed import Event

        event = Event(job.stop)
    last = [-float("inf")]

    def on_tiles(_n: int) -> None:
        if fault is not None and fault.exists():
            fault.unlink()
            os._exit(1)  # a worker dying mid-scene, as the tests need it
        if event is not None and time.monotonic() - last[0] >= STOP_CHECK_SECONDS:
            last[0] = time.monotonic()
            if event.is_set():
                raise _Stopped()

    return on_tiles


# --- the run --------------------------------------------------------------------------------------------------
def predict_many(config: ManyConfig, *, client: Any = None, model: Any = None,
                 name_of: Callable[[str], str] = str) -> ManySummary:
    """Map every stack of ``config`` into ``config.out_dir`` and write ``summary.json`` there.

    ``client``: a ``distributed.Client`` to run on (else ``config.cluster`` says where); ``model``: an already
    loaded :class:`slgt2_cli.api.Model` for in-process runs; ``name_of``: how option names appear in the failure
    reasons (the CLI passes its flags). Interrupted (Ctrl-C, SIGTERM): the summary is written, finished maps stay,
    nothing partial remains, and KeyboardInterrupt is raised again."""
    from slgt2_cli.checkpoint.format import load_checkpoint

    stacks = gather_stacks(config)
    outs = scene_outputs(stacks, config)
    check_distinct([role for o in outs for role in o.roles()] + [("summary", Path(config.out_dir) / SUMMARY),
                                                                 ("STAC collection", Path(config.out_dir) / "collection.json")],
                   [("checkpoint", config.checkpoint)] + [("image stack", s) for s in stacks])
    summary_path = prepare_output(Path(config.out_dir) / SUMMARY, overwrite=True)
    session = None
    if client is None and config.cluster is None and config.scheduler_file is None:
        session = (PredictSession.open(config.checkpoint, config.settings, device=model.device, module=model.module)
                   if model is not None else PredictSession.open(config.checkpoint, config.settings))
    else:
        load_checkpoint(config.checkpoint)  # a bad checkpoint is one error, not one per scene
    where = (lambda p: p) if session is not None else _absolute  # workers may run in another directory
    jobs = [SceneJob(index=i, checkpoint=where(Path(config.checkpoint)), stack=where(s), outputs=_outputs_at(o, where),
                     settings=config.settings, overwrite=config.overwrite, strict=config.strict)
            for i, (s, o) in enumerate(zip(stacks, outs))]
    run = _Run(config, jobs, name_of, [str(s) for s in stacks], outs)
    try:
        with terminate_as_interrupt("finished maps were kept, nothing partial remains"):
            if session is not None:
                run.here(session)
            elif client is not None:
                run.on(client, None)
            else:
                with open_client(config.cluster, config.scheduler_file) as (own, layout):
                    run.on(own, layout)
    except KeyboardInterrupt:
        run.interrupted = True
        _remove_partials(outs)
        write_text(summary_path, json.dumps(run.summary().to_dict(), indent=2) + "\n")
        raise
    _remove_partials(outs)
    summary = run.summary()
    if config.stac:
        _write_collection(config, [o for o, r in zip(outs, summary.scenes) if r.status in ("done", "skipped")])
    write_text(summary_path, json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _write_collection(config: ManyConfig, outs: Sequence[SceneOutputs]) -> None:
    """``DIR/collection.json``: the STAC Collection of the items of every scene mapped or skipped in this run."""
    from slgt2_cli.io.stac import COLLECTION, stac_collection, stac_path

    items = [(stac_path(o.map), json.loads(stac_path(o.map).read_text(encoding="utf-8"))) for o in outs
             if stac_path(o.map).is_file()]
    if not items:
        return
    name = Path(config.out_dir).resolve().name
    collection = stac_collection(items, Path(config.out_dir), title=f"slgt2 land-cover maps: {name}",
                                 description=f"{len(items)} land-cover maps predicted by slgt2 with "
                                             f"{Path(config.checkpoint).name}")
    write_text(Path(config.out_dir) / COLLECTION, json.dumps(collection, indent=2) + "\n")


def _absolute(path: Path) -> Path:
    return path if is_remote(path) else Path(os.path.abspath(path))


def _outputs_at(outs: SceneOutputs, where: Callable[[Path], Path]) -> SceneOutputs:
    return replace(outs, **{k: where(getattr(outs, k)) for k in ("map", "confidence", "probabilities", "areas")
                            if getattr(outs, k) is not None})


def _remove_partials(outs: Sequence[SceneOutputs]) -> None:
    """Temporaries left by workers that were killed (their processes are gone)."""
    for o in outs:
        for path in o.files():
            remove_stale_temporaries(path)


class _Run:
    """The reports as they come in, the progress bar, and the summary at any moment."""

    def __init__(self, config: ManyConfig, jobs: list[SceneJob], name_of: Callable[[str], str], shown: list[str],
                 outs: Sequence[SceneOutputs]):
        self.config, self.jobs, self.name_of, self.shown, self.outs = config, jobs, name_of, shown, outs
        self.reports: list[SceneReport | None] = [None] * len(jobs)
        self.started, self.workers, self.interrupted = time.perf_counter(), 1, False
        self.created = dt.datetime.now(dt.timezone.utc)

    def _bar(self):
        from slgt2_cli.progress import progress_bar

        return progress_bar(total=len(self.jobs), desc="scenes", unit="scene", enabled=self.config.progress)

    def _add(self, job: SceneJob, report: SceneReport, bar: Any) -> None:
        if report.error_parts is not None:
            report.error = InputError(*report.error_parts).render(self.name_of)
        report.stack = self.shown[job.index]  # paths as the user gave them (workers got absolute ones)
        report.outputs = [str(p) for p in self.outs[job.index].files()] if report.outputs else []
        self.reports[job.index] = report
        bar.update(1)
        done = sum(r.pixels for r in self.reports if r is not None and r.status == "done")
        bar.set_postfix_str(f"{done / 1e6:.2f} Mpx, {sum(r is not None and r.status == 'failed' for r in self.reports)}"
                            " failed", refresh=False)

    def here(self, session: PredictSession) -> None:
        with self._bar() as bar:
            for job in self.jobs:
                self._add(job, run_scene(job, session), bar)

    def on(self, client: Any, layout: Any) -> None:
        """Every scene as a Dask task (first scenes first); reports as they complete."""
        from distributed import Event, as_completed

        from slgt2_cli.infer.cluster import dashboard_link

        self.workers = layout.workers if layout is not None else len(client.scheduler_info().get("workers", {}))
        link = dashboard_link(client)
        if link and self.config.progress:
            import sys

            print(f"Dask dashboard: {link}", file=sys.stderr)
        stop = f"slgt2-stop-{uuid.uuid4().hex}"
        event = Event(stop, client=client)
        threads = layout.threads if layout is not None else None
        futures = {client.submit(run_scene, replace(job, stop=stop, threads=threads), key=f"slgt2-scene-{job.index}-{stop[-8:]}",
                                 pure=False, retries=RETRIES, priority=len(self.jobs) - job.index): job
                   for job in self.jobs}
        try:
            with self._bar() as bar:
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        report = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the scene failed, the run goes on
                        report = SceneReport(stack=str(job.stack), status="failed",
                                             error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
                    self._add(job, report, bar)
        except BaseException:
            event.set()  # scenes in flight abort at their next tile row (their temporaries removed)
            for future, job in futures.items():
                if self.reports[job.index] is None and future.status == "finished":
                    self.reports[job.index] = replace(future.result(), stack=self.shown[job.index])
            client.cancel(list(futures))  # the rest never start
            time.sleep(2 * STOP_CHECK_SECONDS + 1)  # let them see the event before a LocalCluster is closed
            raise

    def summary(self) -> ManySummary:
        reports = [r if r is not None else SceneReport(stack=shown, status="failed", error="not run: interrupted")
                   for r, shown in zip(self.reports, self.shown)]
        return ManySummary(checkpoint=Path(self.config.checkpoint), out_dir=Path(self.config.out_dir),
                           settings=self.config.settings, scenes=reports, seconds=time.perf_counter() - self.started,
                           cluster=self.config.cluster or (str(self.config.scheduler_file) if self.config.scheduler_file
                                                           else None),
                           workers=self.workers, interrupted=self.interrupted)

