"""Ops output for people and for scripts: alarms stand out in `watch`; pipes get whole lines;
`--json` gives JSON lines; notes go to stderr."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections import deque
from typing import Any

from rich.console import Console

from agent.demo.broker import Broker
from agent.ops import cli, output, watch
from agent.ops.mqtt import Message, OpsClient, load_ops_config
from agent.runtime.agent import Agent
from tests.kits.agents import DEV
from tests.kits.aio import wait_until
from tests.kits.ops import Ops, import_tasks, running, synced

SOS = {"type": "sos", "lat": 34.77905, "lon": 113.7312, "acc_m": 5.0, "note": "help at the pier"}
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("alarm", SOS),
    ("alarm", {"type": "man_down", "lat": None, "lon": None, "acc_m": None, "note": None}),
    ("alarm", {"type": "lone_worker", "lat": 34.78, "lon": 113.73, "acc_m": 8, "note": None}),
    ("alarm", {"type": "tamper", "lat": None, "lon": None, "acc_m": None, "note": "lid"}),
    ("incident", {"category": "fire", "level": 2, "note": "smoke", "lat": 34.7, "lon": 113.7}),
    ("incident", {"category": "parking", "level": 3, "note": "car", "lat": 34.7, "lon": 113.7}),
]


def watching(broker: Broker, o: output.Output, lang: str) -> tuple[threading.Event, Any]:
    """`ops watch` in a thread (subscribed when this returns): (stop, thread)."""
    stop, ready = threading.Event(), threading.Event()
    client = OpsClient(load_ops_config(None).broker.model_copy(update={"port": broker.port}))

    def run() -> None:
        with client:
            watch.run_watch(client, out=o, stop=stop, ready=ready, lang=lang)  # type: ignore[arg-type]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    return stop, thread


async def test_watch_marks_alarms_with_position_and_time(ops: Ops, broker: Broker) -> None:
    bufs = {k: io.StringIO() for k in ("zh", "en", "json")}
    outs = {k: output.make(stdout=b, stderr=io.StringIO()) for k, b in bufs.items()}
    outs["json"] = output.Output(outs["json"].out, outs["json"].err, json=True)
    watchers = [watching(broker, outs[k], "en" if k == "en" else "zh") for k in bufs]
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        for kind, body in EVENTS:
            await agent.outbox.append(kind, body)
        await wait_until(
            lambda: all(b.getvalue().count("parking") >= 1 for b in bufs.values()),
            what="every event watched",
        )
    for stop, thread in watchers:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
    zh = [ln for ln in bufs["zh"].getvalue().splitlines() if ln.startswith("!!!")]
    assert len(zh) == 4, zh  # SOS, man down, lone worker, the level 2 incident
    assert zh[0].startswith(f"!!! 警报 紧急求救 SOS {DEV} 位置 34.779050,113.731200 ±5 m 时间 ")
    assert zh[0].endswith("说明: help at the pier")
    assert f"人员倒地 {DEV} 位置未知" in zh[1] and "单人作业无应答" in zh[2]
    assert "2级事件 (fire)" in zh[3]
    en = [ln for ln in bufs["en"].getvalue().splitlines() if ln.startswith("!!!")]
    assert en[0].startswith(f"!!! ALARM SOS {DEV} at 34.779050,113.731200 ±5 m time ")
    assert "MAN DOWN" in en[1] and "position unknown" in en[1] and "level 2 incident" in en[3]
    # Tamper and a level 3 incident are ordinary rows.
    assert any(
        "evt/alarm" in ln and "type=tamper" in ln for ln in bufs["en"].getvalue().split("\n")
    )
    rows = [json.loads(ln) for ln in bufs["json"].getvalue().splitlines()]
    alarms = [r["alarm"] for r in rows if r["alarm"]]
    assert [a["kind"] for a in alarms] == ["sos", "man_down", "lone_worker", "incident"]
    assert (alarms[0]["lat"], alarms[0]["lon"], alarms[0]["acc_m"]) == (34.77905, 113.7312, 5.0)


def test_alarms_stay_in_view_while_rows_scroll() -> None:
    view = watch._View(deque(maxlen=5), deque(maxlen=watch.MAX_ALARMS))
    payload = json.dumps({"v": 1, "seq": 1, "ts": 1_800_000_000_000, "body": SOS}).encode()
    first = watch.describe(Message(f"grid/v1/{DEV}/evt/alarm", payload, False, 1))
    assert first is not None and first.alarm is not None
    view.rows.append(first)
    view.alarms.append(first.alarm)
    for n in range(40):  # forty ordinary messages scroll the SOS row away
        body = json.dumps({"v": 1, "seq": n + 2, "body": {"type": "x"}}).encode()
        row = watch.describe(Message(f"grid/v1/{DEV}/evt/notice", body, False, 2))
        assert row is not None
        view.rows.append(row)
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=200).print(view.render(None, "zh"))
    text = buf.getvalue()
    assert "紧急求救 SOS" in text and "34.779050,113.731200" in text
    assert "help at the pier" in text


async def test_pipes_get_whole_lines_and_json_gets_json_lines(ops: Ops) -> None:
    tasks = await import_tasks(ops)
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        argv = ["push-tasks", DEV, "--file", str(tasks), *ops.signing(), "--port", ops.port]
        code = await asyncio.to_thread(cli.main, argv)
        out, err = ops.capsys.readouterr()
        assert code == 0, out + err
        # Not a terminal: one whole line per message, however long (no wrapping at 80).
        [pub] = [ln for ln in out.splitlines() if ln.startswith("published")]
        assert len(pub) > 80 and pub.rstrip().endswith(pub.split()[-1]) and ", id " in pub
        assert f"{DEV}: applied" in out.splitlines()
        code = await asyncio.to_thread(cli.main, [*argv, "--json"])
        out, err = ops.capsys.readouterr()
        assert code == 0, out + err
        events = [json.loads(ln) for ln in out.splitlines()]  # every stdout line is JSON
        assert [e["event"] for e in events] == ["published", "ack", "summary"]
        assert events[1]["dev"] == DEV and events[1]["status"] == "applied"
        assert events[2]["counts"] == {"applied": 1}
        code = await asyncio.to_thread(
            cli.main, ["devices", "--listen", "0", "--json", "--port", ops.port]
        )
        out, err = ops.capsys.readouterr()
        rows = [json.loads(ln) for ln in out.splitlines()]
        assert code == 0 and [r["dev"] for r in rows] == [DEV] and rows[0]["health"] == "ok"
