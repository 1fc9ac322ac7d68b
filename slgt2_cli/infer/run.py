"""`slgt2 predict`: classify whole scenes with a checkpoint into Cloud-Optimized GeoTIFF maps."""

from __future__ import annotations

import glob
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.errors import InputError, terminate_as_interrupt
from slgt2_cli.infer.gis import CheckpointFacts, add_gis_outputs, check_gis_outputs, map_provenance
from slgt2_cli.infer.predictor import Predictor, classes_from_probs, io_cache_mb, output_paths, resolve_device
from slgt2_cli.infer.tiling import TileGrid, check_tile_stride
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


@dataclass
class PredictConfig:
    checkpoint: Path
    stacks: list[Path]
    output: Path
    tile: int | None = None
    stride: int | None = None
    batch_size: int = 4
    device: str = "auto"
    confidence: Path | None = None
    probabilities: Path | None = None
    tta: bool = False
    overwrite: bool = False
    units: str | None = None
    blend: str | None = None
    """None: the checkpoint's default (``average`` for converted reference checkpoints, else cosine)."""
    progress: bool = True
    areas: Path | None = None
    """Per-class pixels and hectares (CSV, or JSON for a .json name); a directory when there are several stacks."""
    stac: bool = False
    """Write a STAC item ``<map>.stac.json`` beside each map."""
    strict: bool = False
    """Refuse (instead of warn) when a stack's pixel size differs from the training one by more than 2×."""
    precision: str = "auto"
    """Network arithmetic: fp32, bf16 or auto (see slgt2_cli.runtime)."""


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


def _rank() -> tuple[int, int]:
    """(rank, world size) under torchrun; scenes are shared out across ranks."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def run_predict(config: PredictConfig) -> list[PredictResult]:
    """Predict every stack of ``config`` (checked before any compute) and return timing per scene."""
    ck = load_checkpoint(config.checkpoint)
    stacks = expand_stacks(config.stacks)
    outputs = output_paths(stacks, config.output)
    many = len(stacks) > 1
    tile = config.tile if config.tile is not None else ck.patch_size
    check_tile_stride(tile, config.stride if config.stride is not None else tile)
    device = resolve_device(config.device)
    predictor = Predictor.from_checkpoint(ck, device, tile=config.tile, stride=config.stride,
                                          batch_size=config.batch_size, tta=config.tta, blend=config.blend,
                                          precision=config.precision)
    check_tile_stride(predictor.tile, predictor.stride)
    grids = []
    for stack_path in stacks:  # everything that can fail on input, before any compute
        with open_stack(stack_path, config.units, channels=len(predictor.bands)) as stack:
            predictor.check_stack(stack)
            check_pixel_size(stack.grid, ck.training_gsd_m, stack_path, config.strict)
            grids.append(stack.grid)
    rank, world = _rank()
    _check_outputs(predictor, stacks, grids, outputs, config, many, rank, world)
    facts = CheckpointFacts.of(ck, config.checkpoint)
    results = []
    with terminate_as_interrupt("the map being written was removed"):  # SIGTERM cleans up like Ctrl-C
        for i, (stack_path, out) in enumerate(zip(stacks, outputs)):
            if i % world != rank:
                continue
            if many:
                out.parent.mkdir(parents=True, exist_ok=True)
            results.append(_predict_one(predictor, stack_path, out, config, many, facts))
    return results


def _output_roles(outputs: list[Path], config: PredictConfig, many: bool) -> list[tuple[str, Path | None]]:
    """Every file predict would write, with what it is (for messages)."""
    roles: list[tuple[str, Path | None]] = []
    for out in outputs:
        roles += [("map", out), ("confidence map", _sibling(config.confidence, out, ".confidence.tif", many)),
                  ("probability map", _sibling(config.probabilities, out, ".probabilities.tif", many)),
                  ("areas file", _sibling(config.areas, out, ".areas.csv", many))]
    return roles


def _check_outputs(predictor: Predictor, stacks: list[Path], grids: list[Grid], outputs: list[Path],
                   config: PredictConfig, many: bool, rank: int = 0, world: int = 1) -> None:
    """No output is an input or another output (whatever --overwrite says); then each of this rank's outputs
    (under torchrun a rank checks only its own, which no other rank writes): not there already (unless
    --overwrite), its directory writable, room on its disk."""
    check_distinct(_output_roles(outputs, config, many),
                   [("checkpoint", config.checkpoint)] + [("image stack", s) for s in stacks])
    for i, (stack_path, grid, out) in enumerate(zip(stacks, grids, outputs)):
        if i % world != rank:
            continue
        dtype, _ = class_map_dtype(predictor.classes)
        wanted = [(out, 1, dtype),
                  (_sibling(config.confidence, out, ".confidence.tif", many), 1, "uint8"),
                  (_sibling(config.probabilities, out, ".probabilities.tif", many), len(predictor.classes), "uint8")]
        for path, count, dt in wanted:
            if path is not None:
                prepare_output(path, overwrite=config.overwrite,
                               need_bytes=estimated_cog_bytes(grid, count, dt) + (1 << 20))
        check_gis_outputs(out, grid, stack_path, areas=_sibling(config.areas, out, ".areas.csv", many),
                          stac=config.stac, overwrite=config.overwrite)


def _predict_one(predictor: Predictor, stack_path: Path, out: Path, config: PredictConfig, many: bool,
                 facts: CheckpointFacts) -> PredictResult:
    start = time.perf_counter()
    with open_stack(stack_path, config.units, channels=len(predictor.bands)) as stack, ExitStack() as writers:
        grid = stack.grid
        prov = map_provenance(facts, predictor, stack, predictor.blend)
        maps = writers.enter_context(MapWriter.classes(out, grid, predictor.classes, overwrite=config.overwrite,
                                                       tags=prov.tags("classes")))
        conf_path = _sibling(config.confidence, out, ".confidence.tif", many)
        prob_path = _sibling(config.probabilities, out, ".probabilities.tif", many)
        conf = (writers.enter_context(MapWriter.confidence(conf_path, grid, config.overwrite, prov.tags("confidence")))
                if conf_path else None)
        prob = (writers.enter_context(MapWriter.probabilities(prob_path, grid, predictor.classes, config.overwrite,
                                                              prov.tags("probabilities")))
                if prob_path else None)
        add_gis_outputs(maps, grid, prov, areas=_sibling(config.areas, out, ".areas.csv", many), stac=config.stac,
                        confidence=conf_path, probabilities=prob_path)

        def sink(window, probs, valid):
            maps.write_classes(window, classes_from_probs(probs, valid))
            if conf is not None:
                conf.write(window, confidence_bytes(probs, valid))
            if prob is not None:
                prob.write(window, probability_bytes(probs, valid))

        total = len(TileGrid(grid.height, grid.width, predictor.tile, predictor.stride))
        cache = io_cache_mb(stack, predictor.tile, [w for w in (maps, conf, prob) if w is not None])
        with gdal_cache(cache), progress_bar(total=total, unit="tile", desc=stack_path.name,
                                             enabled=config.progress, leave=False) as bar:
            stats = predictor.predict(stack, sink, progress=bar.update)
        # leaving the ExitStack commits every writer (COG + rename); an error aborts them all
    return PredictResult(stack_path, out, time.perf_counter() - start, grid.width * grid.height, stats)

