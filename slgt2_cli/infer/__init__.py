"""Whole-scene inference: the tile grid and blending (`tiling`), the streaming predictor that reads row
bands, batches tiles and accumulates blended probabilities (`predictor`), and the predict run that writes maps
(`run`).

In: a checkpoint and stacks. Out: class maps, confidence and probability rasters.
"""
