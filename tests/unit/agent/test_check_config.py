"""check-config: cameras by id, "did you mean", crossed zone polygons, sections of the role."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import cli
from agent.vision.geometry import self_intersection
from tests.kits.paths import REPO

ROOT = REPO
GATEWAY = (ROOT / "configs" / "camera_gateway.toml").read_text()


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    code = cli.main(["check-config", "--no-files", str(path)])  # schema only
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("name", ["patrol.toml", "camera_gateway.toml"])
def test_shipped_configs_pass(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "configs" / name).read_text()
    # Trusting the example key is the one thing wrong with the examples (test_cli).
    text = text.replace(
        "o7zB1YpXvG8bK0cRj7oV1m3yOqk9Xx6iW2c5r1sTnEw", "vpigkJU_oVveaPChpTXFzIVert8rn37vHPJChThi10w"
    )
    code, out = check(tmp_path, capsys, text)
    assert code == 0, out


def test_cameras_are_named_by_id_and_typos_get_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GATEWAY.replace("[broker]", '[broker]\nhots = "x"', 1)
    # The second camera gets a typo'd key: the message names it by id, not "cameras.1".
    second = GATEWAY.index("[[cameras]]", GATEWAY.index("[[cameras]]") + 1)
    text = text.replace(
        GATEWAY[second:], GATEWAY[second:].replace("\nsource", "\nfsp = 3\nsource", 1)
    )
    code, out = check(tmp_path, capsys, text)
    assert code == 1
    assert "broker.hots: unknown key (did you mean 'hosts'?)" in out
    assert "].fsp: unknown key (did you mean 'fps'?)" in out
    assert "cameras.1" not in out and "cameras[" in out


def test_crossed_zone_polygon_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crossed = "[[0, 300], [640, 480], [640, 300], [0, 420]]"
    code, out = check(
        tmp_path, capsys, GATEWAY.replace("[[0, 300], [640, 300], [640, 480], [0, 480]]", crossed)
    )
    assert code == 1 and "polygon crosses itself" in out


def test_sections_of_the_other_role_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GATEWAY + '\n[gps]\nport = "/dev/ttyAMA0"\n'
    code, out = check(tmp_path, capsys, text)
    assert code == 1 and "gps: a patrol section; this device is camera_gateway" in out


def _convex(angles: list[float], r: float = 1000.0) -> list[tuple[float, float]]:
    return [(2000 + r * math.cos(a), 2000 + r * math.sin(a)) for a in sorted(angles)]


ANGLES = st.lists(
    st.floats(0, 2 * math.pi, exclude_max=True), min_size=4, max_size=12, unique=True
).filter(lambda a: min(abs(x - y) for x in a for y in a if x != y) > 0.05)


@given(ANGLES, st.integers(0, 11))
def test_convex_polygons_are_simple_in_any_rotation(angles: list[float], k: int) -> None:
    poly = _convex(angles)
    k %= len(poly)
    assert self_intersection(poly[k:] + poly[:k]) is None
    assert self_intersection(list(reversed(poly))) is None


@given(ANGLES, st.integers(0, 11))
def test_swapping_two_vertices_of_a_convex_polygon_crosses_it(angles: list[float], k: int) -> None:
    poly = _convex(angles)
    i = k % len(poly)
    j = (i + 1) % len(poly)
    poly[i], poly[j] = poly[j], poly[i]  # a bow-tie: the edges around the pair now cross
    assert self_intersection(poly) is not None
