"""import-checkpoints: sniffed CSV dialects, KML, and the warnings an operator needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.ops import checkpoints, cli, importcheck, kml
from agent.patrol.core.geofence import CheckinParams

SEMICOLON = (
    "id;name;lat;lon;radius_m;dwell_s;tags;photo\n"
    "cp-pier;Pier;34,77905;113,73120;25;10;04A1B2C3;nein\n"
)
KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>East shore</name>
<Placemark id="cp-pier"><name>Pier</name>
  <ExtendedData><Data name="radius_m"><value>30</value></Data>
  <Data name="tags"><value>04A1B2C3;0416C6C2D73881</value></Data></ExtendedData>
  <Point><coordinates>113.73120,34.77905,0</coordinates></Point></Placemark>
<Placemark><name>cp-bridge</name><Point><coordinates>113.7313,34.7796</coordinates></Point>
</Placemark></Document></kml>
"""
BOMB = """<?xml version="1.0"?>
<!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<kml><Placemark><name>&b;</name><Point><coordinates>1,2</coordinates></Point></Placemark></kml>
"""


def test_semicolon_csv_with_decimal_commas() -> None:
    # Trap: semicolon CSV (Excel in many locales) was refused with a misleading error.
    [p] = checkpoints.from_csv(SEMICOLON.replace(";nein", ";no"))
    assert (p.checkpoint["lat"], p.checkpoint["lon"]) == (34.77905, 113.7312)
    assert p.checkpoint["tags"] == ["04A1B2C3"]
    tab = "id\tlat\tlon\ncp-a\t34.1\t113.2\n"
    assert checkpoints.from_csv(tab)[0].checkpoint["lon"] == 113.2


def test_kml_points_with_extended_data() -> None:
    # Trap: KML was read as GeoJSON and refused as "not JSON".
    pier, bridge = kml.from_kml(KML)
    assert pier.checkpoint["id"] == "cp-pier" and pier.checkpoint["radius_m"] == 30.0
    assert pier.checkpoint["tags"] == ["04A1B2C3", "0416C6C2D73881"]
    assert (pier.checkpoint["lat"], pier.checkpoint["lon"]) == (34.77905, 113.7312)
    assert bridge.checkpoint["id"] == "cp-bridge" and bridge.checkpoint["radius_m"] == 25.0


def test_kml_refuses_entities_and_lines() -> None:
    with pytest.raises(ConfigError, match="not readable XML"):
        kml.from_kml(BOMB)
    line = KML.replace(
        "<Point><coordinates>113.7313,34.7796</coordinates></Point>", "<LineString/>"
    )
    with pytest.raises(ConfigError, match=r"must be a Point \(found LineString"):
        kml.from_kml(line)


def test_smallest_radius_follows_the_checkin_rule() -> None:
    rule = CheckinParams()
    acc = importcheck.typical_acc_m()
    smallest = importcheck.min_gps_radius_m()
    assert acc == 5.0 and smallest == 12.5
    # A fix one accuracy from the centre of a 9 m disc is not even "likely" inside (§4).
    assert not acc + rule.k_stay * acc <= 9.0
    assert acc + rule.k_stay * acc <= smallest


def test_warnings_for_past_windows_and_small_radii() -> None:
    points = checkpoints.from_csv(
        "id,lat,lon,radius_m,tags\ncp-a,34.1,113.2,9,\ncp-b,34.1,113.2,9,04A1B2C3\n"
        "cp-c,34.1,113.2,25,\n"
    )
    spec = checkpoints.TaskSpec("t-1", "T", None, 1_000, 2_000)
    out = importcheck.warnings(spec, points, now_ms=3_000)
    assert "window already ended" in out[0]
    assert "line 2: radius 9 m is below 12.5 m" in out[1] and "NFC tag" in out[1]
    assert "only its NFC tag can check in there" in out[2]
    assert len(out) == 3


def test_cli_reads_kml_by_content_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "export"  # no extension: the content says KML
    src.write_text(KML)
    dest = tmp_path / "tasks.json"
    argv = ["import-checkpoints", str(src), "--task-id", "t-e", "--task-name", "E"]
    code = cli.main(
        [
            *argv,
            "--radius",
            "9",
            "--end",
            "2020-01-01T00:00+08:00",
            "--start",
            "2019-12-31T00:00+08:00",
            "--out",
            str(dest),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "window already ended" in err and "radius 9 m is below" in err
    body = json.loads(dest.read_text())
    assert [c["id"] for c in body["tasks"][0]["checkpoints"]] == ["cp-pier", "cp-bridge"]
    semi = tmp_path / "semi.csv"
    semi.write_text(SEMICOLON.replace(";nein", ";no"))
    assert cli.main(["import-checkpoints", str(semi), "--task-id", "t", "--task-name", "T"]) == 0
