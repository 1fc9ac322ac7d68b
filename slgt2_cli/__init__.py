"""slgt2: land-cover mapping from Sentinel-1 SAR time series with SL-GT2Net."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slgt2")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
