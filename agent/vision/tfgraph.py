"""A minimal reader of TensorFlow frozen graphs (GraphDef protobuf): nodes, attributes, constants.

Written for the SSD person model (agent/vision/ssd_graph.py): it decodes the protobuf wire
format directly, so neither TensorFlow nor the protobuf package is needed. Only the fields the
text graph and the NumPy reference use are read (GraphDef.node; NodeDef name, op, input, attr;
AttrValue s, i, f, b, type, shape, tensor, list; TensorProto dtype, shape, content, float_val,
int_val). Pure: bytes in, frozen dataclasses out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.errors import ConfigError

# TensorFlow DataType enum values this reader decodes into numbers.
DT_FLOAT, DT_INT32 = 1, 3
_DTYPE_FORMAT = {DT_FLOAT: "f", DT_INT32: "i"}


@dataclass(frozen=True)
class Tensor:
    """A constant: dtype (TF enum), shape, and its data (decoded only when asked for)."""

    dtype: int
    shape: tuple[int, ...]
    content: bytes = b""
    listed: tuple[float, ...] = ()  # float_val / int_val when there is no content

    @property
    def values(self) -> tuple[float, ...]:
        """The values in row-major order (a one-value list is repeated to the shape)."""
        count = 1
        for d in self.shape:
            count *= d
        fmt = _DTYPE_FORMAT.get(self.dtype)
        if self.content and fmt is not None:
            n = len(self.content) // 4
            return tuple(float(v) for v in struct.unpack(f"<{n}{fmt}", self.content))
        if len(self.listed) == 1 and count > 1:
            return self.listed * count  # a splat constant
        return self.listed


@dataclass(frozen=True)
class Attr:
    """One attribute value; only the member the producer set is meaningful."""

    s: bytes | None = None
    i: int | None = None
    f: float | None = None
    b: bool | None = None
    type: int | None = None
    shape: tuple[int, ...] | None = None
    tensor: Tensor | None = None
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    strings: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Node:
    """A NodeDef: name, op, inputs (``^`` control inputs kept as written) and attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Attr] = field(default_factory=dict)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one message: ints for varint/fixed, bytes for LEN."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value = buf[pos : pos + size]
            if len(value) != size:
                raise ValueError("truncated field")
            pos += size
        elif wire == 5:
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _f32(bits: int) -> float:
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])


def _packed(value: int | bytes, wire: int, as_float: bool) -> list[float]:
    """A repeated scalar field, packed (LEN) or not."""
    if wire == 2 and isinstance(value, bytes):
        if as_float:
            return list(struct.unpack(f"<{len(value) // 4}f", value))
        out, pos = [], 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            out.append(float(v - (1 << 64) if v >= 1 << 63 else v))
        return out
    assert isinstance(value, int)
    if as_float:
        return [_f32(value)]
    return [float(value - (1 << 64) if value >= 1 << 63 else value)]


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, dim in fields(buf):
        if number == 2 and isinstance(dim, bytes):
            size = 0
            for n2, _, v in fields(dim):
                if n2 == 1 and isinstance(v, int):
                    size = v - (1 << 64) if v >= 1 << 63 else v
            dims.append(size)
    return tuple(dims)


def _tensor(buf: bytes) -> Tensor:
    dtype, content = 0, b""
    shape: tuple[int, ...] = ()
    vals: list[float] = []
    for number, wire, value in fields(buf):
        if number == 1 and isinstance(value, int):
            dtype = value
        elif number == 2 and isinstance(value, bytes):
            shape = _shape(value)
        elif number == 4 and isinstance(value, bytes):
            content = value
        elif number in (5, 7):  # float_val, int_val
            vals += _packed(value, wire, number == 5)
    return Tensor(dtype, shape, content, tuple(float(v) for v in vals))


def _list(buf: bytes) -> Attr:
    ints: list[int] = []
    floats: list[float] = []
    strings: list[bytes] = []
    for number, wire, value in fields(buf):
        if number == 2 and isinstance(value, bytes):
            strings.append(value)
        elif number == 3:
            ints += [int(v) for v in _packed(value, wire, False)]
        elif number == 4:
            floats += _packed(value, wire, True)
    return Attr(ints=tuple(ints), floats=tuple(floats), strings=tuple(strings))


def _attr(buf: bytes) -> Attr:
    for number, _, value in fields(buf):
        if number == 1 and isinstance(value, bytes):
            return _list(value)
        if number == 2 and isinstance(value, bytes):
            return Attr(s=value)
        if number == 3 and isinstance(value, int):
            return Attr(i=value - (1 << 64) if value >= 1 << 63 else value)
        if number == 4 and isinstance(value, int):
            return Attr(f=_f32(value))
        if number == 5 and isinstance(value, int):
            return Attr(b=bool(value))
        if number == 6 and isinstance(value, int):
            return Attr(type=value)
        if number == 7 and isinstance(value, bytes):
            return Attr(shape=_shape(value))
        if number == 8 and isinstance(value, bytes):
            return Attr(tensor=_tensor(value))
    return Attr()


def _node(buf: bytes) -> Node:
    name, op, inputs, attrs = "", "", [], {}
    for number, _, value in fields(buf):
        if not isinstance(value, bytes):
            continue
        if number == 1:
            name = value.decode()
        elif number == 2:
            op = value.decode()
        elif number == 3:
            inputs.append(value.decode())
        elif number == 5:
            key, attr = "", Attr()
            for n2, _, v2 in fields(value):
                if n2 == 1 and isinstance(v2, bytes):
                    key = v2.decode()
                elif n2 == 2 and isinstance(v2, bytes):
                    attr = _attr(v2)
            attrs[key] = attr
    return Node(name, op, tuple(inputs), attrs)


def parse_graph(data: bytes) -> list[Node]:
    """The nodes of a serialized GraphDef, in file order; ConfigError when it does not parse."""
    try:
        nodes = [_node(v) for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)]
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ConfigError([("model", f"not a TensorFlow frozen graph: {exc}")]) from exc
    if not nodes:
        raise ConfigError([("model", "not a TensorFlow frozen graph: no nodes")])
    return nodes
