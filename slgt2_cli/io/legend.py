"""Class names and colours where GIS tools look for them: colour table policy, GDAL ``.aux.xml``, QGIS ``.qml``.

Representation (see docs/inference.md, "What GIS tools see"):

* **uint8 maps** embed a GDAL colour table (256 entries, 1 KB per IFD): every viewer colours the classes.
* **uint16 maps** embed no colour table: a TIFF palette is dense (65,536 entries, ~393 KB in *every* IFD of the
  COG, so one overview tile fetched over HTTP drags the whole palette along) and GIS tools then list 65,536
  classes. Their names and colours go to the sidecars below instead.
* ``<map>.tif.aux.xml`` (GDAL's PAM sidecar, read by GDAL, rasterio, QGIS, ArcGIS) holds a thematic raster
  attribute table (Value, Name, Red, Green, Blue, Alpha) with exactly the class table's classes, and for uint8
  maps the GDAL category names as well (a dense list indexed by value, so only where it stays short).
* ``<map>.qml``, QGIS's default style for ``<map>.tif``, is a paletted renderer listing exactly the classes with
  their names and colours (nodata stays transparent).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from slgt2_cli.io.classes import ClassTable

MAX_PALETTE_DTYPE = "uint8"
"""Colour tables are embedded only for maps of this type (a uint16 palette has 65,536 entries per IFD)."""

_RAT_FIELDS = (("Value", 0, 5), ("Name", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8), ("Alpha", 0, 9))
"""(name, GDAL field type 0=int 2=string, GDAL usage 5=MinMax 2=Name 6..9=Red/Green/Blue/Alpha)."""


def aux_xml_path(map_path: str | os.PathLike[str]) -> Path:
    """GDAL's PAM sidecar of a raster: ``map.tif.aux.xml``."""
    path = Path(map_path)
    return path.with_name(path.name + ".aux.xml")


def qml_path(map_path: str | os.PathLike[str]) -> Path:
    """QGIS's default style of a raster: ``map.qml`` beside ``map.tif``."""
    return Path(map_path).with_suffix(".qml")


def class_colormap(table: ClassTable, dtype: str, nodata: int) -> dict[int, tuple[int, int, int, int]] | None:
    """The colour table to embed in a class map of ``dtype``, or None (uint16 and wider: see the module doc)."""
    if dtype != MAX_PALETTE_DTYPE:
        return None
    colormap = {int(v): (int(r), int(g), int(b), 255) for v, (r, g, b) in zip(table.values, table.rgb())}
    colormap[int(nodata)] = (0, 0, 0, 0)
    return colormap


def aux_xml(table: ClassTable, dtype: str) -> str:
    """A GDAL PAM document for band 1: a thematic attribute table, and category names for uint8 maps."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    if dtype == MAX_PALETTE_DTYPE:
        names = {int(c.value): c.name for c in table.classes}
        cats = ET.SubElement(band, "CategoryNames")
        for value in range(max(names) + 1):
            ET.SubElement(cats, "Category").text = names.get(value, "")
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for i, (name, kind, usage) in enumerate(_RAT_FIELDS):
        field = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(field, "Name").text = name
        ET.SubElement(field, "Type").text = str(kind)
        ET.SubElement(field, "Usage").text = str(usage)
    for row, (c, rgb) in enumerate(zip(table.classes, table.rgb())):
        r = ET.SubElement(rat, "Row", index=str(row))
        for text in (str(c.value), c.name, *(str(int(x)) for x in rgb), "255"):
            ET.SubElement(r, "F").text = text
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def qml(table: ClassTable) -> str:
    """A QGIS layer style: paletted renderer on band 1 with exactly the table's classes, names and colours."""
    root = ET.Element("qgis", version="3.22.0", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1",
                             nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for c in table.classes:
        ET.SubElement(palette, "paletteEntry", value=str(c.value), color=c.color.lower(), alpha="255", label=c.name)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", invertColors="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"


def legend_sidecars(map_path: str | os.PathLike[str], table: ClassTable, dtype: str) -> dict[Path, str]:
    """The sidecar files of a class map and their contents."""
    return {aux_xml_path(map_path): aux_xml(table, dtype), qml_path(map_path): qml(table)}
