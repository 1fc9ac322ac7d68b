"""Run by Debian's /usr/bin/python3 (with python3-gdal) from the tests: GDAL's own COG validator on each file.

Prints one JSON object per file: {"path", "errors", "warnings", "header_bytes", "ifd_offsets"}; header_bytes is
the offset of the first tile's data (everything before it: TIFF header, ghost area, every IFD and its tags).
"""

import json
import sys

from osgeo import gdal
from osgeo_utils.samples.validate_cloud_optimized_geotiff import (
    ValidateCloudOptimizedGeoTIFFException,
    validate,
)

gdal.UseExceptions()
for path in sys.argv[1:]:
    try:
        warnings, errors, details = validate(path, full_check=True)
    except ValidateCloudOptimizedGeoTIFFException as exc:
        warnings, errors, details = [], [str(exc)], {}
    offsets = [o for v in details.get("data_offsets", {}).values() for o in ([v] if isinstance(v, int) else v) if o]
    print(json.dumps({"path": path, "errors": errors, "warnings": warnings,
                      "header_bytes": min(offsets) if offsets else None,
                      "ifd_offsets": details.get("ifd_offsets", {})}))
