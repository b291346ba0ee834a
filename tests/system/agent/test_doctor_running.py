"""doctor next to the running service, the example ops key, fixes that name user and item."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.demo.broker import Broker, free_port
from agent.doctor import system, texts
from agent.doctor.finding import Finding
from agent.doctor.run import diagnose, report
from agent.errors import ConfigError
from agent.ops import cli as ops_cli
from agent.ops.mqtt import load_ops_config
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import make_config
from tests.kits.aio import wait_until

WALK = [(31.2304, 121.4737), (31.2314, 121.4737)]
EXAMPLE = "o7zB1YpXvG8bK0cRj7oV1m3yOqk9Xx6iW2c5r1sTnEw"


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def rendered(findings: list[Finding], lang: str = "en") -> dict[str, tuple[str, str]]:
    return {f.check: texts.render(f.key, lang, dict(f.params)) for f in findings}  # type: ignore[arg-type]


async def test_doctor_while_the_service_holds_the_ports(tmp_path: Path, broker: Broker) -> None:
    # Reported: doctor blamed "held by another program" and the clock while the agent ran.
    async with (
        GpsSimulator(walk=WALK, speed=5, loop=True) as gps,
        Pn532Simulator() as nfc,
    ):
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            gps={"port": gps.port, "baud": 9600},
            nfc={"port": nfc.port},
        )
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready, what="agent connected")
            await wait_until(
                lambda: not any(agent.device_problems().values()), what="ports open in the agent"
            )
            findings = await diagnose(cfg, Path("agent.toml"), synced=lambda: False, listen_s=1)
    got = by_check(findings)
    assert (got["gps"].level, got["gps"].key) == ("skip", "port_agent")
    assert (got["nfc"].level, got["nfc"].key) == ("skip", "port_agent")
    assert got["gps"].params["pid"] == os.getpid()
    assert (got["clock"].level, got["clock"].key) == ("warn", "clock_gps_agent")
    assert got["broker.acl"].level == "pass"  # what can be checked still is
    msg, fix = rendered(findings)["gps"]
    assert "running edge-agent" in msg and "[gps] port" in msg and "systemctl stop" in fix
    for lang in ("zh", "en"):
        with open(os.devnull, "w") as sink:
            report(findings, lang, sink)


def test_fixes_name_the_configured_user_and_the_item(tmp_path: Path) -> None:
    unit = tmp_path / "edge-agent.service"
    unit.write_text("[Service]\nUser=edge-agent\n")
    (tmp_path / "edge-agent.service.d").mkdir()
    (tmp_path / "edge-agent.service.d" / "user.conf").write_text("[Service]\nUser=grid\n")
    assert system.configured_user((tmp_path / "none.service", unit)) == "grid"
    assert system.configured_user((tmp_path / "none.service",)) == "edge-agent"


async def test_fixes_name_the_service_user_and_the_port(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "state", free_port(), gps={"port": str(tmp_path / "ttyNONE"), "baud": 9600}
    )
    findings = await diagnose(cfg, Path("a.toml"), synced=lambda: True, user="nobody", listen_s=0.2)
    text = rendered(findings)
    assert "nobody" in text["state_dir"][1] and "edge-agent:edge-agent" not in text["state_dir"][1]
    assert "[gps] port" in text["gps"][1] and "nobody" in text["gps"][1]
    assert "[gps] port" in rendered(findings, "zh")["gps"][1]


async def test_doctor_and_check_config_fail_on_the_example_key(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "state",
        free_port(),
        trust={"ops_keys": [{"kid": "ops-2026a", "public_key": EXAMPLE}]},
    )
    findings = await diagnose(cfg, Path("a.toml"), synced=lambda: True, listen_s=0.2)
    trust = by_check(findings)["trust"]
    assert (trust.level, trust.key, trust.params["kids"]) == ("fail", "example_key", "ops-2026a")
    assert "provision" in rendered(findings)["trust"][1]


def test_keygen_prints_the_provision_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ops_cli.main(["keygen", "--out", str(tmp_path / "k.pem"), "--kid", "ops-2027"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(ln for ln in out.splitlines() if "provision" in ln and "--ops-key" in ln)
    assert line.startswith("edge-agent provision --ops-key ops-2027=")


def test_ops_toml_typos_get_did_you_mean(tmp_path: Path) -> None:
    conf = tmp_path / "ops.toml"
    conf.write_text('[broker]\nhst = "x"\n[signing]\nkeyfile = "k.pem"\n')
    with pytest.raises(ConfigError) as err:
        load_ops_config(conf)
    assert ("broker.hst", "unknown key (did you mean 'host'?)") in err.value.problems
    assert ("signing.keyfile", "unknown key (did you mean 'key_file'?)") in err.value.problems
