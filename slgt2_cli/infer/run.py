"""`slgt2 predict`: classify whole scenes with a checkpoint into Cloud-Optimized GeoTIFF maps."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.infer.gis import CheckpointFacts, add_gis_outputs, check_gis_outputs, map_provenance
from slgt2_cli.infer.predictor import Predictor, classes_from_probs, io_cache_mb, output_paths
from slgt2_cli.infer.settings import InferenceSettings
from slgt2_cli.infer.tiling import TileGrid
from slgt2_cli.io.atomic import check_distinct, prepare_output
from slgt2_cli.io.geotiff import (
    MapWriter,
    class_map_dtype,
    confidence_bytes,
    estimated_cog_bytes,
    gdal_cache,
    probability_bytes,
)
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.pixelsize import check_pixel_size
from slgt2_cli.io.remote import is_remote
from slgt2_cli.io.stacks import open_stack
from slgt2_cli.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class PredictConfig:
    """``slgt2 predict``: which checkpoint, which stacks, where the maps go, and how the model runs."""

    checkpoint: Path
    stacks: list[Path]
    output: Path
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    confidence: Path | None = None
    probabilities: Path | None = None
    overwrite: bool = False
    progress: bool = True
    areas: Path | None = None
    """Per-class pixels and hectares (CSV, or JSON for a .json name); a directory when there are several stacks."""
    stac: bool = False
    """Write a STAC item ``<map>.stac.json`` beside each map."""
    strict: bool = False
    """Refuse (instead of warn) when a stack's pixel size differs from the training one by more than 2×."""


@dataclass
class PredictResult:
    stack: Path
    output: Path
    seconds: float
    pixels: int
    stats: dict = field(default_factory=dict)

    @property
    def pixels_per_second(self) -> float:
        return self.pixels / self.seconds if self.seconds else 0.0


def expand_stacks(patterns: list[Path]) -> list[Path]:
    """Paths as given, with shell-style globs expanded (quoted globs reach us unexpanded)."""
    out: list[Path] = []
    for p in patterns:
        text = str(p)
        if any(ch in text for ch in "*?[") and not p.exists() and not is_remote(p):  # URLs hold '?'s
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputError("no file matches this pattern", p)
            out.extend(Path(m) for m in matches)
        else:
            out.append(p)
    return out


def _sibling(option: Path | None, output: Path, suffix: str, many: bool) -> Path | None:
    if option is None:
        return None
    return option / f"{output.stem}{suffix}" if many else option


@dataclass(frozen=True, kw_only=True)
class SceneOutputs:
    """Every file predict writes for one stack: the map, the optional maps and the areas file, the STAC item."""

    map: Path
    confidence: Path | None = None
    probabilities: Path | None = None
    areas: Path | None = None
    stac: bool = False

    @classmethod
    def of(cls, out: Path, config: PredictConfig, many: bool) -> SceneOutputs:
        return cls(map=out, confidence=_sibling(config.confidence, out, ".confidence.tif", many),
                   probabilities=_sibling(config.probabilities, out, ".probabilities.tif", many),
                   areas=_sibling(config.areas, out, ".areas.csv", many), stac=config.stac)

    def roles(self) -> list[tuple[str, Path | None]]:
        """(what it is, path) of every output (for messages)."""
        return [("map", self.map), ("confidence map", self.confidence), ("probability map", self.probabilities),
                ("areas file", self.areas)]

    def files(self) -> list[Path]:
        """The files a finished scene has (legend sidecars included)."""
        from slgt2_cli.io.legend import aux_xml_path, qml_path
        from slgt2_cli.io.stac import stac_path

        extra = [stac_path(self.map)] if self.stac else []
        return [p for p in (self.map, aux_xml_path(self.map), qml_path(self.map), self.confidence, self.probabilities,
                            self.areas, *extra) if p is not None]


@dataclass
class PredictSession:
    """A checkpoint loaded once for many scenes: the predictor and what every map records about it."""

    predictor: Predictor
    facts: CheckpointFacts
    training_gsd_m: float | None

    @classmethod
    def open(cls, checkpoint: Path, settings: InferenceSettings, *, device: Any = None,
             module: Any = None) -> PredictSession:
        ck = load_checkpoint(checkpoint)
        predictor = Predictor.from_settings(ck, settings, module=module, device=device)
        return cls(predictor, CheckpointFacts.of(ck, Path(checkpoint)), ck.training_gsd_m)

    def check_stack(self, stack_path: Path, units: str | None, strict: bool) -> Grid:
        """Everything that can fail on this stack before compute; its grid."""
        with open_stack(stack_path, units, channels=len(self.predictor.bands)) as stack:
            self.predictor.check_stack(stack)
            check_pixel_size(stack.grid, self.training_gsd_m, stack_path, strict)
            return stack.grid

    def check_outputs(self, stack_path: Path, grid: Grid, outs: SceneOutputs, overwrite: bool) -> None:
        """Each output: not there already (unless ``overwrite``), its directory writable, room on its disk."""
        dtype, _ = class_map_dtype(self.predictor.classes)
        wanted = [(outs.map, 1, dtype), (outs.confidence, 1, "uint8"),
                  (outs.probabilities, len(self.predictor.classes), "uint8")]
        for path, count, dt in wanted:
            if path is not None:
                prepare_output(path, overwrite=overwrite, need_bytes=estimated_cog_bytes(grid, count, dt) + (1 << 20))
        check_gis_outputs(outs.map, grid, stack_path, areas=outs.areas, stac=outs.stac, overwrite=overwrite)


def _rank() -> tuple[int, int]:
    """(rank, world size) under torchrun; scenes are shared out across ranks."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def run_predict(config: PredictConfig) -> list[PredictResult]:
    """Predict every stack of ``config`` (checked before any compute) and return timing per scene."""
    stacks = expand_stacks(config.stacks)
    outputs = output_paths(stacks, config.output)
    many = len(stacks) > 1
    session = PredictSession.open(config.checkpoint, config.settings)
    grids = [session.check_stack(s, config.settings.units_name, config.strict) for s in stacks]
    scene_outputs = [SceneOutputs.of(out, config, many) for out in outputs]
    rank, world = _rank()
    _check_outputs(session, stacks, grids, scene_outputs, config, rank, world)
    results = []
    with terminate_as_interrupt("the map being written was removed"):  # SIGTERM cleans up like Ctrl-C
        for i, (stack_path, outs) in enumerate(zip(stacks, scene_outputs)):
            if i % world != rank:
                continue
            if many:
                outs.map.parent.mkdir(parents=True, exist_ok=True)
            results.append(predict_scene(session, stack_path, outs, units=config.settings.units_name,
                                         overwrite=config.overwrite, progress=config.progress))
    return results


def _check_outputs(session: PredictSession, stacks: list[Path], grids: list[Grid], outputs: list[SceneOutputs],
                   config: PredictConfig, rank: int = 0, world: int = 1) -> None:
    """No output is an input or another output (whatever --overwrite says); then each of this rank's outputs
    (under torchrun a rank checks only its own, which no other rank writes): not there already (unless
    --overwrite), its directory writable, room on its disk."""
    check_distinct([role for outs in outputs for role in outs.roles()],
                   [("checkpoint", config.checkpoint)] + [("image stack", s) for s in stacks])
    for i, (stack_path, grid, outs) in enumerate(zip(stacks, grids, outputs)):
        if i % world == rank:
            session.check_outputs(stack_path, grid, outs, config.overwrite)


def predict_scene(session: PredictSession, stack_path: Path, outs: SceneOutputs, *, units: str | None,
                  overwrite: bool, progress: bool = False, on_tiles: Callable[[int], None] | None = None
                  ) -> PredictResult:
    """Predict one stack into ``outs``: the one per-scene path of ``predict`` and ``predict-many``. The map and
    its sidecars appear together on success; on any error or interrupt nothing of them is left.
    ``on_tiles``: called with the number of tiles done after each tile row (progress, cancellation)."""
    predictor, start = session.predictor, time.perf_counter()
    with open_stack(stack_path, units, channels=len(predictor.bands)) as stack, ExitStack() as writers:
        grid = stack.grid
        prov = map_provenance(session.facts, predictor, stack, predictor.blend)
        maps = writers.enter_context(MapWriter.classes(outs.map, grid, predictor.classes, overwrite=overwrite,
                                                       tags=prov.tags("classes")))
        conf = (writers.enter_context(MapWriter.confidence(outs.confidence, grid, overwrite, prov.tags("confidence")))
                if outs.confidence else None)
        prob = (writers.enter_context(MapWriter.probabilities(outs.probabilities, grid, predictor.classes, overwrite,
                                                              prov.tags("probabilities")))
                if outs.probabilities else None)
        add_gis_outputs(maps, grid, prov, areas=outs.areas, stac=outs.stac, confidence=outs.confidence,
                        probabilities=outs.probabilities)

        def sink(window, probs, valid):
            maps.write_classes(window, classes_from_probs(probs, valid))
            if conf is not None:
                conf.write(window, confidence_bytes(probs, valid))
            if prob is not None:
                prob.write(window, probability_bytes(probs, valid))

        total = len(TileGrid(grid.height, grid.width, predictor.tile, predictor.stride))
        cache = io_cache_mb(stack, predictor.tile, [w for w in (maps, conf, prob) if w is not None])
        with gdal_cache(cache), progress_bar(total=total, unit="tile", desc=Path(stack_path).name,
                                             enabled=progress, leave=False) as bar:

            def tiles_done(n: int) -> None:
                bar.update(n)
                if on_tiles is not None:
                    on_tiles(n)

            stats = predictor.predict(stack, sink, progress=tiles_done)
        # leaving the ExitStack commits every writer (COG + rename; the class map last); an error aborts them all
    return PredictResult(stack_path, outs.map, time.perf_counter() - start, grid.width * grid.height, stats)
