"""Remote and virtual raster paths (``https://…``, ``s3://…``, ``/vsicurl/…``) handed to GDAL as written.

``pathlib.Path`` collapses ``//`` (``https://host/a.tif`` becomes ``https:/host/a.tif``), and the CLI's path
arguments arrive as ``Path`` objects, so :func:`gdal_path` also repairs a collapsed scheme. Nothing here
touches the network.
"""

from __future__ import annotations

import os
import re

_SCHEME = re.compile(r"^(?P<scheme>https?|ftp|s3|gs|az|abfs|oss|swift)(?P<sep>:/+)", re.IGNORECASE)
_VSI = re.compile(r"^/vsi[a-z0-9_]+/", re.IGNORECASE)
_INNER_URL = re.compile(r"(?<=/)(https?|ftp):/+", re.IGNORECASE)

REMOTE_HINT = ("check the address, the network and the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
               "for s3://, or AWS_NO_SIGN_REQUEST=YES for public buckets")


def gdal_path(path: str | os.PathLike[str]) -> str | None:
    """The name GDAL should open for a URL or ``/vsi…`` path (repaired if ``Path`` collapsed its ``//``);
    None for a local path."""
    text = os.fspath(path)
    if _VSI.match(text):
        return _INNER_URL.sub(lambda m: f"{m.group(1)}://", text, count=1)
    m = _SCHEME.match(text)
    if m:
        return f"{m['scheme']}://{text[m.end():]}"
    return None


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for URLs and GDAL virtual paths: they are opened by GDAL, never checked on the local disk."""
    return gdal_path(path) is not None


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as the user wrote it (URLs with their ``//``), for messages."""
    return gdal_path(path) or str(path)
