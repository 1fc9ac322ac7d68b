"""slgt2: land-cover mapping from Sentinel-1 SAR time series with SL-GT2Net.

The Python API (``import slgt2_cli as slgt2``): :func:`open_stack`, :func:`load_model`, :func:`predict`,
:func:`write_map`, :func:`evaluate`, :func:`predict_many` (see ``docs/python.md``) and :func:`train`
(``docs/training.md``). They are imported on first use, so importing the package (and ``slgt2 --help``) loads
neither torch nor xarray.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("slgt2")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_API = ("Model", "open_stack", "load_model", "predict", "write_map", "evaluate", "predict_many", "train")
__all__ = ["Model", "__version__", "evaluate", "load_model", "open_stack", "predict", "predict_many", "train",
           "write_map"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("slgt2_cli.api"), name)
    raise AttributeError(f"module 'slgt2_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
