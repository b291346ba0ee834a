"""The text graph (.pbtxt) OpenCV DNN needs to run a TF Object Detection API SSD frozen graph.

OpenCV cannot run the frozen graph's own pre- and post-processing (TensorArray loops, dynamic
shapes). The text graph keeps the network from the first convolution to the twelve box and
class heads (weights stay in the .pb: OpenCV matches the constants by name) and replaces the
rest with OpenCV's SSD layers: Flatten + ConcatV2 of the heads, a Sigmoid on the class scores,
one PriorBox per feature map with the anchors the TF anchor generator makes, and
DetectionOutput (centre-size decoding with variances 0.1/0.2, per-class NMS).

Pure: bytes of the .pb in, text out, the same text for the same input (nodes in graph order).
`anchor_sizes` is shared with the NumPy reference decoder (tests/kits/ssd_reference.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.vision.tfgraph import Attr, Node, parse_graph

GENERATOR = "grid-edge ssd_graph 1"  # bump when the text graph this module writes changes
INPUT = "image_tensor"
OUTPUT = "detection_out"
_DTYPES = {1: "DT_FLOAT", 3: "DT_INT32", 9: "DT_INT64", 10: "DT_BOOL", 7: "DT_STRING"}
# Ops between the first convolution and the heads that OpenCV's TF importer runs.
_KEEP_OPS = frozenset(
    {"Const", "Conv2D", "DepthwiseConv2dNative", "BiasAdd", "FusedBatchNorm", "FusedBatchNormV3"}
    | {"Relu", "Relu6", "Add", "AddV2", "Mul", "Pad", "MaxPool", "AvgPool", "ConcatV2"}
)
# Attributes OpenCV reads (the rest, e.g. T, _class, use_cudnn_on_gpu, are left out).
_KEEP_ATTRS = frozenset({"value", "dtype", "strides", "padding", "data_format", "dilations"}) | {
    "epsilon",
    "is_training",
    "ksize",
}


@dataclass(frozen=True)
class SsdSpec:
    """The anchor generator and post-processing of the model (its pipeline.config)."""

    num_classes: int = 1  # without background
    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    reduce_lowest: bool = True  # three anchors in the lowest layer
    input_size: int = 300
    nms_iou: float = 0.6
    score_min: float = 0.01
    top_k: int = 100


def anchor_sizes(spec: SsdSpec) -> list[list[tuple[float, float]]]:
    """Per layer, the (width, height) of each anchor as a fraction of the input, in TF's order."""
    n = spec.num_layers
    scales = [spec.min_scale + (spec.max_scale - spec.min_scale) * i / (n - 1) for i in range(n)]
    scales.append(1.0)
    layers = []
    for i in range(n):
        if i == 0 and spec.reduce_lowest:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[i], ar) for ar in spec.aspect_ratios]
            specs.append((math.sqrt(scales[i] * scales[i + 1]), 1.0))
        layers.append([(s * math.sqrt(ar), s / math.sqrt(ar)) for s, ar in specs])
    return layers


def _resolve(name: str, nodes: dict[str, Node], replaced: dict[str, str]) -> str:
    """The node an input really names: through Identity chains, with replaced inputs renamed."""
    seen = 0
    while True:
        base = name.split(":")[0].lstrip("^")
        if base in replaced:
            return replaced[base]
        node = nodes.get(base)
        if node is None or node.op != "Identity" or seen > 64:
            return name
        name = node.inputs[0]
        seen += 1


def _wanted(heads: Sequence[str], nodes: dict[str, Node], stop: str) -> set[str]:
    """Every node the heads depend on, back to `stop` (the preprocessing output)."""
    keep: set[str] = set()
    todo = list(heads)
    while todo:
        name = _resolve(todo.pop(), nodes, {stop: INPUT})
        base = name.split(":")[0]
        if base == INPUT or base in keep:
            continue
        node = nodes.get(base)
        if node is None:
            raise ConfigError([("model", f"the graph has no node {base!r}")])
        if node.op not in _KEEP_OPS:
            raise ConfigError([("model", f"unsupported op {node.op} in {base}")])
        keep.add(base)
        todo.extend(i for i in node.inputs if not i.startswith("^"))
    return keep


def _fmt_float(v: float) -> str:
    return repr(float(v)) if math.isfinite(v) else "0.0"


def _attr_text(attr: Attr) -> str:
    if attr.tensor is not None:
        t = attr.tensor
        dims = " ".join(f"dim {{ size: {d} }}" for d in t.shape)
        return f"tensor {{ dtype: {_DTYPES.get(t.dtype, 'DT_FLOAT')} tensor_shape {{ {dims} }} }}"
    if attr.s is not None:
        return f's: "{attr.s.decode()}"'
    if attr.type is not None:
        return f"type: {_DTYPES.get(attr.type, 'DT_FLOAT')}"
    if attr.i is not None:
        return f"i: {attr.i}"
    if attr.f is not None:
        return f"f: {_fmt_float(attr.f)}"
    if attr.b is not None:
        return f"b: {'true' if attr.b else 'false'}"
    items = [f"i: {v}" for v in attr.ints] + [f"f: {_fmt_float(v)}" for v in attr.floats]
    return "list { " + " ".join(items) + " }"


def _node_text(name: str, op: str, inputs: Iterable[str], attrs: dict[str, str]) -> str:
    lines = ["node {", f'  name: "{name}"', f'  op: "{op}"']
    lines += [f'  input: "{i}"' for i in inputs]
    for key in sorted(attrs):
        lines += ["  attr {", f'    key: "{key}"', f"    value {{ {attrs[key]} }}", "  }"]
    lines.append("}")
    return "\n".join(lines)


def _floats(values: Iterable[float]) -> str:
    """A float list as OpenCV's PriorBox reads it: a 1-D DT_FLOAT tensor."""
    vals = [_fmt_float(v) for v in values]
    dims = f"tensor_shape {{ dim {{ size: {len(vals)} }} }}"
    return f"tensor {{ dtype: DT_FLOAT {dims} " + " ".join(f"float_val: {v}" for v in vals) + " }"


def _const_int(name: str, value: int) -> str:
    tensor = f"tensor {{ dtype: DT_INT32 tensor_shape {{ }} int_val: {value} }}"
    return _node_text(name, "Const", [], {"value": tensor, "dtype": "type: DT_INT32"})


def _ssd_tail(spec: SsdSpec) -> list[str]:
    """Flatten, concat, sigmoid, priors and DetectionOutput after the heads."""
    out = [_const_int("concat/axis_flatten", -1)]
    priors = []
    for kind in ("BoxEncodingPredictor", "ClassPredictor"):
        flat = []
        for i in range(spec.num_layers):
            head = f"BoxPredictor_{i}/{kind}/BiasAdd"
            out.append(_node_text(f"{head}/Flatten", "Flatten", [head], {}))
            flat.append(f"{head}/Flatten")
        out.append(_node_text(f"{kind}/concat", "ConcatV2", [*flat, "concat/axis_flatten"], {}))
    out.append(
        _node_text("ClassPredictor/concat/sigmoid", "Sigmoid", ["ClassPredictor/concat"], {})
    )
    for i, sizes in enumerate(anchor_sizes(spec)):
        attrs = {
            "width": _floats(w * spec.input_size for w, _ in sizes),
            "height": _floats(h * spec.input_size for _, h in sizes),
            "variance": _floats((0.1, 0.1, 0.2, 0.2)),
            "flip": "b: false",
            "clip": "b: false",
            "offset": "f: 0.5",
        }
        head = f"BoxPredictor_{i}/BoxEncodingPredictor/BiasAdd"
        out.append(_node_text(f"PriorBox_{i}", "PriorBox", [head, INPUT], attrs))
        priors.append(f"PriorBox_{i}")
    out.append(_node_text("PriorBox/concat", "ConcatV2", [*priors, "concat/axis_flatten"], {}))
    attrs = {
        "num_classes": f"i: {spec.num_classes + 1}",
        "share_location": "b: true",
        "background_label_id": "i: 0",
        "nms_threshold": f"f: {_fmt_float(spec.nms_iou)}",
        "top_k": f"i: {spec.top_k}",
        "code_type": 's: "CENTER_SIZE"',
        "keep_top_k": f"i: {spec.top_k}",
        "confidence_threshold": f"f: {_fmt_float(spec.score_min)}",
        "loc_pred_transposed": "b: true",
    }
    inputs = ["BoxEncodingPredictor/concat", "ClassPredictor/concat/sigmoid", "PriorBox/concat"]
    out.append(_node_text(OUTPUT, "DetectionOutput", inputs, attrs))
    return out


def head_names(spec: SsdSpec) -> list[str]:
    """The box and class head outputs (BiasAdd), box heads first, lowest layer first."""
    return [
        f"BoxPredictor_{i}/{kind}/BiasAdd"
        for kind in ("BoxEncodingPredictor", "ClassPredictor")
        for i in range(spec.num_layers)
    ]


def feature_sizes(spec: SsdSpec) -> list[int]:
    """The side of each head's feature map: stride 16 for the lowest, then halved (SAME)."""
    sizes = [-(-spec.input_size // 16)]
    while len(sizes) < spec.num_layers:
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def _centre_tap(name: str, node: Node, nodes: dict[str, Node]) -> list[str]:
    """A 1x1 map's 3x3 SAME depthwise conv as the 1x1 conv it equals (centre taps, VALID).

    OpenCV 4.14 reads outside the buffer for a padded depthwise conv on a 1x1 input (the last
    head gave scores like 1e21 before Relu6; 4.6 and the NumPy reference agree with each other),
    so the text graph gives it this equivalent instead, on every OpenCV version.
    """
    weights = nodes[_resolve(node.inputs[1], nodes, {})]
    t = weights.attrs["value"].tensor
    if t is None or len(t.shape) != 4 or t.shape[0] != 3 or t.shape[1] != 3:
        raise ConfigError([("model", f"{name}: expected a 3x3 depthwise kernel")])
    c, m = t.shape[2], t.shape[3]
    base = (1 * 3 + 1) * c * m  # row 1, column 1 of HWCM, row-major
    vals = " ".join(f"float_val: {_fmt_float(v)}" for v in t.values[base : base + c * m])
    dims = f"dim {{ size: 1 }} dim {{ size: 1 }} dim {{ size: {c} }} dim {{ size: {m} }}"
    tensor = f"tensor {{ dtype: DT_FLOAT tensor_shape {{ {dims} }} {vals} }}"
    const = f"{name}/centre_tap"
    attrs = {k: _attr_text(v) for k, v in node.attrs.items() if k in _KEEP_ATTRS}
    attrs["padding"] = 's: "VALID"'
    data = _resolve(node.inputs[0], nodes, {})
    return [
        _node_text(const, "Const", [], {"value": tensor, "dtype": "type: DT_FLOAT"}),
        _node_text(name, node.op, [data, const], attrs),
    ]


def text_graph(
    pb: bytes,
    spec: SsdSpec = SsdSpec(),
    preprocessed: str = "Preprocessor/sub",
    centre_taps: bool = True,
) -> str:
    """The .pbtxt for `cv2.dnn.readNetFromTensorflow(pb_path, pbtxt_path)`; ConfigError if unfit.

    `centre_taps=False` keeps the 1x1 maps' padded depthwise convs as they are (the graph that
    trips OpenCV 4.14; for the test that shows the trap).
    """
    graph = parse_graph(pb)
    nodes = {n.name: n for n in graph}
    if preprocessed not in nodes:
        raise ConfigError([("model", f"no {preprocessed} node: not a TF Object Detection SSD")])
    keep = _wanted(head_names(spec), nodes, preprocessed)
    placeholder = {"dtype": "type: DT_FLOAT"}
    parts = [_node_text(INPUT, "Placeholder", [], placeholder)]
    one_by_one = {
        f"BoxPredictor_{i}/{kind}_depthwise/depthwise"
        for i, side in enumerate(feature_sizes(spec))
        if side == 1 and centre_taps
        for kind in ("BoxEncodingPredictor", "ClassPredictor")
    }
    for node in graph:
        if node.name in one_by_one and node.name in keep:
            parts += _centre_tap(node.name, node, nodes)
            continue
        # Constants stay in the .pb only: OpenCV takes them from there by name (a copy in
        # the text graph would define them twice).
        if node.name not in keep or node.op == "Const":
            continue
        inputs = [
            _resolve(i, nodes, {preprocessed: INPUT}) for i in node.inputs if not i.startswith("^")
        ]
        attrs = {k: _attr_text(v) for k, v in node.attrs.items() if k in _KEEP_ATTRS}
        parts.append(_node_text(node.name, node.op, inputs, attrs))
    parts += _ssd_tail(spec)
    return header(hashlib.sha256(pb).hexdigest()) + "\n".join(parts) + "\n"


def header(graph_sha256: str) -> str:
    """The text graph's first line: who made it from which graph (a protobuf text comment), so a
    loader can tell it is current from the graph's hash without parsing the graph."""
    return f"# {GENERATOR} from sha256 {graph_sha256}\n"
