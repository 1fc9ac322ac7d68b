"""Run by Debian's /usr/bin/python3 (with QGIS) from test_gis_legend.py: load a raster as QGIS does, print its legend.

Prints JSON: {"valid", "renderer", "entries": [[value, "#rrggbb", label], ...], "legend": [labels]}.
"""

import json
import os
import sys

from qgis.core import QgsApplication, QgsRasterLayer

app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "map")  # loads map.qml, the layer's default style, as QGIS does
renderer = layer.renderer()
out = {"valid": layer.isValid(), "renderer": renderer.type() if renderer else None, "entries": [], "legend": []}
if renderer is not None and renderer.type() == "paletted":
    out["entries"] = [[c.value, c.color.name(), c.label] for c in renderer.classes()]
    out["legend"] = [label for label, _ in renderer.legendSymbologyItems()]
print(json.dumps(out), flush=True)
os._exit(0)  # QGIS 3.22 may crash while tearing down a headless application; the answer is out
