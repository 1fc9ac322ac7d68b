"""Scoring a model on whole dataset scenes with the same tiled inference as `predict` (no second code path).

Used by validation during training and by `slgt2 evaluate --checkpoint --dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slgt2_cli.infer.predictor import Predictor, classes_from_probs, io_cache_mb
from slgt2_cli.io.geotiff import gdal_cache
from slgt2_cli.scoring.metrics import ConfusionMatrix


def score_scenes(predictor: Predictor, scenes: Sequence, progress=None) -> ConfusionMatrix:
    """Predict every scene and accumulate a confusion matrix against its labels, band by band."""
    cm = ConfusionMatrix(predictor.num_classes)
    for scene in scenes:
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:

            def sink(window, probs: np.ndarray, valid: np.ndarray) -> None:
                values, labelled = labels.read(window)
                truth = predictor.classes.encode(values, labelled)
                cm.update(classes_from_probs(probs, valid), truth)

            with gdal_cache(io_cache_mb(stack, predictor.tile)):
                predictor.predict(stack, sink, progress=progress)
    return cm
