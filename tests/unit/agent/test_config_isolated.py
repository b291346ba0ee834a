"""load_in_child: `edge-agent run` validates its config in a forked child (issue 22 point 3).

The result must be what validating here gives (values, and which keys the file set: a remote
config merges over those), the problems of an invalid file the same, and a child that cannot
report a clear ConfigError, never a half-read config.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config.isolated import load_in_child
from agent.config.model import Config, _default_profiles, load
from agent.errors import ConfigError
from tests.kits.paths import REPO

SHIPPED = sorted((REPO / "configs").glob("*.toml"))
PATROL = """
[device]
id = "pd-0007"
role = "patrol"
state_dir = "{state}"
[broker]
host = "127.0.0.1"
port = 18830
[gps]
port = "/dev/ttyAMA0"
[modes.profiles.holiday]
status_interval_s = 20.0
[logging]
json = true
"""


def both(path: Path) -> tuple[object, object]:
    """(validated here, validated in a child), or the ConfigError problems of each."""
    results = []
    for how in (load, load_in_child):
        try:
            results.append(how(path))
        except ConfigError as exc:
            results.append(exc.problems)
    return results[0], results[1]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_come_back_equal(path: Path) -> None:
    here, there = both(path)
    assert here == there


def test_a_config_comes_back_with_what_the_file_set(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(PATROL.format(state=tmp_path / "state"))
    here, there = both(path)
    assert not isinstance(here, list) and not isinstance(there, list)
    assert there == here
    assert there.model_dump(mode="json", exclude_unset=True) == here.model_dump(
        mode="json", exclude_unset=True
    )
    assert (
        there.logging.json_lines is True and there.modes.profile("holiday").status_interval_s == 20
    )


@pytest.mark.parametrize(
    "text",
    [
        '[device]\nid = "PD 1"\nrole = "patrol"\ncolor = 1\n[broker]\nport = 0\n',
        "[device\n",
        '[device]\nid = "pd-1"\nrole = "patrol"\n[modes.profiles.normal]\nman_down_after_s = 0.5\n',
    ],
    ids=["keys", "toml", "model-validator"],
)
def test_an_invalid_file_gives_the_same_problems(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    here, there = both(path)
    assert isinstance(here, list) and here
    assert there == here


def test_a_missing_file_gives_the_same_problem(tmp_path: Path) -> None:
    here, there = both(tmp_path / "missing.toml")
    assert isinstance(there, list) and "cannot read" in there[0][1]
    assert there == here


def crash(_path: Path) -> Config:
    raise RuntimeError("boom")


def killed(_path: Path) -> Config:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("not reached")


def unpicklable(_path: Path) -> Config:
    return lambda: None  # type: ignore[return-value]


def silent(_path: Path) -> Config:
    os._exit(0)


def never(_path: Path) -> Config:
    time.sleep(60)
    raise AssertionError("not reached")


@pytest.mark.parametrize(
    ("validate", "reason"),
    [
        (crash, "the validating process exited with 1"),
        (killed, "the validating process killed by signal 9"),
        (unpicklable, "the validating process exited with 1"),
        (silent, "no result from the validating process"),
    ],
    ids=["crash", "killed", "unpicklable", "silent"],
)
def test_a_child_that_cannot_report_is_a_clear_config_error(
    validate: Callable[[Path], Config], reason: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Fault injection: `validate` stands for the child's work and fails in each way."""
    path = REPO / "configs" / "patrol.toml"
    with pytest.raises(ConfigError) as info:
        load_in_child(path, validate)
    assert info.value.problems == [(str(path), info.value.problems[0][1])]
    assert reason in info.value.problems[0][1]
    if validate is crash:
        assert "RuntimeError: boom" in capfd.readouterr().err  # the child's traceback


def test_a_child_that_never_answers_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_in_child(tmp_path / "x.toml", never, timeout_s=0.5)
    assert "could not validate within 0.5 s" in info.value.problems[0][1]


def test_this_process_builds_no_validator() -> None:
    """What issue 22 wants of it: the parent only unpickles; nothing of pydantic is built."""
    code = (
        "import sys; from pathlib import Path\n"
        "from agent.config.isolated import load_in_child\n"
        "from agent.config.model import Config\n"
        "cfg = load_in_child(Path(sys.argv[1]))\n"
        "print(cfg.device.role, Config.__pydantic_complete__,"
        " 'pydantic.plugin._loader' in sys.modules)\n"
        "cfg.modes.profile('emergency'); cfg.modes.profile('no-such-mode')\n"
        "print(Config.__pydantic_complete__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "configs" / "patrol.toml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["patrol", "False", "False", "False"]


def test_the_built_in_mode_profiles_are_valid() -> None:
    """They are made without validation (model_construct): each must validate unchanged."""
    for name, profile in _default_profiles().items():
        again = type(profile).model_validate(profile.model_dump())
        assert again == profile, name
