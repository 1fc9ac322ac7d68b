"""Confusion matrix and scores, checked against hand-computed values."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.scoring.metrics import ConfusionMatrix, compute_metrics

TABLE = ClassTable.from_list([
    {"value": 10, "name": "crop"}, {"value": 20, "name": "forest"},
    {"value": 30, "name": "water"}, {"value": 40, "name": "urban"},
])


def test_update_counts_and_ignores():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1, 1, 2, IGNORE_INDEX, 0]), np.array([0, 1, 0, 2, 1, IGNORE_INDEX]))
    assert cm.counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert cm.counts.dtype == np.int64 and cm.total == 4
    with pytest.raises(ValueError):
        cm.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError):
        cm.update(np.array([0, 1]), np.array([0]))


@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 3)), max_size=200), st.integers(0, 200))
def test_merge_equals_single_pass(pairs, split):
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    whole = ConfusionMatrix(4).update(arr[:, 0], arr[:, 1])
    a = ConfusionMatrix(4).update(arr[:split, 0], arr[:split, 1])
    b = ConfusionMatrix(4).update(arr[split:, 0], arr[split:, 1])
    assert a + b == whole
    assert whole.total == int(((arr[:, 0] >= 0) & (arr[:, 1] >= 0)).sum())


def test_metrics_by_hand():
    # truth rows, prediction columns; class 3 (urban, 40) absent from both.
    #            crop forest water urban
    counts = [[5, 1, 0, 0],   # crop: support 6
              [2, 3, 0, 0],   # forest: support 5
              [0, 0, 0, 0],   # water: never in labels but predicted twice -> present, recall 0
              [0, 0, 0, 0]]
    counts[0][2] = 2          # crop predicted as water twice: crop support 8
    cm = ConfusionMatrix(4, np.array(counts))
    m = compute_metrics(cm, TABLE)
    n = 5 + 1 + 2 + 2 + 3  # 13
    assert m["pixels"] == n
    assert m["overall_accuracy"] == pytest.approx(8 / 13)
    # p_e = sum(support_i * predicted_i) / n^2 = (8*7 + 5*4 + 0*2) / 169
    pe = (8 * 7 + 5 * 4) / 169
    assert m["kappa"] == pytest.approx((8 / 13 - pe) / (1 - pe))
    crop, forest, water, urban = m["per_class"]
    assert crop == dict(value=10, name="crop", precision=pytest.approx(5 / 7), recall=pytest.approx(5 / 8),
                        f1=pytest.approx(10 / 15), iou=pytest.approx(5 / 10), support=8, predicted=7, present=True)
    assert forest["precision"] == pytest.approx(3 / 4) and forest["recall"] == pytest.approx(3 / 5)
    assert forest["f1"] == pytest.approx(6 / 9) and forest["iou"] == pytest.approx(3 / 6)
    # water: predicted 2, support 0 -> precision 0/2 = 0, recall 0/0 -> 0 by rule, f1 = iou = 0
    assert water == dict(value=30, name="water", precision=0.0, recall=0.0, f1=0.0, iou=0.0,
                         support=0, predicted=2, present=True)
    assert urban == dict(value=40, name="urban", precision=None, recall=None, f1=None, iou=None,
                         support=0, predicted=0, present=False)
    assert m["absent_classes"] == [40]
    assert m["miou"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert m["mean_f1"] == pytest.approx((10 / 15 + 6 / 9 + 0.0) / 3)
    assert m["confusion_matrix"] == [[5, 1, 2, 0], [2, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert m["confusion_matrix_normalized"][0] == pytest.approx([5 / 8, 1 / 8, 2 / 8, 0])
    assert m["confusion_matrix_normalized"][3] == [0, 0, 0, 0]
    json.dumps(m)  # serialisable as is


def test_class_in_labels_never_predicted_has_precision_zero():
    cm = ConfusionMatrix(2, np.array([[4, 0], [3, 0]]))  # class 1 in labels, never predicted
    m = compute_metrics(cm, ClassTable.default([1, 2]))
    second = m["per_class"][1]
    assert second["precision"] == 0.0 and second["recall"] == 0.0 and second["present"]
    assert m["kappa"] == pytest.approx(0.0)  # prediction constant: no agreement beyond chance


def test_perfect_single_class_and_empty():
    m = compute_metrics(ConfusionMatrix(2, np.array([[9, 0], [0, 0]])), ClassTable.default([1, 2]))
    assert m["overall_accuracy"] == 1.0 and m["kappa"] == 1.0 and m["miou"] == 1.0 and m["mean_f1"] == 1.0
    assert m["absent_classes"] == [2]
    empty = compute_metrics(ConfusionMatrix(2), ClassTable.default([1, 2]))
    assert empty["overall_accuracy"] is None and empty["kappa"] is None and empty["pixels"] == 0


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=300))
def test_scores_are_fractions(pairs):
    arr = np.array(pairs)
    m = compute_metrics(ConfusionMatrix(4).update(arr[:, 0], arr[:, 1]), TABLE)
    for key in ("overall_accuracy", "miou", "mean_f1"):
        assert 0.0 <= m[key] <= 1.0
    assert -1.0 <= m["kappa"] <= 1.0
    for pc in m["per_class"]:
        for key in ("precision", "recall", "f1", "iou"):
            assert pc[key] is None or 0.0 <= pc[key] <= 1.0
        assert (pc[key] is None) == (not pc["present"])
