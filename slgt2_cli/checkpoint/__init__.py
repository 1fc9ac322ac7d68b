"""Native checkpoints: their typed fields, saving and safe loading (`format`), and conversion of reference
(mmseg) checkpoints into them (`convert`).

In: `.pt`/`.pth` files. Out: a `Checkpoint` with model configuration, weights, class table, normalisation,
temporal rule, bands and provenance.
"""
