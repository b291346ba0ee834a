"""Reading detector exports (agent/vision/layouts.py): shapes judged, candidates decoded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from agent.vision.layouts import candidates, class_count, shape_problem

# The shapes the real exporters write at 160 px with 3 classes (tests/data/onnx/).
V5, V8, E2E = (1, 1575, 8), (1, 7, 525), (1, 300, 6)
SSD = [(1, 1917, 4), (1, 1917, 2)]


@pytest.mark.parametrize(
    ("layout", "shapes"),
    [("yolov5", [V5]), ("yolov8", [V8]), ("end2end", [E2E]), ("ssd", SSD)],
)
def test_each_layout_accepts_its_own_shape(layout, shapes):
    assert shape_problem(layout, shapes, {0, 1}) is None


@pytest.mark.parametrize(
    ("layout", "shapes"),
    [
        ("yolov5", [V8]),
        ("yolov8", [V5]),
        ("yolov8", [E2E]),
        ("end2end", [V8]),
        ("ssd", [V8]),
        ("yolov5", [(1, 3, 160, 160)]),
        ("yolov5", [(2, 1575, 8)]),  # a batch of two: the plug-in sends one frame
        ("ssd", [(1, 1917, 4), (1, 1000, 2)]),
    ],
)
def test_a_shape_of_another_layout_is_named(layout, shapes):
    problem = shape_problem(layout, shapes, {0})
    assert problem is not None
    assert f"layout {layout}" in problem and "x".join(map(str, shapes[0])) in problem


def test_named_axes_are_given_the_benefit_of_the_doubt():
    assert shape_problem("yolov5", [("batch", "anchors", None)], {0, 7}) is None
    assert shape_problem("yolov8", [("batch", 84, "anchors")], {79}) is None
    assert shape_problem("yolov8", [("batch", 84, "anchors")], {80}) is not None


def test_mapped_classes_beyond_the_models_are_named():
    assert class_count("yolov5", [V5]) == 3 and class_count("yolov8", [V8]) == 3
    assert class_count("end2end", [E2E]) is None  # class ids come per box
    problem = shape_problem("yolov8", [V8], {0, 2, 5, 7})
    assert problem is not None and "3 classes" in problem and "[5, 7]" in problem


def test_end2end_rows_pass_through_above_the_threshold():
    rows = np.array([[[10, 20, 30, 60, 0.9, 2], [0, 0, 5, 5, 0.1, 0], [1, 2, 3, 4, 0.5, 1]]])
    c = candidates("end2end", [rows], 160, {0, 1, 2}, 0.4)
    assert c.boxes.tolist() == [[10, 20, 30, 60], [1, 2, 3, 4]]
    assert c.classes.tolist() == [2, 1] and np.allclose(c.scores, [0.9, 0.5])


def test_ssd_background_never_wins():
    boxes = np.array([[[0.1, 0.2, 0.3, 0.6]] * 4], np.float32)
    scores = np.array([[[0.97, 0.6], [0.2, 0.8], [0.99, 0.01], [0.5, 0.45]]], np.float32)
    c = candidates("ssd", [boxes, scores], 300, {1}, 0.5)
    assert c.classes.tolist() == [1, 1] and np.allclose(c.scores, [0.6, 0.8])
    assert np.allclose(c.boxes[0], [30, 60, 90, 180])


rows = hnp.arrays(
    np.float32,
    st.tuples(st.integers(9, 40), st.just(8)),  # candidates outnumber columns
    elements=st.floats(0, 1, width=32),
)


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(0.05, 0.95))
def test_yolov8_is_yolov5_transposed_without_objectness(v5, threshold):
    v5 = v5.copy()
    v5[:, :4] *= 160
    v8 = np.concatenate([v5[:, :4], v5[:, 5:] * v5[:, 4:5]], axis=1).T[None]
    a = candidates("yolov5", [v5[None]], 160, {0, 1, 2}, threshold)
    b = candidates("yolov8", [v8], 160, {0, 1, 2}, threshold)
    assert np.allclose(a.boxes, b.boxes) and np.allclose(a.scores, b.scores)
    assert (a.scores >= threshold).all() and (a.boxes[:, 2:] >= a.boxes[:, :2]).all()
