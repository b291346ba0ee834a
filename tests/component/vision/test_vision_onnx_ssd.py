"""The ONNX plug-in's SSD-style layout, with a real exported model: the person model's own
weights exported to ONNX (tests/kits/ssd_onnx.py) give the same people as the default detector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import ConfigError
from agent.vision import models
from agent.vision.detector_config import OnnxDetectorConfig, SsdDetectorConfig
from agent.vision.detectors import OnnxDetector
from agent.vision.ssd import SsdDetector
from tests.kits import people_eval
from tests.kits.paths import REPO

ROOT = REPO
FILES = models.ModelFiles(ROOT / "models")

pytestmark = [
    pytest.mark.skipif(
        not FILES.graph.is_file(),
        reason="the person model is not in models/ (scripts/setup.sh fetches it)",
    ),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from tests.kits.ssd_onnx import export

    return export(FILES.graph, tmp_path_factory.mktemp("onnx") / "ssdlite_person.onnx")


def onnx_ssd(path: Path) -> OnnxDetector:
    cfg = OnnxDetectorConfig(
        model=path, classes={1: "person"}, layout="ssd", input_size=300, score_threshold=0.5
    )
    return OnnxDetector(cfg)


def test_exported_model_finds_the_same_people_as_the_default_detector(exported):
    det, ssd = onnx_ssd(exported), SsdDetector(SsdDetectorConfig(small_budget_ms=0), FILES)
    # Square frames: the plug-in's letterbox is then the model's own stretch to 300 x 300.
    for p in people_eval.photos("held_out")[:6]:
        square = cv2.resize(p.image, (480, 480), interpolation=cv2.INTER_AREA)
        got = sorted(det.detect(square, None), key=lambda d: d.box)
        want = sorted(ssd.detect(square, None), key=lambda d: d.box)
        assert len(got) == len(want), p.name
        for g, w in zip(got, want, strict=True):
            assert g.label == "person"
            assert np.allclose(g.box, w.box, atol=1.5) and abs(g.score - w.score) < 2e-3


def test_exported_model_on_the_held_out_photos(exported):
    det = onnx_ssd(exported)
    t = people_eval.Tally()
    for p in people_eval.photos("held_out"):
        people_eval.add(t, det.detect(p.image, None), p, 0.0)
    assert t.recall() >= 0.6 and t.precision() >= 0.9 and t.fp_empty == 0


def test_ssd_layout_on_a_single_output_model_is_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["images"], ["out"])
    graph = helper.make_graph(
        [node],
        "one",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "one.onnx"
    onnx.save(model, str(path))
    # Refused when the camera starts (it used to fail on every frame), naming the shapes.
    cfg = OnnxDetectorConfig(model=path, classes={1: "person"}, layout="ssd")
    with pytest.raises(ConfigError, match="outputs 1x3x32x32 do not fit layout ssd"):
        OnnxDetector(cfg)
