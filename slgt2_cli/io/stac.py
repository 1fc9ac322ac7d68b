"""A STAC Item describing a predicted map (``predict --stac``): ``<map>.stac.json`` beside the map.

STAC 1.0.0 with the projection (v1.1.0), raster (v1.1.0) and classification (v2.0.0) extensions; the structure
is documented in docs/inference.md ("STAC item") and checked by :func:`validate_item`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rasterio.warp import transform_geom

from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid

STAC_VERSION = "1.0.0"
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
SIDECAR_TYPES = {".qml": ("text/xml", ["style", "metadata"]), ".xml": ("application/xml", ["metadata"]),
                 ".csv": ("text/csv", ["metadata"]), ".json": ("application/json", ["metadata"])}


def stac_path(map_path: str | os.PathLike[str]) -> Path:
    """``map.tif`` -> ``map.stac.json``."""
    return Path(map_path).with_suffix(".stac.json")


def _slug(name: str) -> str:
    """Classification v2 class ``name``: letters, digits, - and _ only."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or "class"


def _classes(table: ClassTable) -> list[dict[str, Any]]:
    return [{"value": c.value, "name": _slug(c.name), "title": c.name, "description": c.name,
             "color_hint": c.color[1:].upper()} for c in table.classes]


def _footprint(grid: Grid) -> dict[str, Any]:
    """The grid's outline in EPSG:4326 (10 points per side, so curved edges stay close)."""
    w, h, t = grid.width, grid.height, grid.transform
    ring = [(w * i / 10, 0) for i in range(10)] + [(w, h * i / 10) for i in range(10)] + \
           [(w * (10 - i) / 10, h) for i in range(10)] + [(0, h * (10 - i) / 10) for i in range(10)]
    coords = [tuple(t @ p) for p in ring]
    geom = {"type": "Polygon", "coordinates": [coords + [coords[0]]]}
    return transform_geom(grid.crs, "EPSG:4326", geom)


def _bbox(geom: dict[str, Any]) -> list[float]:
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)]


def _asset(href: Path, base: Path, **fields: Any) -> dict[str, Any]:
    rel = Path(os.path.relpath(href, base)).as_posix()
    return {"href": rel if rel.startswith("../") else f"./{rel}", **fields}


def stac_item(map_path: Path, grid: Grid, table: ClassTable, *, dtype: str, nodata: int,
              dates: Sequence[dt.date] | None, provenance: dict[str, str], sidecars: dict[str, Path] | None = None,
              confidence: Path | None = None, probabilities: Path | None = None) -> dict[str, Any]:
    """The STAC Item of a class map on ``grid`` (a georeferenced grid) with its optional outputs and
    ``sidecars`` ({asset key: path}, e.g. style, aux, areas)."""
    base = stac_path(map_path).parent
    geom = _footprint(grid)
    created = provenance.get("SLGT2_CREATED") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    props: dict[str, Any] = {"datetime": None, "created": created}
    if dates:
        props["start_datetime"] = f"{min(dates).isoformat()}T00:00:00Z"
        props["end_datetime"] = f"{max(dates).isoformat()}T23:59:59Z"
    else:
        props["datetime"] = created
    t = grid.transform
    props.update({"proj:epsg": grid.crs.to_epsg(), "proj:wkt2": grid.crs.to_wkt(), "proj:shape": [grid.height, grid.width],
                  "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                  "proj:bbox": [*(t @ (0, grid.height)), *(t @ (grid.width, 0))]})
    props.update({k.lower().replace("slgt2_", "slgt2:"): v for k, v in provenance.items() if k.startswith("SLGT2_")})
    resolution = abs(t.a) if t.b == 0 else None
    assets = {"classes": _asset(map_path, base, type=COG_TYPE, roles=["data"], title="land-cover classes",
                                **{"classification:classes": _classes(table),
                                   "raster:bands": [{"data_type": dtype, "nodata": nodata, "sampling": "area",
                                                     "spatial_resolution": resolution}]})}
    if confidence is not None:
        assets["confidence"] = _asset(confidence, base, type=COG_TYPE, roles=["data"], title="confidence",
                                      **{"raster:bands": [{"data_type": "uint8", "nodata": 0, "scale": 1 / 255}]})
    if probabilities is not None:
        assets["probabilities"] = _asset(probabilities, base, type=COG_TYPE, roles=["data"],
                                         title="class probabilities",
                                         **{"raster:bands": [{"data_type": "uint8", "nodata": 255, "scale": 1 / 254,
                                                              "name": f"p({c.value}: {c.name})"}
                                                             for c in table.classes]})
    for key, path in (sidecars or {}).items():
        kind, roles = SIDECAR_TYPES.get(Path(path).suffix.lower(), ("application/octet-stream", ["metadata"]))
        assets[key] = _asset(Path(path), base, type=kind, roles=roles)
    return {"type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": list(EXTENSIONS.values()),
            "id": map_path.stem, "geometry": geom, "bbox": _bbox(geom), "properties": props, "links": [],
            "assets": assets}


def validate_item(item: dict[str, Any]) -> list[str]:
    """Problems of ``item`` against the structure documented in docs/inference.md (empty list: valid)."""
    problems = []
    for key, kind in (("type", str), ("stac_version", str), ("stac_extensions", list), ("id", str),
                      ("geometry", dict), ("bbox", list), ("properties", dict), ("links", list), ("assets", dict)):
        if not isinstance(item.get(key), kind):
            problems.append(f"{key}: missing or not a {kind.__name__}")
    if problems:
        return problems
    if item["type"] != "Feature" or item["stac_version"] != STAC_VERSION:
        problems.append("type must be Feature and stac_version 1.0.0")
    problems += [f"stac_extensions: {url} missing" for url in EXTENSIONS.values() if url not in item["stac_extensions"]]
    props = item["properties"]
    if props.get("datetime") is None and not (props.get("start_datetime") and props.get("end_datetime")):
        problems.append("properties: datetime null without start_datetime and end_datetime")
    for key in ("proj:epsg", "proj:shape", "proj:transform"):
        if key not in props:
            problems.append(f"properties: {key} missing")
    if len(item["bbox"]) != 4 or item["geometry"].get("type") != "Polygon":
        problems.append("bbox must have 4 numbers and geometry be a Polygon")
    data = item["assets"].get("classes", {})
    if not data.get("href") or "data" not in data.get("roles", []):
        problems.append("assets.classes: href and role 'data' required")
    for c in data.get("classification:classes") or [None]:
        if not isinstance(c, dict) or not isinstance(c.get("value"), int) or \
                not re.fullmatch(r"[0-9A-Za-z_-]+", str(c.get("name", ""))) or \
                not re.fullmatch(r"[0-9A-Fa-f]{6}", str(c.get("color_hint", ""))):
            problems.append(f"assets.classes: bad classification:classes entry {c!r}")
    if not data.get("raster:bands"):
        problems.append("assets.classes: raster:bands missing")
    problems += [f"assets.{k}: href missing" for k, a in item["assets"].items() if not a.get("href")]
    return problems
