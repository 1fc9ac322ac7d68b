"""What `predict` adds for GIS users: provenance tags, the areas file, the STAC item, the pixel-size check.

:func:`run_predict` calls these at a few points; each output is a sidecar of the class map's
:class:`~slgt2_cli.io.geotiff.MapWriter`, so it appears (atomically) with the map or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slgt2_cli.checkpoint.format import Checkpoint
from slgt2_cli.errors import InputError
from slgt2_cli.io.atomic import prepare_output
from slgt2_cli.io.geotiff import MapWriter, class_map_dtype
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.legend import aux_xml_path, qml_path
from slgt2_cli.io.provenance import MapProvenance, file_sha256, model_preset, used_dates
from slgt2_cli.io.stac import stac_item, stac_path
from slgt2_cli.scoring.areas import AreaTally


@dataclass(frozen=True, kw_only=True)
class CheckpointFacts:
    """What every map of a run records about its checkpoint (hashed once per run)."""

    path: Path
    sha256: str
    preset: str
    gsd_m: float | None

    @classmethod
    def of(cls, ck: Checkpoint, path: Path) -> CheckpointFacts:
        return cls(path=path, sha256=file_sha256(path), preset=model_preset(ck.model_config, ck.provenance),
                   gsd_m=ck.training_gsd_m)


def map_provenance(facts: CheckpointFacts, predictor: Any, stack: Any, blend: str) -> MapProvenance:
    """Provenance of the maps of one stack predicted by ``predictor``."""
    return MapProvenance(
        checkpoint=facts.path, checkpoint_sha256=facts.sha256, model_preset=facts.preset,
        classes=predictor.classes.to_list(), stack=Path(stack.path), dates=stack.dates,
        dates_used=used_dates(predictor.rule, stack.dates), temporal_rule=predictor.rule.to_dict(),
        tile=predictor.tile, stride=predictor.stride, blend=blend, tta=predictor.tta,
        units=f"{stack.units} -> {predictor.units or stack.model_units}", training_gsd_m=facts.gsd_m,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def check_gis_outputs(out: Path, grid: Grid, stack_path: Path, *, areas: Path | None, stac: bool,
                      overwrite: bool) -> None:
    """Before any compute: every sidecar of ``out`` can be written; --stac needs a georeferenced stack."""
    if stac and grid.crs is None:
        raise InputError("{stac} needs a georeferenced stack (this one has no CRS)", stack_path, options=("stac",))
    if areas is not None and Path(areas).resolve() in {out.resolve(), aux_xml_path(out).resolve(),
                                                       qml_path(out).resolve(), stac_path(out).resolve()}:
        raise InputError("{areas} must name a file of its own, not the map or one of its sidecars", areas,
                         options=("areas",))
    paths = [aux_xml_path(out), qml_path(out)] + ([areas] if areas else []) + ([stac_path(out)] if stac else [])
    for path in paths:
        prepare_output(path, overwrite=overwrite)


def add_gis_outputs(maps: MapWriter, grid: Grid, prov: MapProvenance, *, areas: Path | None, stac: bool,
                    confidence: Path | None, probabilities: Path | None) -> None:
    """Attach the areas tally and file, and the STAC item, to the class map writer ``maps``."""
    table = maps.table
    sidecars = {"aux": aux_xml_path(maps.path), "style": qml_path(maps.path)}
    if areas is not None:
        tally = AreaTally(grid, len(table))
        maps.class_observers.append(tally)
        maps.add_sidecar(areas, lambda: tally.render(table, areas.suffix))
        sidecars["areas"] = areas
    if stac:
        dtype, nodata = class_map_dtype(table)
        item = stac_item(maps.path, grid, table, dtype=dtype, nodata=nodata, dates=prov.dates,
                         provenance=prov.tags("classes"), sidecars=sidecars, confidence=confidence,
                         probabilities=probabilities)
        maps.add_sidecar(stac_path(maps.path), json.dumps(item, indent=2) + "\n")

