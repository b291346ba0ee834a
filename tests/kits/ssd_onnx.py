"""Export the SSDLite person model (.pb) to ONNX with an SSD-style output: boxes and scores.

A real exported model for the ONNX plug-in's `layout = "ssd"`: the same weights as the default
detector, translated op by op (Conv2D, depthwise, FusedBatchNorm, Relu6, Add, BiasAdd) into an
ONNX graph, the anchors decoded inside the graph. Input `images` [1, 3, S, S] RGB in [0, 1]
(what the plug-in feeds), outputs `boxes` [1, N, 4] (x1, y1, x2, y2, fractions of the input)
and `scores` [1, N, 2] (background, person; sigmoids). Shapes come from running the NumPy
reference once, so SAME padding is written out as explicit pads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from agent.vision.ssd_graph import anchor_sizes, head_names
from tests.kits.ssd_reference import SPEC, Reference

SIZE = SPEC.input_size


class _Builder:
    def __init__(self, ref: Reference, shapes: dict[str, tuple[int, ...]]) -> None:
        self.ref = ref
        self.shapes = shapes
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.done: dict[str, str] = {}

    def const(self, name: str, value: np.ndarray, dtype: type = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def weights(self, name: str) -> np.ndarray:
        node = self.ref.nodes[name.split(":")[0]]
        while node.op == "Identity":
            node = self.ref.nodes[node.inputs[0]]
        return self.ref._const(node)

    def pads(self, name: str, src: str, k: int, s: int, same: bool) -> list[int]:
        if not same:
            return [0, 0, 0, 0]
        h, w = self.shapes[src][1:3]
        out = []
        for n in (h, w):
            o = -(-n // s)
            out.append(max((o - 1) * s + k - n, 0))
        return [out[0] // 2, out[1] // 2, out[0] - out[0] // 2, out[1] - out[1] // 2]

    def emit(self, name: str) -> str:
        name = name.split(":")[0]
        if name in self.done:
            return self.done[name]
        node = self.ref.nodes[name]
        if name == "Preprocessor/sub":
            return "normalised"
        if node.op == "Identity":
            out = self.emit(node.inputs[0])
        elif node.op in ("Conv2D", "DepthwiseConv2dNative"):
            src = node.inputs[0]
            while self.ref.nodes[src.split(":")[0]].op == "Identity":
                src = self.ref.nodes[src.split(":")[0]].inputs[0]
            x = self.emit(src)
            w = self.weights(node.inputs[1])
            s = int(node.attrs["strides"].ints[1])
            same = (node.attrs["padding"].s or b"SAME") == b"SAME"
            pads = self.pads(name, src.split(":")[0], w.shape[0], s, same)
            if node.op == "Conv2D":
                kernel, group = w.transpose(3, 2, 0, 1), 1
            else:
                c, m = w.shape[2], w.shape[3]
                kernel, group = w.transpose(2, 3, 0, 1).reshape(c * m, 1, *w.shape[:2]), c
            wname = self.const(name + "/W", kernel)
            out = name
            self.nodes.append(
                helper.make_node("Conv", [x, wname], [out], strides=[s, s], pads=pads, group=group)
            )
        elif node.op in ("FusedBatchNorm", "FusedBatchNormV3"):
            x = self.emit(node.inputs[0])
            g, b, m, v = (self.weights(i) for i in node.inputs[1:5])
            eps = float(node.attrs["epsilon"].f or 1e-3)
            names = [
                self.const(f"{name}/{k}", a) for k, a in zip("gbmv", (g, b, m, v), strict=True)
            ]
            out = name
            self.nodes.append(
                helper.make_node("BatchNormalization", [x, *names], [out], epsilon=eps)
            )
        elif node.op == "Relu6":
            x = self.emit(node.inputs[0])
            lo, hi = (
                self.const(name + "/lo", np.array(0.0)),
                self.const(name + "/hi", np.array(6.0)),
            )
            out = name
            self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out]))
        elif node.op in ("Add", "AddV2"):
            a, b = (self.emit(i) for i in node.inputs[:2])
            out = name
            self.nodes.append(helper.make_node("Add", [a, b], [out]))
        elif node.op == "BiasAdd":
            x = self.emit(node.inputs[0])
            bias = self.const(name + "/b", self.weights(node.inputs[1]).reshape(-1, 1, 1))
            out = name
            self.nodes.append(helper.make_node("Add", [x, bias], [out]))
        else:
            raise ValueError(f"op {node.op} of the person graph has no ONNX counterpart here")
        self.done[name] = out
        return out


def _anchors() -> np.ndarray:
    """[N, 4] (cy, cx, h, w) in TF's order: layer, row, column, anchor."""
    rows = []
    for sizes, side in zip(anchor_sizes(SPEC), (19, 10, 5, 3, 2, 1), strict=True):
        for y in range(side):
            for x in range(side):
                for w, h in sizes:
                    rows.append(((y + 0.5) / side, (x + 0.5) / side, h, w))
    return np.asarray(rows, np.float32)


def export(pb: Path, out: Path) -> Path:
    """Write the ONNX model for `pb` to `out`."""
    ref = Reference(pb)
    memo = {"Preprocessor/sub": np.zeros((1, SIZE, SIZE, 3))}
    heads = head_names(SPEC)
    for h in heads:
        ref._eval(h, memo)
    shapes = {k: v.shape for k, v in memo.items() if isinstance(v, np.ndarray) and v.ndim == 4}
    b = _Builder(ref, shapes)
    two, one = b.const("two", np.array(2.0)), b.const("one", np.array(1.0))
    b.nodes.append(helper.make_node("Mul", ["images", two], ["x2"]))
    b.nodes.append(helper.make_node("Sub", ["x2", one], ["normalised"]))
    flat: dict[int, list[str]] = {4: [], 2: []}
    for h in heads:
        src = b.emit(h)
        k = 4 if "BoxEncoding" in h else 2
        shape = b.const(h + "/shape", np.array([1, -1, k]), np.int64)
        b.nodes.append(helper.make_node("Transpose", [src], [h + "/nhwc"], perm=[0, 2, 3, 1]))
        b.nodes.append(helper.make_node("Reshape", [h + "/nhwc", shape], [h + "/flat"]))
        flat[k].append(h + "/flat")
    b.nodes.append(helper.make_node("Concat", flat[4], ["loc"], axis=1))
    b.nodes.append(helper.make_node("Concat", flat[2], ["logits"], axis=1))
    b.nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"]))
    _decode(b)
    graph = helper.make_graph(
        b.nodes,
        "ssdlite_person",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, None, 2]),
        ],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def _decode(b: _Builder) -> None:
    """TF's box coder in the graph: loc (ty, tx, th, tw) over anchors -> x1, y1, x2, y2."""
    a = _anchors()
    yx, hw = b.const("anchor_yx", a[None, :, :2]), b.const("anchor_hw", a[None, :, 2:])
    tenth, fifth = b.const("tenth", np.array(0.1)), b.const("fifth", np.array(0.2))
    half = b.const("half", np.array(0.5))
    split = b.const("split", np.array([2, 2]), np.int64)
    order = b.const("order", np.array([1, 0, 3, 2]), np.int64)
    b.nodes += [
        helper.make_node("Split", ["loc", split], ["t_yx", "t_hw"], axis=2),
        helper.make_node("Mul", ["t_yx", tenth], ["t_yx10"]),
        helper.make_node("Mul", ["t_yx10", hw], ["d_yx"]),
        helper.make_node("Add", ["d_yx", yx], ["c_yx"]),
        helper.make_node("Mul", ["t_hw", fifth], ["t_hw5"]),
        helper.make_node("Exp", ["t_hw5"], ["e_hw"]),
        helper.make_node("Mul", ["e_hw", hw], ["s_hw"]),
        helper.make_node("Mul", ["s_hw", half], ["h_hw"]),
        helper.make_node("Sub", ["c_yx", "h_hw"], ["yx1"]),
        helper.make_node("Add", ["c_yx", "h_hw"], ["yx2"]),
        helper.make_node("Concat", ["yx1", "yx2"], ["y1x1y2x2"], axis=2),
        # y1, x1, y2, x2 -> x1, y1, x2, y2
        helper.make_node("Gather", ["y1x1y2x2", order], ["boxes"], axis=2),
    ]
