"""The ops CLI: keygen, import, dry-run signing (against an empty broker), settings, archive."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from agent.demo.broker import Broker, free_port
from agent.errors import ConfigError
from agent.ops import devices, watch
from agent.ops.mqtt import Message, broker_flags, settings, signing_flags
from tests.kits.ops import dry, run
from tests.kits.streams import DEV, Stream, full_stream

CSV = "id,name,lat,lon,radius_m,dwell_s,tags,photo\ncp-1,Pier,34.78,113.73,25,10,04A1B2C3,false\n"


@pytest.fixture
def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _ = run(capsys, "keygen", "--out", str(tmp_path / "ops.pem"), "--kid", "ops-t")
    assert code == 0 and 'kid = "ops-t"' in out
    return ["--signing-key", str(tmp_path / "ops.pem"), "--kid", "ops-t"]


@pytest.fixture
def empty(broker: Broker) -> list[str]:
    """A dry run checks the devices on the broker; on an empty one every name needs --force."""
    return ["--port", str(broker.port), "--force"]


def test_keygen_twice_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keygen", "--out", str(tmp_path / "k.pem"), "--kid", "ops-a"]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already exists" in err
    assert run(capsys, *argv, "--force")[0] == 0


def test_import_checkpoints_to_stdout_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "cps.csv"
    src.write_text(CSV)
    code, out, _ = run(
        capsys,
        "import-checkpoints",
        str(src),
        "--task-id",
        "t-1",
        "--task-name",
        "Loop",
        "--start",
        "1700000000000",
        "--end",
        "8h",
        "--order",
        "sequence",
    )
    assert code == 0
    task = json.loads(out)["tasks"][0]
    assert (task["start_ms"], task["end_ms"], task["order"]) == (
        1_700_000_000_000,
        1_700_028_800_000,
        "sequence",
    )
    dest = tmp_path / "tasks.json"
    code, _, err = run(
        capsys,
        "import-checkpoints",
        str(src),
        "--task-id",
        "t-1",
        "--task-name",
        "Loop",
        "--out",
        str(dest),
    )
    assert code == 0 and "1 checkpoints" in err
    assert json.loads(dest.read_text())["tasks"][0]["checkpoints"][0]["tags"] == ["04A1B2C3"]


def test_import_errors_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "cps.csv"
    src.write_text(CSV + "cp-2,Bridge,91,113.73,25,10,,false\n")
    code, out, err = run(
        capsys, "import-checkpoints", str(src), "--task-id", "t", "--task-name", "n"
    )
    assert code == 2 and out == ""
    assert "line 3: lat: Input should be less than or equal to 90" in err


def test_push_tasks_dry_run_is_signed_and_retained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: list[str], empty: list[str]
) -> None:
    src = tmp_path / "cps.csv"
    src.write_text(CSV)
    tasks = tmp_path / "tasks.json"
    run(
        capsys,
        "import-checkpoints",
        str(src),
        "--task-id",
        "t",
        "--task-name",
        "n",
        "--out",
        str(tasks),
    )
    before = int(time.time() * 1000)
    r = dry(capsys, "push-tasks", "pd-0042", "--file", str(tasks), *key, "--expires", "2h", *empty)
    p = r["payload"]
    assert r["topic"] == "grid/v1/pd-0042/desired/tasks" and r["retain"] is True
    assert p["ver"] >= before and p["iat"] == p["ver"] and p["exp"] == p["iat"] + 7_200_000
    assert json.loads(r["document"])["kid"] == "ops-t"


def test_set_mode_and_cmd_dry_runs(
    capsys: pytest.CaptureFixture[str], key: list[str], empty: list[str]
) -> None:
    r = dry(
        capsys,
        "set-mode",
        "emergency",
        "--zone",
        "ruyihu",
        "--reason",
        "flood",
        *key,
        "--ver",
        "42",
        *empty,
    )
    assert r["topic"] == "grid/v1/zone/ruyihu/desired/mode"
    assert r["payload"]["body"] == {"mode": "emergency", "reason": "flood"}
    assert (r["payload"]["ver"], r["payload"]["target"]) == (42, {"zone": "ruyihu"})
    r = dry(capsys, "cmd", "pd-0042", "snapshot", "--arg", "camera_id=cam-1", *key, *empty)
    assert r["topic"] == "grid/v1/pd-0042/cmd" and r["retain"] is False
    assert r["payload"]["body"] == {"action": "snapshot", "args": {"camera_id": "cam-1"}}
    # Trap: `--arg camera=` (as the docs once said) was silently ignored by the device.
    code, _, err = run(capsys, "cmd", "pd-0042", "snapshot", "--arg", "camera=cam-1", *key)
    assert code == 2 and "unknown argument camera (takes camera_id)" in err


def test_push_errors_exit_2_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: list[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tasks": [{"id": "t"}]}))
    code, _, err = run(capsys, "push-tasks", "pd-0042", "--file", str(bad), *key, "--dry-run")
    assert code == 2 and "tasks[0].name" in err
    code, _, err = run(capsys, "cmd", "pd-0042", "status_now", "--dry-run")
    assert code == 2 and "--signing-key" in err
    code, _, err = run(capsys, "cmd", "pd-0042", "status_now", *key, "--expires", "soon")
    assert code == 2 and "soon" in err
    Path(key[1]).chmod(0o644)
    code, _, err = run(capsys, "cmd", "pd-0042", "status_now", *key, "--dry-run")
    assert code == 2 and "chmod 600" in err


def test_unreachable_broker_exits_4(capsys: pytest.CaptureFixture[str], key: list[str]) -> None:
    port = str(free_port())
    code, _, err = run(capsys, "cmd", "pd-0042", "status_now", *key, "--port", port)
    assert code == 4 and f"127.0.0.1:{port}" in err


def test_push_config_leaves_out_local_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: list[str], empty: list[str]
) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text(
        '[device]\nid = "pd-0042"\nrole = "patrol"\n'
        '[broker]\nhost = "mqtt.example"\nusername = "pd-0042"\npassword_file = "/etc/pw"\n'
        "[modes.profiles.normal]\nstatus_interval_s = 20\n"
    )
    argv = ["push-config", "pd-0042", "--file", str(toml), *key, "--dry-run", *empty]
    code, out, err = run(capsys, *argv)
    assert code == 0 and "device.id, broker.username, broker.password_file" in err
    body = json.loads(out)["payload"]["body"]
    assert body == {
        "device": {"role": "patrol"},
        "broker": {"host": "mqtt.example"},
        "modes": {"profiles": {"normal": {"status_interval_s": 20}}},
    }


def test_ops_config_file_and_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(parents=[broker_flags(), signing_flags()])
    conf = tmp_path / "ops.toml"
    conf.write_text(
        '[broker]\nhost = "mqtt.example"\nport = 8883\ntls = true\n'
        '[signing]\nkid = "ops-1"\nkey_file = "/etc/grid-ops/ops.pem"\n'
    )
    cfg = settings(parser.parse_args(["--ops-config", str(conf), "--port", "9883"]))
    assert (cfg.broker.host, cfg.broker.port, cfg.broker.tls) == ("mqtt.example", 9883, True)
    assert (cfg.signing.kid, str(cfg.signing.key_file)) == ("ops-1", "/etc/grid-ops/ops.pem")
    conf.write_text('[broker]\nhst = "x"\n')
    with pytest.raises(ConfigError) as err:
        settings(parser.parse_args(["--ops-config", str(conf)]))
    assert err.value.problems == [("broker.hst", "unknown key (did you mean 'host'?)")]


def test_archive_round_trip_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = full_stream()
    arch = watch.Archive(tmp_path / "arch")
    day = 1_764_270_902_123  # 2025-11-27 19:15 UTC
    for i, m in enumerate(s.msgs):
        # Crossing midnight UTC splits the archive into two files, read back in order.
        arch.append(Message(m.topic, m.payload, False, day + i * 3_600_000))
    arch.close()
    assert len(list((tmp_path / "arch").glob("*.jsonl"))) == 2
    back = list(watch.read_archive(tmp_path / "arch"))
    assert [(m.topic, m.payload) for m in back] == [(m.topic, m.payload) for m in s.msgs]
    code, out, _ = run(capsys, "verify", DEV, "--archive", str(tmp_path / "arch"))
    assert code == 0 and "clean" in out
    # One stored message left out: exit 1 and the seq named.
    arch2 = watch.Archive(tmp_path / "arch2")
    for m in s.msgs[:2] + s.msgs[3:]:
        arch2.append(Message(m.topic, m.payload, False, day))
    arch2.close()
    code, out, _ = run(capsys, "verify", DEV, "--archive", str(tmp_path / "arch2"), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [f["code"] for f in report["findings"] if f["problem"]] == ["seq_gap"]


def test_verify_needs_an_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", DEV, "--archive", str(tmp_path))
    assert code == 2 and "no *.jsonl" in err
    (tmp_path / "x.jsonl").write_text('{"topic": 1}\n')
    code, _, err = run(capsys, "verify", DEV, "--archive", str(tmp_path))
    assert code == 2 and "x.jsonl:1" in err


def test_watch_rows_describe_what_arrived() -> None:
    s = Stream()
    ck = s.checkin()
    ack = s.evt(
        "ack", {"ref": "r", "typ": "tasks", "ver": 3, "status": "rejected", "reason": "expired"}
    )
    rows = [watch.describe(Message(m.topic, m.payload, False, 0)) for m in (ck, ack)]
    assert rows[0] is not None and (rows[0].what, rows[0].seq) == ("evt/checkin", 1)
    assert "checkpoint_id=cp-1" in rows[0].summary
    assert (
        rows[1] is not None and rows[1].summary == "typ=tasks ver=3 status=rejected reason=expired"
    )
    chunk = Message(f"grid/v1/{DEV}/media/m/0", b"\xff\xd8", False, 0)
    status = Message(f"grid/v1/{DEV}/status", b'{"mode":"normal"}', False, 0)
    assert watch.describe(chunk) is None and watch.describe(status) is None
    assert watch.describe(status, show_status=True) is not None
    assert watch.describe(Message("grid/v1/central/state", b"{}", True, 0)) is None


def test_device_rows_prefer_the_newer_of_birth_and_reported() -> None:
    birth = {
        "v": 1,
        "online": True,
        "bdseq": 4,
        "boot": "b",
        "ts": 1000,
        "agent": "0.1.0",
        "role": "patrol",
        "config_ver": None,
        "tasks_ver": 5,
        "mode": "normal",
    }
    reported = {
        "v": 1,
        "config_ver": None,
        "tasks_ver": 9,
        "mode": {"name": "emergency", "ver": 2, "scope": "zone:ruyihu"},
        "ts": 2000,
    }
    gone = {"v": 1, "online": False, "bdseq": 7, "reason": "lost"}
    rows = devices.rows(
        [
            ("grid/v1/pd-1/state", json.dumps(birth).encode()),
            ("grid/v1/pd-1/reported", json.dumps(reported).encode()),
            ("grid/v1/pd-2/state", json.dumps(gone).encode()),
            ("grid/v1/central/state", b'{"online":true,"ts":5}'),
            ("grid/v1/pd-3/state", b"not json"),
        ]
    )
    assert [r.dev for r in rows] == ["pd-1", "pd-2"]
    one, two = rows
    assert (one.online, one.agent, one.tasks_ver, one.mode, one.mode_scope, one.state_ts) == (
        True,
        "0.1.0",
        9,
        "emergency",
        "zone:ruyihu",
        2000,
    )
    assert one.last_seen_ms is None  # retained messages say nothing about being alive now
    assert (two.online, two.reason, two.bdseq, two.mode) == (False, "lost", 7, None)
