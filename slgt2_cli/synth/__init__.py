"""Synthetic, georeferenced Sentinel-1 datasets for demos, tests and benchmarks: the backscatter model of
crops through a season (`model`) and the writer of scenes, labels and a large scene (`scenes`).

In: a size, a date count, a seed. Out: a dataset directory in the documented layout.
"""
