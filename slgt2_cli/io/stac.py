"""STAC metadata of predicted maps, built with pystac and its extension classes: the Item beside a map
(``predict --stac``, ``predict-many --stac``: ``<map>.stac.json``) and the Collection of a predict-many run
(``collection.json``).

STAC 1.1.0 (pystac's) with the projection (v2.0.0), raster (v1.1.0) and classification (v2.0.0) extensions; the
structure is documented in docs/inference.md ("STAC item") and checked by :func:`validate_item`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.warp import transform_geom

from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid

STAC_VERSION = pystac.get_stac_version()
EXTENSIONS = {
    "proj": ProjectionExtension.get_schema_uri(),
    "raster": RasterExtension.get_schema_uri(),
    "classification": ClassificationExtension.get_schema_uri(),
}
COG_TYPE = str(pystac.MediaType.COG)
SIDECAR_TYPES = {".qml": ("text/xml", ["style", "metadata"]), ".xml": ("application/xml", ["metadata"]),
                 ".csv": ("text/csv", ["metadata"]), ".json": ("application/json", ["metadata"])}
COLLECTION = "collection.json"


def stac_path(map_path: str | os.PathLike[str]) -> Path:
    """``map.tif`` -> ``map.stac.json``."""
    return Path(map_path).with_suffix(".stac.json")


def _slug(name: str) -> str:
    """Classification v2 class ``name``: letters, digits, - and _ only."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or "class"


def _classes(table: ClassTable) -> list[Classification]:
    return [Classification.create(value=int(c.value), name=_slug(c.name), title=c.name, description=c.name,
                                  color_hint=c.color[1:].upper()) for c in table.classes]


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


def _href(href: Path, base: Path) -> str:
    rel = Path(os.path.relpath(href, base)).as_posix()
    return rel if rel.startswith("../") else f"./{rel}"


def _times(dates: Sequence[dt.date] | None, created: str) -> dict[str, Any]:
    if not dates:
        return {"datetime": dt.datetime.fromisoformat(created)}
    return {"datetime": None,
            "start_datetime": dt.datetime.combine(min(dates), dt.time(0, 0, 0), dt.timezone.utc),
            "end_datetime": dt.datetime.combine(max(dates), dt.time(23, 59, 59), dt.timezone.utc)}


def stac_item(map_path: Path, grid: Grid, table: ClassTable, *, dtype: str, nodata: int,
              dates: Sequence[dt.date] | None, provenance: dict[str, str], sidecars: dict[str, Path] | None = None,
              confidence: Path | None = None, probabilities: Path | None = None) -> dict[str, Any]:
    """The STAC Item (as a dict) of a class map on ``grid`` (a georeferenced grid) with its optional outputs and
    ``sidecars`` ({asset key: path}, e.g. style, aux, areas)."""
    base = stac_path(map_path).parent
    geom = _footprint(grid)
    created = provenance.get("SLGT2_CREATED") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    times = _times(dates, created)
    item = pystac.Item(id=Path(map_path).stem, geometry=geom, bbox=_bbox(geom), datetime=times["datetime"],
                       start_datetime=times.get("start_datetime"), end_datetime=times.get("end_datetime"),
                       properties={"created": created})
    t = grid.transform
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.apply(epsg=grid.crs.to_epsg(), wkt2=grid.crs.to_wkt(), shape=[grid.height, grid.width],
               transform=[t.a, t.b, t.c, t.d, t.e, t.f], bbox=[*(t @ (0, grid.height)), *(t @ (grid.width, 0))])
    item.properties.update({k.lower().replace("slgt2_", "slgt2:"): v for k, v in provenance.items()
                            if k.startswith("SLGT2_")})
    resolution = abs(t.a) if t.b == 0 else None
    data = [("classes", map_path, "land-cover classes",
             [RasterBand.create(data_type=dtype, nodata=nodata, sampling="area", spatial_resolution=resolution)])]
    if confidence is not None:
        data.append(("confidence", confidence, "confidence",
                     [RasterBand.create(data_type="uint8", nodata=0, scale=1 / 255)]))
    if probabilities is not None:
        data.append(("probabilities", probabilities, "class probabilities",
                     [_named(RasterBand.create(data_type="uint8", nodata=255, scale=1 / 254), f"p({c.value}: {c.name})")
                      for c in table.classes]))
    for key, path, title, bands in data:
        asset = pystac.Asset(href=_href(Path(path), base), media_type=COG_TYPE, roles=["data"], title=title)
        item.add_asset(key, asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = bands
        if key == "classes":
            ClassificationExtension.ext(asset, add_if_missing=True).classes = _classes(table)
    for key, path in (sidecars or {}).items():
        kind, roles = SIDECAR_TYPES.get(Path(path).suffix.lower(), ("application/octet-stream", ["metadata"]))
        item.add_asset(key, pystac.Asset(href=_href(Path(path), base), media_type=kind, roles=roles))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _named(band: RasterBand, name: str) -> RasterBand:
    band.properties["name"] = name
    return band


def stac_collection(items: Sequence[tuple[Path, dict[str, Any]]], directory: Path, *, title: str,
                    description: str) -> dict[str, Any]:
    """The STAC Collection (as a dict) of the Items ``items`` ((item file, item dict), as written beside their
    maps) for ``directory/collection.json``: their union extent, a link to each item, the classification classes."""
    bboxes = [i["bbox"] for _, i in items]
    spatial = pystac.SpatialExtent([[min(b[0] for b in bboxes), min(b[1] for b in bboxes),
                                     max(b[2] for b in bboxes), max(b[3] for b in bboxes)]])
    starts, ends = [], []
    for _, i in items:
        p = i["properties"]
        starts.append(pystac.utils.str_to_datetime(p.get("start_datetime") or p["datetime"]))
        ends.append(pystac.utils.str_to_datetime(p.get("end_datetime") or p["datetime"]))
    collection = pystac.Collection(id=_slug(Path(directory).resolve().name), title=title, description=description,
                                   extent=pystac.Extent(spatial, pystac.TemporalExtent([[min(starts), max(ends)]])),
                                   license="other")
    classes = items[0][1]["assets"]["classes"].get("classification:classes")
    if classes:
        ClassificationExtension.summaries(collection, add_if_missing=True).classes = \
            [Classification(c) for c in classes]
    for path, item in items:
        collection.add_link(pystac.Link(pystac.RelType.ITEM, _href(Path(path), Path(directory)),
                                        media_type=pystac.MediaType.GEOJSON, title=item["id"]))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


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
        problems.append(f"type must be Feature and stac_version {STAC_VERSION}")
    problems += [f"stac_extensions: {url} missing" for url in EXTENSIONS.values() if url not in item["stac_extensions"]]
    props = item["properties"]
    if props.get("datetime") is None and not (props.get("start_datetime") and props.get("end_datetime")):
        problems.append("properties: datetime null without start_datetime and end_datetime")
    for key in ("proj:code", "proj:shape", "proj:transform"):
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
