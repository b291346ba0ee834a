"""The ONNX plug-in on files written by the real YOLO exporters (tests/data/onnx/).

Each model was made by its project's own exporter (Ultralytics 8.4 for YOLOv8, YOLO11 and
YOLO26: raw head, NMS-free head, NMS inside, float16 weights; the yolov5 package, Ultralytics'
YOLOv5 v7.0, for the classic layout, static and dynamic) from the project's model definition
with random weights; scripts/export-onnx-fixtures made them and recorded what the exporter's
OWN decoding (letterbox, decode, NMS, boxes back in the photo) finds on three real photos. The
plug-in must find the same boxes in the photo's pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from agent.errors import ConfigError, DeviceError
from agent.vision.detector_config import OnnxDetectorConfig
from agent.vision.detectors import OnnxDetector
from agent.vision.tracker import Detection
from tests.kits.paths import TEST_DATA

FIXTURES = TEST_DATA / "onnx"
PHOTOS = TEST_DATA / "people_eval"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.json"))
LABELS = {0: "a", 1: "b", 2: "c"}


def reference(stem: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{stem}.json").read_text())


def detector(stem: str, **kw: Any) -> OnnxDetector:
    ref = reference(stem)
    args: dict[str, Any] = {
        "model": FIXTURES / ref["model"],
        "classes": LABELS,
        "layout": ref["layout"],
        "score_threshold": ref["score_threshold"],
        "nms_iou": ref["nms_iou"],
        # A static export gives its own input size; a dynamic one must be told.
        "input_size": ref["input_size"] if ref["dynamic"] else None,
    }
    return OnnxDetector(OnnxDetectorConfig(**(args | kw)))


def as_rows(found: list[Detection]) -> np.ndarray:
    """x1, y1, x2, y2, score, class index, the reference files' form."""
    index = {v: k for k, v in LABELS.items()}
    rows = [(x, y, x + w, y + h, d.score, index[d.label]) for d in found for x, y, w, h in [d.box]]
    return np.array(sorted(rows, key=lambda r: (r[5], -r[4])), np.float64).reshape(-1, 6)


def test_the_fixtures_are_what_the_exporters_wrote():
    assert set(MODELS) == {
        "yolov5t_160",
        "yolov5t_dynamic",
        "yolov8t_160",
        "yolo11t_160",
        "yolo26t_160",
        "yolo26t_160_e2e",
        "yolov8t_160_nms",
        "yolo26t_160_fp16",
    }
    for stem in MODELS:
        path = FIXTURES / f"{stem}.onnx"
        assert path.stat().st_size < 400_000, stem
        m = onnx.load(str(path))
        assert m.producer_name == "pytorch", stem
        assert [i.name for i in m.graph.input] == ["images"]
        assert [o.name for o in m.graph.output] == ["output0"]


@pytest.mark.parametrize("stem", MODELS)
def test_plugin_finds_the_exporters_own_boxes(stem):
    ref = reference(stem)
    det = detector(stem)
    for name, want in ref["reference"].items():
        image = cv2.imread(str(PHOTOS / name))
        got = as_rows(det.detect(image, None))
        want = np.array(sorted(want, key=lambda r: (r[5], -r[4])), np.float64).reshape(-1, 6)
        # A box wholly in the letterbox's grey border is clipped to nothing: the exporters keep
        # it, the plug-in does not report it.
        want = want[(want[:, 2] > want[:, 0]) & (want[:, 3] > want[:, 1])]
        assert len(got) == len(want), (stem, name)
        assert len(want) >= 2  # the threshold leaves every photo a few boxes
        # Boxes in the photo's pixels to a pixel, same score and class.
        assert np.allclose(got[:, :4], want[:, :4], atol=1.0), (stem, name)
        assert np.allclose(got[:, 4], want[:, 4], atol=2e-3), (stem, name)
        assert (got[:, 5] == want[:, 5]).all(), (stem, name)


@pytest.mark.parametrize(
    ("stem", "wrong"),
    [
        ("yolov5t_160", "yolov8"),
        ("yolov8t_160", "yolov5"),
        ("yolo11t_160", "end2end"),
        ("yolo26t_160_e2e", "yolov8"),
        ("yolo26t_160_e2e", "yolov5"),
        ("yolov8t_160_nms", "yolov8"),
        ("yolov8t_160", "ssd"),
    ],
)
def test_a_layout_that_does_not_fit_the_export_is_refused_at_load(stem, wrong):
    # The output shapes are fixed in these files: a wrong layout is a config error naming
    # the shape, not a stream of nonsense boxes.
    with pytest.raises(ConfigError, match=r"layout") as err:
        detector(stem, layout=wrong)
    shape = "x".join(str(d) for d in OUTPUT_SHAPES[stem])
    assert shape in str(err.value)


OUTPUT_SHAPES = {
    "yolov5t_160": (1, 1575, 8),
    "yolov8t_160": (1, 7, 525),
    "yolo11t_160": (1, 7, 525),
    "yolo26t_160_e2e": (1, 300, 6),
    "yolov8t_160_nms": (1, 300, 6),
}


def test_classes_the_model_does_not_have_are_a_config_error():
    with pytest.raises(ConfigError, match=r"3 classes"):
        detector("yolov8t_160", classes={0: "person", 5: "bus"})
    with pytest.raises(ConfigError, match=r"3 classes"):
        detector("yolov5t_160", classes={3: "truck"})


def test_an_input_size_that_is_not_the_models_is_a_config_error():
    # Before: accepted, then every frame failed in onnxruntime.
    with pytest.raises(ConfigError, match="fixed at 160 x 160, not 320"):
        detector("yolov8t_160", input_size=320)
    assert detector("yolov8t_160", input_size=160)


def test_a_dynamic_axes_export_needs_input_size():
    # What `export.py --dynamic` (or `yolo export dynamic=True`) writes: batch, height, width
    # and the anchors named instead of fixed. Without input_size the camera cannot start.
    with pytest.raises(ConfigError, match="input_size"):
        detector("yolov5t_dynamic", input_size=None)


def test_a_float16_input_export_is_fed_float16(tmp_path):
    # What a half-precision export traced on a GPU takes (yolov5 `export.py --half`,
    # Ultralytics `quantize=16` on CUDA): float16 frames. Made here from the float16 CPU export
    # by onnxruntime's float16 converter (the one Ultralytics uses) with the input and output
    # turned to float16 too. Before, every frame failed in onnxruntime (a float32 frame).
    from onnxruntime.transformers import float16

    src = onnx.load(str(FIXTURES / "yolo26t_160_fp16.onnx"))
    path = tmp_path / "yolo26t_half_io.onnx"
    onnx.save(float16.convert_float_to_float16(src, keep_io_types=False), str(path))
    assert (
        onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    )
    det = detector("yolo26t_160_fp16", model=path)
    for name, want in reference("yolo26t_160_fp16")["reference"].items():
        got = as_rows(det.detect(cv2.imread(str(PHOTOS / name)), None))
        want = np.array(sorted(want, key=lambda r: (r[5], -r[4])), np.float64).reshape(-1, 6)
        assert len(got) == len(want), name
        # A float16 output rounds a box corner to 1/8 of an input pixel (~0.5 photo pixels).
        assert np.allclose(got[:, :4], want[:, :4], atol=2.0), name
        assert np.allclose(got[:, 4], want[:, 4], atol=3e-3), name


def test_an_input_the_plugin_cannot_fill_is_a_config_error(tmp_path):
    # e.g. a uint8 image input (some TensorFlow exports): named at start, not a failing frame.
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["output0"], to=TensorProto.FLOAT)],
        "uint8_input",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "u8.onnx"))
    with pytest.raises(ConfigError, match=r"input type tensor\(uint8\)"):
        detector("yolov5t_160", model=tmp_path / "u8.onnx")


def test_open_output_shapes_are_judged_on_each_frame():
    # The dynamic export names all three output axes: nothing to judge at load, so a wrong
    # layout shows on the first frame, as a DeviceError naming the real shape.
    det = detector("yolov5t_dynamic", layout="yolov8", input_size=160)
    with pytest.raises(DeviceError, match=r"outputs 1x1575x8 do not fit layout yolov8"):
        det.detect(np.zeros((240, 320, 3), np.uint8), None)


def test_fixture_provenance_is_written_down():
    readme = (FIXTURES / "README.md").read_text()
    assert "AGPL-3.0" in readme and "random weights" in readme
    assert "scripts/export-onnx-fixtures" in readme
    assert Path(FIXTURES.parents[2] / "scripts" / "export-onnx-fixtures").is_file()
