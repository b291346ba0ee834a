"""import-checkpoints: GCJ-02/BD-09 -> WGS-84, GBK CSV, KMZ, Chinese headers (名称/经度/纬度)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.ops import checkpoints, cli, datum, mapsource
from firmware_bridge.geo import distance_m

# Published pairs for Tiananmen (the wandergis/coordtransform README's example point, which
# many ports test against), (lat, lon).
TIANANMEN = (39.915, 116.404)
WGS_TO_GCJ = (39.91640428150164, 116.41024449916938)
GCJ_TO_BD = (39.92133699351021, 116.41036949371029)
BD_TO_GCJ = (39.90865673957631, 116.39762729119315)
# The same README's one-step approximation of the inverse (ours iterates: within ~1 m of it).
GCJ_TO_WGS_ONE_STEP = (39.91359571849836, 116.39775550083061)
# A WGS-84 point in central Zhengzhou, by the Erqi tower (二七塔).
ERQI_WGS = (34.75360, 113.66024)

CHINESE_CSV = "名称,经度,纬度,半径(米),停留时间（秒）,拍照\n二七塔,113.66636,34.75223,30,15,是\n"
TASK = ["--task-id", "t-1", "--task-name", "二七"]


def test_forward_offsets_match_the_published_pairs() -> None:
    assert datum.wgs84_to_gcj02(*TIANANMEN) == pytest.approx(WGS_TO_GCJ, abs=1e-12)
    assert datum.gcj02_to_bd09(*TIANANMEN) == pytest.approx(GCJ_TO_BD, abs=1e-12)
    assert datum.bd09_to_gcj02(*TIANANMEN) == pytest.approx(BD_TO_GCJ, abs=1e-12)
    ours = datum.gcj02_to_wgs84(*TIANANMEN)
    assert distance_m(*ours, *GCJ_TO_WGS_ONE_STEP) < 1.0


def test_zhengzhou_offset_is_hundreds_of_metres() -> None:
    gcj = datum.wgs84_to_gcj02(*ERQI_WGS)
    assert 300.0 < distance_m(*ERQI_WGS, *gcj) < 800.0
    assert datum.to_wgs84("gcj02", *gcj) == pytest.approx(ERQI_WGS, abs=1e-8)
    bd = datum.gcj02_to_bd09(*gcj)
    assert distance_m(*datum.to_wgs84("bd09", *bd), *ERQI_WGS) < 0.1


def test_outside_china_is_unchanged() -> None:
    berlin = (52.5163, 13.3777)
    assert datum.wgs84_to_gcj02(*berlin) == berlin
    assert datum.to_wgs84("gcj02", *berlin) == berlin


china = st.tuples(st.floats(18.0, 53.0), st.floats(74.0, 134.0))


@given(china)
def test_gcj02_round_trip_within_a_centimetre(point: tuple[float, float]) -> None:
    back = datum.gcj02_to_wgs84(*datum.wgs84_to_gcj02(*point))
    assert distance_m(*back, *point) < 0.01


@given(china)
def test_bd09_round_trip_within_the_published_inverse(point: tuple[float, float]) -> None:
    # Baidu's inverse is itself approximate (a few cm); the round trip shows it.
    back = datum.bd09_to_gcj02(*datum.gcj02_to_bd09(*point))
    assert distance_m(*back, *point) < 0.5


def test_chinese_headers_and_yes_no() -> None:
    # Trap: 名称/经度/纬度 were refused as unknown columns.
    [p] = checkpoints.from_csv(CHINESE_CSV)
    cp = p.checkpoint
    assert (cp["id"], cp["name"], cp["lat"], cp["lon"]) == ("二七塔", "二七塔", 34.75223, 113.66636)
    assert (cp["radius_m"], cp["dwell_s"], cp["photo"]) == (30.0, 15.0, True)


def test_utf16_and_unknown_chinese_columns() -> None:
    text = checkpoints.decode(CHINESE_CSV.encode("utf-16"), "x.txt")
    assert checkpoints.from_csv(text)[0].checkpoint["name"] == "二七塔"
    with pytest.raises(ConfigError, match=r"unknown columns \['地址'\].*名称"):
        checkpoints.from_csv("名称,经度,纬度,地址\na,113.1,34.1,x\n")


def test_undecodable_bytes_get_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="neither UTF-8 nor GBK"):
        checkpoints.decode(b"id,lat\n\x80\xff\xfe,1\n", "x.csv")


def test_heuristic_names_the_map_of_the_file() -> None:
    [p] = checkpoints.from_csv(CHINESE_CSV)
    [said_wgs] = mapsource.warnings([p], "wgs84", "高德地图导出.csv\n名称,经度,纬度")
    assert "Amap/Tencent (GCJ-02)" in said_wgs and "--datum gcj02" in said_wgs
    assert mapsource.warnings([p], "wgs84", "points.csv\n名称,经度,纬度") == []
    assert mapsource.warnings([p], "gcj02", "高德地图导出.csv") == []
    [baidu] = mapsource.warnings([p], None, "百度坐标 bd09 gcj02")
    assert "Baidu (BD-09)" in baidu


def _import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], src: Path, *extra: str
) -> tuple[dict[str, object], str]:
    out = tmp_path / "tasks.json"
    code = cli.main(["import-checkpoints", str(src), *TASK, "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads(out.read_text(encoding="utf-8"))["tasks"][0]["checkpoints"][0], err


def test_cli_gbk_csv_from_chinese_excel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Trap: a CSV saved by Chinese Excel (GBK) failed with a raw codec error.
    src = tmp_path / "巡查点.csv"
    src.write_bytes(CHINESE_CSV.encode("gbk"))
    cp, _ = _import(tmp_path, capsys, src, "--datum", "wgs84")
    assert cp["name"] == "二七塔" and cp["lat"] == 34.75223


def test_cli_kmz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Trap: KMZ (Google Earth's zipped KML) failed.
    kml = (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        "<Document><Placemark><name>二七塔</name><Point><coordinates>113.66024,34.75360,0"
        "</coordinates></Point></Placemark></Document></kml>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("doc.kml", kml)
        zf.writestr("files/icon.png", b"\x89PNG")
    src = tmp_path / "export"  # no extension: the zip header says KMZ
    src.write_bytes(buf.getvalue())
    cp, _ = _import(tmp_path, capsys, src, "--datum", "wgs84")
    assert (cp["id"], cp["lat"], cp["lon"]) == ("二七塔", 34.7536, 113.66024)
    (tmp_path / "bad.kmz").write_bytes(b"PK\x03\x04 not really")
    code = cli.main(["import-checkpoints", str(tmp_path / "bad.kmz"), *TASK])
    assert code == 2 and "not a readable zip" in capsys.readouterr().err


def test_cli_gcj02_points_warned_then_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trap: points picked on Amap were hundreds of metres off the GPS and nothing warned.
    gcj_lat, gcj_lon = datum.wgs84_to_gcj02(*ERQI_WGS)
    src = tmp_path / "points.csv"
    src.write_text(f"id,lat,lon\ncp-erqi,{gcj_lat:.7f},{gcj_lon:.7f}\n", encoding="utf-8")
    cp, err = _import(tmp_path, capsys, src)
    assert "--datum was not given" in err and "m off here" in err
    assert distance_m(cp["lat"], cp["lon"], *ERQI_WGS) > 300.0  # type: ignore[arg-type]
    cp, err = _import(tmp_path, capsys, src, "--datum", "gcj02")
    assert "warning" not in err
    assert distance_m(cp["lat"], cp["lon"], *ERQI_WGS) < 0.05  # type: ignore[arg-type]
    bd = datum.gcj02_to_bd09(gcj_lat, gcj_lon)
    src.write_text(f"id,lat,lon\ncp-erqi,{bd[0]:.7f},{bd[1]:.7f}\n", encoding="utf-8")
    cp, _ = _import(tmp_path, capsys, src, "--datum", "bd09")
    assert distance_m(cp["lat"], cp["lon"], *ERQI_WGS) < 0.1  # type: ignore[arg-type]


def test_kml_in_gbk_keeps_its_declared_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kml = (
        '<?xml version="1.0" encoding="GBK"?><kml><Placemark><name>德化街</name>'
        "<Point><coordinates>113.66115,34.75521</coordinates></Point></Placemark></kml>"
    )
    src = tmp_path / "gbk.kml"
    src.write_bytes(kml.encode("gbk"))
    cp, _ = _import(tmp_path, capsys, src, "--datum", "wgs84")
    assert cp["name"] == "德化街"
