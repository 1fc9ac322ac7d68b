"""Files on disk, without torch: grids, stacks (both layouts, `.mat`), units, label rasters, class tables,
GeoTIFF/COG writers and atomic file output.

In: paths given by users. Out: numpy windows with their grid, dates and units; written rasters and files.
"""
