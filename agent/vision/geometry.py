"""Pure box and polygon geometry in image pixels; boxes are (x, y, w, h)."""

from __future__ import annotations

import math
from collections.abc import Sequence

Box = tuple[float, float, float, float]
Point = tuple[float, float]


def area(box: Box) -> float:
    """Area of a box; degenerate boxes have area 0."""
    return max(0.0, box[2]) * max(0.0, box[3])


def intersection(a: Box, b: Box) -> float:
    """Area shared by two boxes."""
    x1 = max(a[0], b[0])
    y1 = max(a[1], b[1])
    x2 = min(a[0] + a[2], b[0] + b[2])
    y2 = min(a[1] + a[3], b[1] + b[3])
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def iou(a: Box, b: Box) -> float:
    """Intersection over union in [0, 1]; 0 when either box is empty."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def centre(box: Box) -> Point:
    """Centre point of a box."""
    return (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)


def bottom_centre(box: Box) -> Point:
    """Bottom centre of a box: where a standing person or a vehicle touches the ground."""
    return (box[0] + box[2] / 2.0, box[1] + box[3])


def distance(a: Point, b: Point) -> float:
    """Euclidean distance of two points."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def union_box(a: Box, b: Box) -> Box:
    """Smallest box containing both boxes."""
    x1 = min(a[0], b[0])
    y1 = min(a[1], b[1])
    x2 = max(a[0] + a[2], b[0] + b[2])
    y2 = max(a[1] + a[3], b[1] + b[3])
    return (x1, y1, x2 - x1, y2 - y1)


def clip(box: Box, width: float, height: float) -> Box:
    """The part of a box inside a width x height frame (possibly empty)."""
    x1 = min(max(box[0], 0.0), width)
    y1 = min(max(box[1], 0.0), height)
    x2 = min(max(box[0] + box[2], 0.0), width)
    y2 = min(max(box[1] + box[3], 0.0), height)
    return (x1, y1, x2 - x1, y2 - y1)


def expand(box: Box, margin: float, min_w: float = 0.0, min_h: float = 0.0) -> Box:
    """Grow a box by `margin` times its size on every side, to at least min_w x min_h."""
    w = max(box[2] * (1.0 + 2.0 * margin), min_w)
    h = max(box[3] * (1.0 + 2.0 * margin), min_h)
    cx, cy = centre(box)
    return (cx - w / 2.0, cy - h / 2.0, w, h)


def scale_box(box: Box, factor: float) -> Box:
    """Box in an image scaled by `factor`."""
    return (box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor)


def merge_overlapping(boxes: Sequence[Box]) -> list[Box]:
    """Union overlapping boxes until none overlap (touching edges do not count)."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        out: list[Box] = []
        for box in merged:
            for i, other in enumerate(out):
                if intersection(box, other) > 0:
                    out[i] = union_box(box, other)
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return merged


def polygon_area(polygon: Sequence[Point]) -> float:
    """Unsigned area of a simple polygon (shoelace formula)."""
    total = 0.0
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    if abs(cross) > 1e-9:
        return False
    return (
        min(a[0], b[0]) - 1e-9 <= p[0] <= max(a[0], b[0]) + 1e-9
        and min(a[1], b[1]) - 1e-9 <= p[1] <= max(a[1], b[1]) + 1e-9
    )


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """True when p is inside the polygon or on its edge (even-odd rule)."""
    n = len(polygon)
    if n < 3:
        return False
    inside = False
    x, y = p
    for i in range(n):
        a = polygon[i]
        b = polygon[(i + 1) % n]
        if _on_segment(p, a, b):
            # The edge counts as inside: a box standing exactly on the zone border is in it.
            return True
        if (a[1] > y) != (b[1] > y):
            x_cross = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < x_cross:
                inside = not inside
    return inside


def _orient(a: Point, b: Point, c: Point) -> int:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (cross > 0) - (cross < 0)


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments ab and cd share at least one point (crossing, touching or overlapping)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(c, a, b))
        or (o2 == 0 and _on_segment(d, a, b))
        or (o3 == 0 and _on_segment(a, c, d))
        or (o4 == 0 and _on_segment(b, c, d))
    )


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """The first two edges (by start vertex) of a closed polygon that meet though they are not
    neighbours, or neighbours folding back over each other; None for a simple polygon."""
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        for j in range(i + 1, n):
            c, d = polygon[j], polygon[(j + 1) % n]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share a vertex; they are wrong only when one folds back on the other.
                shared, p, q = (b, a, d) if j == i + 1 else (a, b, c)
                if _orient(p, shared, q) == 0 and _on_segment(q, p, shared) and q != shared:
                    return (i, j)
                if _orient(p, shared, q) == 0 and _on_segment(p, shared, q) and p != shared:
                    return (i, j)
                continue
            if _segments_meet(a, b, c, d):
                return (i, j)
    return None
