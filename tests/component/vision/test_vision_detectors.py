"""Detectors: HOG on the real images, a tiny ONNX model built here, NMS."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from agent.errors import ConfigError
from agent.vision.detector_choice import build_detector
from agent.vision.detector_config import HogDetectorConfig, OnnxDetectorConfig
from agent.vision.detectors import HogDetector, OnnxDetector, nms
from agent.vision.gateway import Gateway
from agent.vision.geometry import iou
from agent.vision.rules import Marked
from agent.vision.snapshot import render
from agent.vision.tracker import Detection
from tests.kits.vision import (
    EMPTY_IMAGES,
    PEOPLE_IMAGES,
    ListSource,
    MemoryMedia,
    MemorySink,
    OneShot,
    background,
    camera,
    image_path,
    no_sleep,
    run_to_end,
)


@pytest.fixture(scope="module")
def hog() -> HogDetector:
    return HogDetector(HogDetectorConfig())


@pytest.mark.parametrize("name", PEOPLE_IMAGES)
def test_hog_finds_people_in_people_images(hog, name):
    image = cv2.imread(str(image_path(name)))
    found = hog.detect(image, None)
    assert found, f"no person found in {name}"
    h, w = image.shape[:2]
    for d in found:
        x, y, bw, bh = d.box
        assert d.label == "person" and d.score >= 0.3
        assert x >= -1 and y >= -1 and x + bw <= w + 1 and y + bh <= h + 1
        assert bh > bw  # a standing person is taller than wide


def test_hog_box_is_on_the_person(hog):
    image = cv2.imread(str(image_path("darknet_person.jpg")))
    (found,) = hog.detect(image, None)
    # The person stands left of centre, roughly x 180-280, y 100-400 of the 640x424 image.
    assert iou(found.box, (170.0, 90.0, 120.0, 320.0)) > 0.4


@pytest.mark.parametrize("name", EMPTY_IMAGES)
def test_hog_finds_nobody_in_scenes_without_people(hog, name):
    image = cv2.imread(str(image_path(name)))
    assert hog.detect(image, None) == []


def test_hog_rois_limit_the_search(hog):
    image = cv2.imread(str(image_path("darknet_person.jpg")))
    (full,) = hog.detect(image, None)
    near = hog.detect(image, [full.box])
    assert near and iou(near[0].box, full.box) > 0.5
    assert hog.detect(image, [(560.0, 10.0, 40.0, 40.0)]) == []  # motion far from the person
    assert hog.detect(image, []) == []


# --- ONNX -------------------------------------------------------------------------------

CLASSES = 3  # 0 person, 1 bicycle (not mapped), 2 car


def _rows_v5():
    # cx, cy, w, h, objectness, class scores; in the 64x64 letterboxed input.
    return np.array(
        [
            [20, 32, 10, 20, 0.9, 0.9, 0.0, 0.1],  # person 0.81
            [21, 32, 10, 20, 0.8, 0.9, 0.0, 0.1],  # same person, weaker: removed by NMS
            [45, 40, 16, 8, 0.9, 0.0, 0.1, 0.8],  # car 0.72
            [10, 10, 4, 4, 0.9, 0.0, 0.9, 0.0],  # bicycle: class not mapped
            [50, 12, 6, 6, 0.3, 0.9, 0.0, 0.0],  # person 0.27: under the threshold
        ],
        dtype=np.float32,
    )


def build_model(path: Path, rows: np.ndarray, layout: str = "yolov5", size: int | str = 64) -> Path:
    """A graph whose output is a fixed YOLO tensor (plus 0 x mean of the input).

    Padded with empty candidates to 16: as in every real export, candidates outnumber columns
    (how the plug-in tells [1, N, 5 + C] from [1, 4 + C, N]).
    """
    rows = np.concatenate([rows, np.zeros((max(0, 16 - len(rows)), rows.shape[1]), rows.dtype)])
    out = rows[None] if layout == "yolov5" else rows.T[None]
    const = helper.make_tensor("fixed", TensorProto.FLOAT, out.shape, out.flatten().tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_cfg(model: Path, **kw) -> OnnxDetectorConfig:
    return OnnxDetectorConfig(model=model, classes={0: "person", 2: "car"}, **kw)


def test_onnx_yolov5_decoding_letterbox_and_nms(tmp_path):
    det = OnnxDetector(onnx_cfg(build_model(tmp_path / "m.onnx", _rows_v5())))
    image = np.zeros((240, 320, 3), np.uint8)  # letterboxed into 64x64: scale 0.2, pad y 8
    found = sorted(det.detect(image, None), key=lambda d: d.label)
    assert [(d.label, round(d.score, 2)) for d in found] == [("car", 0.72), ("person", 0.81)]
    car, person = found
    # person: cx 20, cy 32, w 10, h 20 -> x (15-0)/0.2 = 75, y (22-8)/0.2 = 70, 50 x 100.
    assert np.allclose(person.box, (75, 70, 50, 100), atol=0.5)
    assert np.allclose(car.box, (185, 140, 80, 40), atol=0.5)


def test_onnx_yolov8_layout(tmp_path):
    v5 = _rows_v5()
    v8 = np.concatenate([v5[:, :4], v5[:, 5:] * v5[:, 4:5]], axis=1)
    det = OnnxDetector(onnx_cfg(build_model(tmp_path / "m8.onnx", v8, "yolov8"), layout="yolov8"))
    found = det.detect(np.zeros((64, 64, 3), np.uint8), None)
    assert sorted(d.label for d in found) == ["car", "person"]


def test_onnx_built_from_camera_config_relative_to_base_dir(tmp_path):
    build_model(tmp_path / "models.onnx", _rows_v5())
    cfg = OnnxDetectorConfig(model=Path("models.onnx"), classes={2: "car"})
    det = build_detector(cfg, tmp_path)
    assert [d.label for d in det.detect(np.zeros((64, 64, 3), np.uint8), None)] == ["car"]


def test_onnx_unusable_models_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        OnnxDetector(onnx_cfg(tmp_path / "missing.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError):
        OnnxDetector(onnx_cfg(junk))
    dynamic = build_model(tmp_path / "dyn.onnx", _rows_v5(), size="n")
    with pytest.raises(ConfigError):
        OnnxDetector(onnx_cfg(dynamic))
    assert OnnxDetector(onnx_cfg(dynamic, input_size=64)).detect(
        np.zeros((64, 64, 3), np.uint8), None
    )


def test_nms_keeps_best_per_label():
    a = Detection((0, 0, 10, 10), 0.9, "person")
    b = Detection((1, 1, 10, 10), 0.8, "person")
    c = Detection((1, 1, 10, 10), 0.7, "car")
    d = Detection((50, 50, 10, 10), 0.6, "person")
    assert sorted(nms([b, a, c, d], 0.5), key=lambda x: -x.score) == [a, c, d]


async def test_onnx_detector_drives_the_pipeline_end_to_end(tmp_path):
    build_model(tmp_path / "people.onnx", _rows_v5())
    cam = camera(
        id="cam-onnx",
        source="v4l2:0",
        fps=5,
        detector={"kind": "onnx", "model": "people.onnx", "classes": {"0": "person", "2": "car"}},
        zones=[
            {
                "name": "all",
                "polygon": [[0, 0], [640, 0], [640, 480], [0, 480]],
                "rules": ["water_zone"],
            }
        ],
    )
    sink, media = MemorySink(), MemoryMedia()
    frames = [background()] * 12
    async with Gateway(
        [cam],
        sink,
        media,
        sleep=no_sleep,
        base_dir=tmp_path,
        source_factory=OneShot(lambda c: ListSource(frames)),
    ) as gateway:
        await run_to_end(gateway, "cam-onnx")
    start, end = sink.bodies()
    assert (start["rule"], start["state"], end["state"]) == ("water_zone", "start", "end")
    # 640x480 letterboxed into 64x64: scale 0.1, 8 px of padding above.
    assert start["boxes"] == [[150, 140, 100, 200, 0.81, "person"]]


def test_snapshot_draws_boxes_on_a_copy():
    image = background()
    before = image.copy()
    jpeg = render(
        image,
        [Marked((100.0, 100.0, 60.0, 120.0), 0.9, "person")],
        [("plaza", [(0.0, 240.0), (640.0, 240.0), (640.0, 480.0)])],
        quality=90,
    )
    assert np.array_equal(image, before)
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == image.shape
    b, g, r = (int(v) for v in out[160, 100])  # on the box's left edge: red
    assert r > 180 and g < 90 and b < 90
    small = cv2.imdecode(np.frombuffer(render(image, [], max_side=320), np.uint8), 1)
    assert small.shape == (240, 320, 3)
