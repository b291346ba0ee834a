"""`ops media`: photos reassembled from their chunks, saved with their metadata."""

from __future__ import annotations

import json
from pathlib import Path

from agent.demo.broker import Broker
from agent.ops.media import Assembler
from agent.runtime.agent import Agent
from tests.kits.agents import DEV
from tests.kits.aio import wait_until
from tests.kits.ops import (
    Ops,
    archived,
    import_tasks,
    produce,
    running,
    start_archiving,
    synced,
)


async def test_media_saves_photos_with_their_metadata(
    ops: Ops, broker: Broker, tmp_path: Path
) -> None:
    arch = tmp_path / "archive"
    task, stop, archive = await start_archiving(broker, arch)
    tasks = await import_tasks(ops)
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        code, out = await ops("push-tasks", DEV, "--file", str(tasks), *ops.signing())
        assert code == 0, out
        made = await produce(agent)
        await wait_until(
            lambda: any(m.topic.endswith("/evt/media") for m in archived(arch)), what="media"
        )
    stop.set()
    await task
    archive.close()
    dest = tmp_path / "photos"
    code, out = await ops("media", "--archive", str(arch), "--out", str(dest), broker=False)
    assert code == 0, out
    assert "1 media file(s) saved" in out and "checkin seq" in out
    jpg = dest / DEV / f"{made['media_id']}.jpg"
    assert jpg.read_bytes() == bytes(range(256)) * 400
    meta = json.loads((dest / DEV / f"{made['media_id']}.json").read_text())
    assert meta["media"]["chunks"] == 2 and meta["named_by"]["kind"] == "checkin"
    assert meta["named_by"]["body"]["checkpoint_id"] == "cp-bridge"
    # Nothing saved is a failure, not silence.
    code, out = await ops(
        "media", "--archive", str(arch), "--device", "pd-9", "--out", str(dest), broker=False
    )
    assert code == 1 and "0 media file(s)" in out


def test_assembler_refuses_chunks_that_do_not_match() -> None:
    asm = Assembler()
    media = {"media_id": "m1", "sha256": "0" * 64, "bytes": 3, "chunks": 1, "mime": "image/jpeg"}
    env = json.dumps({"kind": "media", "body": media}).encode()
    assert asm.offer(f"grid/v1/{DEV}/media/m1/0", b"abc") is None
    assert asm.offer(f"grid/v1/{DEV}/evt/media", env) is None
    assert asm.problems == [f"{DEV} media m1: chunks do not match sha256/bytes"]
