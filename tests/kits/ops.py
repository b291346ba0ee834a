"""`edge-agent ops` as the staff run it, for tests: in a worker thread, or called directly."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.config.model import Config
from agent.demo.broker import Broker
from agent.errors import ConfigError
from agent.media import MediaStore
from agent.ops import cli, output, watch
from agent.ops.mqtt import Message, OpsClient, load_ops_config
from agent.runtime.agent import Agent
from sync.verify import b64url_decode
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until

CSV = (
    "id,name,lat,lon,radius_m,dwell_s,tags,photo\n"
    "cp-pier,Pier,34.77905,113.73120,25,10,04A1B2C3,false\n"
    "cp-bridge,Bridge,34.77960,113.73130,25,10,04D4E5F6;0416C6C2D73881,true\n"
)


class Ops:
    """Runs `edge-agent ops ...` in a worker thread (the agent's loop keeps running meanwhile)."""

    def __init__(self, broker: Broker, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.port = str(broker.port)
        self.dir = workdir
        self.capsys = capsys
        self.key = workdir / "ops.pem"
        self.trust: dict[str, Any] = {}

    async def __call__(self, *argv: str, broker: bool = True) -> tuple[int, str]:
        args = list(argv) + (["--port", self.port] if broker else [])
        code = await asyncio.to_thread(cli.main, args)
        out, err = self.capsys.readouterr()
        return code, out + err

    async def keygen(self) -> None:
        code, out = await self("keygen", "--out", str(self.key), "--kid", "ops-2026a", broker=False)
        assert code == 0, out
        # The staff paste this line into the device config's [trust]; the test does the same.
        line = next(ln for ln in out.splitlines() if ln.startswith("ops_keys = "))
        self.trust = tomllib.loads(line)

    def signing(self) -> list[str]:
        return ["--signing-key", str(self.key), "--kid", "ops-2026a"]

    def config(self, **sections: Any) -> Config:
        return make_config(self.dir / "state", int(self.port), trust=self.trust, **sections)


def synced() -> SystemClock:
    return SystemClock(synced=lambda: True)  # expiry is judged only with a trusted clock


async def running(agent: Agent) -> None:
    await wait_until(lambda: agent.link.ready, what="agent connected")


async def import_tasks(ops: Ops) -> Path:
    (ops.dir / "cps.csv").write_text(CSV)
    dest = ops.dir / "tasks.json"
    code, out = await ops(
        "import-checkpoints",
        str(ops.dir / "cps.csv"),
        "--task-id",
        "t-lake",
        "--task-name",
        "Lake loop",
        "--order",
        "sequence",
        "--out",
        str(dest),
        broker=False,
    )
    assert code == 0, out
    return dest


def json_lines(out: str) -> list[dict[str, Any]]:
    """The JSON objects of `--json` output, one a line (other lines, e.g. stderr, skipped)."""
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`edge-agent ops ARGV` called directly: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dry(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """`edge-agent ops ARGV --dry-run`: its JSON result, the signed document checked to carry
    the payload shown."""
    code, out, err = run(capsys, *argv, "--dry-run")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    env = json.loads(result["document"])
    assert json.loads(b64url_decode(env["payload"])) == result["payload"]
    return result


async def produce(agent: Agent) -> dict[str, Any]:
    """A stream like a patrol's: check-ins (hash chain), an incident, a photo in two chunks.

    The patrol driver is not wired into the Agent, so the check-ins are stored here directly.
    """
    out = agent.outbox
    prev: bytes | None = None

    async def checkin(cp: str, photos: list[dict[str, Any]]) -> Any:
        nonlocal prev
        body = {
            "task_id": "t-lake",
            "checkpoint_id": cp,
            "staff_id": None,
            "method": "nfc",
            "lat": None,
            "lon": None,
            "acc_m": None,
            "fix": "none",
            "sats": None,
            "hdop": None,
            "gps_ts": None,
            "dist_m": None,
            "tag_uid": "04A1B2C3",
            "photos": photos,
            "prev": hashlib.sha256(prev).hexdigest() if prev else None,
        }
        stored = await out.append("checkin", body)
        prev = stored.payload
        return stored

    first = await checkin("cp-pier", [])
    incident = await out.append(
        "incident",
        {
            "category": "facility",
            "level": 3,
            "note": "lamp out",
            "lat": None,
            "lon": None,
            "acc_m": None,
            "staff_id": None,
            "photos": [],
        },
    )
    # The photo goes the agent's own way: content-addressed store, chunks, then `media`.
    media = MediaStore(agent.cfg.device.state_dir, DEV, out, quota_bytes=10_000_000)
    ref = await media.store(bytes(range(256)) * 400)  # 102400 bytes: two chunks
    naming = await checkin("cp-bridge", [ref])
    await media.send(ref, naming)
    mid = ref["media_id"]
    await checkin("cp-plaza", [])
    return {
        "first_checkin_seq": first.seq,
        "incident_seq": incident.seq,
        "media_id": mid,
        "last_seq": out.seq,
    }


def archived(directory: Path) -> list[Message]:
    try:
        return list(watch.read_archive(directory))
    except ConfigError:
        return []  # nothing yet, or a line being written


async def start_archiving(
    broker: Broker, arch: Path
) -> tuple[asyncio.Task[int], threading.Event, watch.Archive]:
    """`ops watch --archive` in a thread, subscribed when this returns: (task, stop, archive)."""
    stop, ready = threading.Event(), threading.Event()
    archive = watch.Archive(arch)
    client = OpsClient(load_ops_config(None).broker.model_copy(update={"port": broker.port}))

    def watching() -> int:
        with client:
            return watch.run_watch(
                client,
                out=output.make(stdout=io.StringIO(), stderr=io.StringIO()),
                archive=archive,
                stop=stop,
                ready=ready,
            )

    task = asyncio.create_task(asyncio.to_thread(watching))
    await asyncio.to_thread(ready.wait, 10)
    return task, stop, archive
