"""From raw stacks to model inputs: the temporal rule, normalisation, per-window preparation, datasets and
training patches.

In: stacks and label rasters from `slgt2_cli.io`. Out: float32 arrays (C, T, H, W) in model units, normalised,
and the index labels the loss expects.
"""
