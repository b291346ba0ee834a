"""A config document is a JSON Merge Patch over the local file (contract §6, RFC 7386)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.commands.config_cmd import provenance
from agent.config.mergepatch import changes, merge_patch, removed_parts, sources
from agent.config.model import parse
from agent.documents.remote_config import remote_config
from agent.errors import ConfigError
from tests.kits.paths import REPO

ROOT = REPO

# RFC 7386 Appendix A: (original, patch, result).
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_EXAMPLES)
def test_the_rfc_examples(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(original)
    assert merge_patch(original, patch) == result
    assert original == before  # never changes its input


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
# A document a merge can produce has no nulls inside objects (null means "remove").
no_nulls = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(no_nulls.filter(lambda v: isinstance(v, dict)))
def test_an_empty_patch_changes_nothing(doc: dict[str, Any]) -> None:
    assert merge_patch(doc, {}) == doc


@given(json_values, objects)
def test_applying_a_patch_twice_is_applying_it_once(doc: Any, patch: dict[str, Any]) -> None:
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once


@given(json_values, objects)
def test_null_removes_values_replace_objects_merge(doc: Any, patch: dict[str, Any]) -> None:
    merged = merge_patch(doc, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        elif isinstance(value, dict):
            assert isinstance(merged[key], dict)
        else:
            assert merged[key] == value  # lists and scalars replace whole
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key not in patch:
                assert merged[key] == value  # what the patch leaves out stays


@given(json_values)
def test_a_non_object_patch_replaces_the_whole_target(value: Any) -> None:
    if not isinstance(value, dict):
        assert merge_patch({"a": 1}, value) == value


# ----- the agent's config ------------------------------------------------------------------


def wired(tmp_path: Path) -> Any:
    """A patrol device with its own wiring: GPS, NFC, camera and the worker carrying it."""
    return parse(
        {
            "device": {
                "id": "pd-0042",
                "role": "patrol",
                "zones": ["ruyihu", "ruyihu.cbd"],
                "state_dir": str(tmp_path),
                "staff_id": "s-1023",
            },
            "broker": {"host": "10.0.0.5", "username": "pd-0042"},
            "gps": {"port": "/dev/ttyAMA0"},
            "nfc": {"port": "/dev/ttyUSB0"},
            "camera": {"source": "file:/tmp/cam", "width": 320, "height": 240},
            "sync": {"outbox_budget_bytes": 1048576},
        }
    )


def ops_md_fleet_file() -> dict[str, Any]:
    """docs/ops.md's own `patrol-fleet.toml`, as push-config sends it."""
    import tomllib

    text = (ROOT / "docs" / "ops.md").read_text()
    block = text.split("```toml file=patrol-fleet.toml\n", 1)[1].split("```", 1)[0]
    return tomllib.loads(block)


def test_the_documented_fleet_push_keeps_each_devices_wiring(tmp_path: Path) -> None:
    # Reported: docs/ops.md's push-config removed [gps], [nfc], [camera] and staff_id from
    # every device, and each acked `applied`.
    local = wired(tmp_path)
    new = remote_config(local, ops_md_fleet_file())
    assert new.gps is not None and new.gps.port == "/dev/ttyAMA0"
    assert new.nfc is not None and new.nfc.port == "/dev/ttyUSB0"
    assert new.camera is not None and new.device.staff_id == "s-1023"
    assert new.sync.outbox_budget_bytes == 1048576  # a key the document leaves out: the file's
    assert new.broker.host == "10.0.0.5" and new.broker.username == "pd-0042"


def test_merge_names_what_it_changes_and_null_removes(tmp_path: Path) -> None:
    local = wired(tmp_path)
    new = remote_config(local, {"sync": {"inflight_window": 7}, "nfc": None})
    assert new.sync.inflight_window == 7 and new.sync.outbox_budget_bytes == 1048576
    assert new.nfc is None and new.gps is not None
    new = remote_config(local, {"device": {"zones": ["ruyihu"]}})
    assert new.device.zones == ["ruyihu"] and new.device.staff_id == "s-1023"  # lists replace
    # `broker: null` resets the broker's remote keys but never the local-only credentials.
    new = remote_config(local, {"broker": None})
    assert new.broker.host == "127.0.0.1" and new.broker.username == "pd-0042"


@pytest.mark.parametrize(
    "body",
    [
        {"device": {"id": "pd-9"}},
        {"device": {"state_dir": None}},
        {"broker": {"password_file": "/x"}},
        {"broker": {"username": None}},
        {"device": {"role": "camera_gateway"}},
    ],
)
def test_local_only_keys_and_a_role_change_are_still_refused(tmp_path: Path, body: Any) -> None:
    with pytest.raises(ConfigError):
        remote_config(wired(tmp_path), body)


def test_config_show_marks_where_each_value_comes_from(tmp_path: Path) -> None:
    local = wired(tmp_path)
    body = {"sync": {"inflight_window": 7}, "nfc": None}
    lines = provenance(local, body, 42)
    text = "\n".join(lines)
    assert any("sync.inflight_window = 7" in ln and "(remote ver 42)" in ln for ln in lines)
    assert any('gps.port = "/dev/ttyAMA0"' in ln and "(file)" in ln for ln in lines)
    assert any("sync.puback_timeout_s = 30.0" in ln and "(default)" in ln for ln in lines)
    assert "nfc: set in the file, removed by remote ver 42" in text
    assert "nfc.port" not in text
    assert all("(remote" not in ln for ln in provenance(local, None, None))


def test_sources_credit_a_replaced_list_to_the_patch() -> None:
    effective = {"device": {"zones": ["a"], "role": "patrol"}}
    got = {
        s.key: s.origin
        for s in sources(effective, {"device": {"role": "patrol"}}, {"device": {"zones": ["a"]}})
    }
    assert got == {"device.zones": "remote", "device.role": "file"}


def test_removed_parts_and_changes() -> None:
    patch = {
        "gps": None,
        "cameras": [],
        "device": {"staff_id": None},
        "sync": {"inflight_window": 5},
    }
    assert removed_parts(patch) == ["gps", "cameras", "device.staff_id"]
    sets, removes = changes(patch)
    assert sets == ["cameras = []", "sync.inflight_window = 5"]
    assert removes == ["gps", "device.staff_id"]
    assert (
        json.dumps(merge_patch({}, patch))
        == '{"cameras": [], "device": {}, "sync": {"inflight_window": 5}}'
    )


def test_config_show_on_the_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent import cli
    from agent.documents.remote_config import ConfigStore, Staged

    path = tmp_path / "pd-0042.toml"
    path.write_text(
        f'[device]\nid = "pd-0042"\nrole = "patrol"\nstate_dir = "{tmp_path / "s"}"\n'
        '[gps]\nport = "/dev/ttyAMA0"\n'
    )
    local = parse(
        {
            "device": {"id": "pd-0042", "role": "patrol", "state_dir": str(tmp_path / "s")},
            "gps": {"port": "/dev/ttyAMA0"},
        }
    )
    store = ConfigStore(local.device.state_dir)
    store.commit(Staged("d1", 7, {"sync": {"inflight_window": 9}}, 0), local)
    assert cli.main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "+ remote config ver 7" in out
    assert re.search(r"sync\.inflight_window = 9 +\(remote ver 7\)", out), out
    assert re.search(r'gps\.port = "/dev/ttyAMA0" +\(file\)', out), out
    # In its health window the staged document is what runs, and what show explains.
    store.stage("d2", 8, {"gps": None})
    assert cli.main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "remote config ver 8 (in its health window)" in out
    assert "gps: set in the file, removed by remote ver 8" in out and "gps.port" not in out


def test_push_config_checks_a_partial_body_as_a_patch() -> None:
    from agent.ops.documents import check_patch

    check_patch({"gps": {"baud": 4800}}, "pd-1")  # the port comes from each device's file
    with pytest.raises(ConfigError) as err:
        check_patch({"gps": {"baud": -1}, "sync": {"inflght_window": 1}}, "pd-1")
    problems = dict(err.value.problems)
    assert "gps.baud" in problems
    assert problems["sync.inflght_window"] == "unknown key (did you mean 'inflight_window'?)"
