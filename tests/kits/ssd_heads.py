"""OpenCV's outputs of the SSD person model: the twelve heads (NHWC) and DetectionOutput.

Runs under any OpenCV with only cv2 and numpy, so the system Python (Debian's python3-opencv
4.6) can run it as a script: `python3 ssd_heads.py GRAPH TEXT_GRAPH BLOB.npy OUT.npz`.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

LAYERS = 6
KINDS = ("BoxEncodingPredictor", "ClassPredictor")


def run(graph: str, text_graph: str, blob: np.ndarray) -> dict[str, np.ndarray]:
    """Head outputs keyed by their TF BiasAdd names, plus `detection_out` and `version`."""
    net = cv2.dnn.readNetFromTensorflow(graph, text_graph)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    heads = [f"BoxPredictor_{i}/{k}/BiasAdd" for k in KINDS for i in range(LAYERS)]
    # OpenCV fuses each BiasAdd into its convolution: the layer keeps the Conv2D name.
    net.setInput(blob)
    outs = net.forward([h.replace("/BiasAdd", "/Conv2D") for h in heads])
    result = {h: np.asarray(o).transpose(0, 2, 3, 1) for h, o in zip(heads, outs, strict=True)}
    net.setInput(blob)
    result["detection_out"] = np.asarray(net.forward("detection_out")).reshape(-1, 7)
    result["version"] = np.array(cv2.__version__)
    return result


if __name__ == "__main__":
    g, t, b, out = sys.argv[1:5]
    np.savez(out, **run(g, t, np.load(b)))
