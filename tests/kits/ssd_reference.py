"""A NumPy reference of the SSD person model: the network run op by op from the .pb's weights.

Trusted because it is small and follows TensorFlow's documented semantics, independent of
OpenCV's importer: NHWC, HWIO / HWCM kernels, "SAME" padding split with the extra pixel after
(bottom/right), FusedBatchNorm in inference form, Relu6. The box decoding is TF's
FasterRcnnBoxCoder (scale factors 10, 10, 5, 5) over the anchors of agent.vision.ssd_graph,
scores are sigmoids. OpenCV's outputs on any OpenCV version are compared with this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.vision.ssd_graph import SsdSpec, anchor_sizes, head_names
from agent.vision.tfgraph import Node, parse_graph

SPEC = SsdSpec()


def _same_pad(x: np.ndarray, k: int, s: int) -> np.ndarray:
    h, w = x.shape[1:3]
    pads = []
    for n in (h, w):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _windows(x: np.ndarray, k: int, s: int, padding: str) -> tuple[np.ndarray, int, int]:
    if padding == "SAME":
        x = _same_pad(x, k, s)
    oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    return x, oh, ow


def conv2d(x: np.ndarray, w: np.ndarray, s: int, padding: str) -> np.ndarray:
    """NHWC convolution with an HWIO kernel."""
    k = w.shape[0]
    if k == 1 and s == 1:
        return x @ w[0, 0]
    x, oh, ow = _windows(x, k, s, padding)
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]), np.float64)
    for i in range(k):
        for j in range(w.shape[1]):
            patch = x[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :]
            out += patch @ w[i, j]
    return out


def depthwise(x: np.ndarray, w: np.ndarray, s: int, padding: str) -> np.ndarray:
    """NHWC depthwise convolution with an HWCM kernel (M = 1 here)."""
    k = w.shape[0]
    x, oh, ow = _windows(x, k, s, padding)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.float64)
    for i in range(k):
        for j in range(w.shape[1]):
            patch = x[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :]
            out += patch * w[i, j, :, 0]
    return out


class Reference:
    """The network of one frozen graph, evaluated in float64 from a preprocessed NHWC input."""

    def __init__(self, pb: Path) -> None:
        self.nodes = {n.name: n for n in parse_graph(pb.read_bytes())}

    def _const(self, node: Node) -> np.ndarray:
        t = node.attrs["value"].tensor
        assert t is not None
        return np.asarray(t.values, np.float64).reshape(t.shape)

    def _eval(self, name: str, memo: dict[str, np.ndarray]) -> np.ndarray:
        name = name.split(":")[0]
        if name in memo:
            return memo[name]
        node = self.nodes[name]
        args = [self._eval(i, memo) for i in node.inputs if not i.startswith("^")]
        memo[name] = out = self._op(node, args)
        return out

    def _op(self, node: Node, args: list[np.ndarray]) -> np.ndarray:
        op = node.op
        if op == "Const":
            return self._const(node)
        if op == "Identity":
            return args[0]
        if op in ("Conv2D", "DepthwiseConv2dNative"):
            strides = node.attrs["strides"].ints
            pad = (node.attrs["padding"].s or b"SAME").decode()
            fn = conv2d if op == "Conv2D" else depthwise
            return fn(args[0], args[1], int(strides[1]), pad)
        if op in ("FusedBatchNorm", "FusedBatchNormV3"):
            x, gamma, beta, mean, var = args
            eps = node.attrs["epsilon"].f or 1e-3
            return (x - mean) / np.sqrt(var + eps) * gamma + beta
        if op == "Relu6":
            return np.clip(args[0], 0.0, 6.0)
        if op in ("Add", "AddV2", "BiasAdd"):
            return args[0] + args[1]
        raise ValueError(f"op {op} of the person graph is not in this reference")

    def heads(self, nhwc: np.ndarray) -> dict[str, np.ndarray]:
        """The twelve head outputs (NHWC) for a preprocessed input in [-1, 1]."""
        memo = {"Preprocessor/sub": nhwc.astype(np.float64)}
        return {name: self._eval(name, memo) for name in head_names(SPEC)}


def decode(heads: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All anchors' boxes [x1, y1, x2, y2] (normalised) and person scores, TF's way."""
    boxes, scores = [], []
    for i, sizes in enumerate(anchor_sizes(SPEC)):
        loc = heads[f"BoxPredictor_{i}/BoxEncodingPredictor/BiasAdd"][0]
        cls = heads[f"BoxPredictor_{i}/ClassPredictor/BiasAdd"][0]
        h, w = loc.shape[:2]
        a = len(sizes)
        ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        cy = np.repeat(ys.reshape(-1), a)
        cx = np.repeat(xs.reshape(-1), a)
        wa = np.tile([s[0] for s in sizes], h * w)
        ha = np.tile([s[1] for s in sizes], h * w)
        t = loc.reshape(-1, 4)
        yc, xc = t[:, 0] / 10 * ha + cy, t[:, 1] / 10 * wa + cx
        bh, bw = np.exp(t[:, 2] / 5) * ha, np.exp(t[:, 3] / 5) * wa
        boxes.append(np.stack([xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2], axis=1))
        scores.append(1.0 / (1.0 + np.exp(-cls.reshape(-1, 2)[:, 1])))
    return np.concatenate(boxes), np.concatenate(scores)
