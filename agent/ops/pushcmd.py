"""`ops push-config|push-tasks|set-mode|cmd|retract`: sign, guard, publish, follow the acks."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agent.config.model import SyncConfig
from agent.config.paths import expand
from agent.errors import ConfigError
from agent.ops import documents, fleet, guards, keys, output
from agent.ops.devices import part
from agent.ops.mqtt import OpsClient, ack_topic, settings
from agent.ops.output import Output
from sync.envelope import PREFIX, uuid7
from sync.verify import sign

Handler = Callable[[argparse.Namespace], int]


# Seconds a device needs besides the health window: restart with the new config, reconnect,
# send the ack. The window itself is the document's, else the agent's default.
ACK_MARGIN_S = 30.0
DEFAULT_TIMEOUT_S = 30.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def ack_timeout(given: float | None, typ: str, body: Mapping[str, Any]) -> float:
    """`--timeout`, else one that outlasts a config's health window (acked at its end)."""
    if given is not None:
        return given
    if typ != "config":
        return DEFAULT_TIMEOUT_S
    window = part(body, "sync").get("config_health_window_s")
    if not isinstance(window, int | float) or isinstance(window, bool):
        window = SyncConfig.model_fields["config_health_window_s"].default
    return max(DEFAULT_TIMEOUT_S, float(window) + ACK_MARGIN_S)


def _named(args: argparse.Namespace) -> list[str]:
    """The device ids given by name: positional ones and --devices-file."""
    named = list(getattr(args, "devices", None) or []) + list(getattr(args, "expect", None) or [])
    if getattr(args, "dev", None):
        named.append(args.dev)
    if getattr(args, "device", None):
        named.append(args.device)
    if getattr(args, "devices_file", None):
        named += fleet.read_device_list(expand(args.devices_file))
    for dev in named:
        documents.DocTarget(dev=dev)  # a malformed id is refused before anything is sent
    return named


def _pick(args: argparse.Namespace, inv: fleet.Inventory, zone_doc: str | None) -> list[str]:
    """The devices to push to (and to await): named ones, plus those of --zone/--role,
    online or not (an offline device's retained state names its role and zones, §5)."""
    role = getattr(args, "role", None)
    zone = zone_doc if zone_doc is not None else getattr(args, "zone", None)
    return inv.select(devs=_named(args), zone=zone, role=role)


def _findings(
    args: argparse.Namespace,
    typ: str,
    body: dict[str, Any],
    inv: fleet.Inventory,
    devs: list[str],
    zone_doc: str | None,
) -> guards.Findings:
    """Every check a push runs before it sends (a dry run too)."""
    found = guards.Findings()
    unknown = inv.unknown(_named(args))
    if unknown:
        found.stops.append(
            f"never seen on this broker (no retained state): {', '.join(unknown)}; "
            "check the id (`ops devices`)"
        )
    zone = zone_doc if zone_doc is not None else getattr(args, "zone", None)
    if zone is not None:
        found.stops.extend(guards.zone_findings(zone, inv.zones()))
    found.stops.extend(guards.role_findings(typ, body, devs, inv.devices))
    if typ == "config":
        roles = {row.role if (row := inv.devices.get(d)) else None for d in devs}
        found.stops.extend(guards.parts_findings(body, roles))
        for dev in devs:
            row = inv.devices.get(dev)
            stop = guards.rejections(body, row) if row else []
            found.stops.extend(f"{dev}: {text}" for text in stop)
            warns = fleet.config_warnings(body, row) if row else []
            found.warnings.extend(f"{dev}: {text}" for text in warns if text not in stop)
    return found


def _guard(args: argparse.Namespace, found: guards.Findings, o: Output) -> None:
    """Print the warnings; stop on a finding that predicts a rejection, unless --force."""
    force = bool(getattr(args, "force", False))
    for text in found.warnings + (found.stops if force else []):
        o.warn(text)
    if found.stops and not force:
        for text in found.stops:
            o.error(text)
        raise ValueError(
            f"nothing sent: {len(found.stops)} problem(s) above; fix them, or give --force "
            "to push anyway"
        )


def _preview(
    o: Output, typ: str, body: dict[str, Any], inv: fleet.Inventory, devs: list[str]
) -> None:
    """Before publishing (stderr): what a config changes per device class; who is offline."""
    if typ == "config":
        groups: dict[str, list[str]] = {}
        for dev in devs:
            row = inv.devices.get(dev)
            groups.setdefault((row.role if row else None) or "unknown", []).append(dev)
        for text in guards.config_preview(body, groups):
            o.note(text)
    offline = guards.offline_line(typ, inv.offline(devs))
    if offline is not None:
        o.note(offline)


def _signer(args: argparse.Namespace) -> tuple[str, Any, int, int | None]:
    """(kid, private key, now ms, exp): every input check before anything connects."""
    cfg = settings(args)
    if cfg.signing.key_file is None or cfg.signing.kid is None:
        raise ConfigError([("signing", "give --signing-key and --kid (or [signing] in ops.toml)")])
    key = keys.load_private_key(cfg.signing.key_file)
    now = _now_ms()
    exp = documents.parse_expires(args.expires, now)
    minutes = getattr(args, "exp_minutes", None)
    if minutes is not None:
        # A command is for now (§6): it always expires, in minutes.
        if args.expires is not None:
            raise ValueError("a cmd expires in minutes: give --exp MINUTES, not --expires")
        exp = now + round(minutes * 60_000)
    return cfg.signing.kid, key, now, exp


def _sign_all(
    args: argparse.Namespace,
    typ: str,
    body: dict[str, Any],
    devs: list[str],
    zone_doc: str | None,
) -> list[tuple[documents.Prepared, bytes, list[str]]]:
    """One signed document per device, or one for the zone: (doc, bytes, devices acking it)."""
    kid, key, now, exp = _signer(args)
    if zone_doc is not None:
        targets = [(documents.DocTarget(zone=zone_doc), devs)]
    else:
        targets = [(documents.DocTarget(dev=d), [d]) for d in devs]
    signed = []
    for target, acking in targets:
        doc = documents.prepare(
            typ, target, body, now_ms=now, doc_id=uuid7(now), ver=args.ver, exp=exp
        )
        raw = sign(doc.payload, kid, key)
        documents.check_size(raw)
        signed.append((doc, raw, acking))
    return signed


def _dry_run(o: Output, signed: list[tuple[documents.Prepared, bytes, list[str]]]) -> int:
    """Print each signed document as one JSON line; nothing is sent."""
    for doc, raw, _ in signed:
        dry = {"topic": doc.topic, "retain": doc.retain, "payload": doc.payload}
        o.record({**dry, "document": raw.decode()})
    return 0


def _publish(
    o: Output,
    client: OpsClient,
    typ: str,
    signed: list[tuple[documents.Prepared, bytes, list[str]]],
) -> dict[str, str]:
    """Publish every signed document; which document id each device should ack."""
    expect: dict[str, str] = {}
    ver = int(signed[0][0].payload["ver"])
    for doc, raw, acking in signed:
        client.publish(doc.topic, raw, retain=doc.retain)
        kept = "retained" if doc.retain else "not retained"
        o.say(
            f"published {typ} ver {ver} to {doc.topic} ({kept}), id {doc.doc_id}",
            "published",
            typ=typ,
            ver=ver,
            topic=doc.topic,
            retain=doc.retain,
            id=doc.doc_id,
            devices=acking,
        )
        expect.update({d: doc.doc_id for d in acking})
    if len(signed) > 1:
        o.say(f"{len(signed)} documents published, {typ} ver {ver}", "published_all", n=len(signed))
    return expect


def _unacked(o: Output, board: fleet.AckBoard, inv: fleet.Inventory) -> None:
    """Say why a device may not have acked: offline (applies on return) or online (look).

    Devices offline when the push was sent (`board.away`) were named before publishing and
    not waited for; they are not repeated here.
    """
    missing = [d for d in board.expect if d not in board.got and d not in board.away]
    if board.typ == "cmd" or not missing:
        return
    offline = [d for d in missing if (row := inv.devices.get(d)) is None or row.online is not True]
    online = [d for d in missing if d not in offline]
    if offline:
        o.note(f"offline, the retained document applies when they return: {', '.join(offline)}")
    if online:
        o.note(
            f"online but no ack in time: {', '.join(online)}; the document stays retained "
            "(a config acks after its health window: give --timeout more; see `ops devices`)"
        )


def _push(
    args: argparse.Namespace, typ: str, body: dict[str, Any], *, zone_doc: str | None = None
) -> int:
    """Check, sign one document per device (or one zone document), publish, follow the acks.

    A dry run runs every check a real push runs (so it needs the broker) and prints the
    signed documents instead of publishing them.
    """
    o = output.make(args)
    _signer(args)  # refuse a bad key or expiry before connecting
    with OpsClient(settings(args).broker, args.client_id) as client:
        inv = fleet.load_inventory(client, args.inventory_wait)
        devs = _pick(args, inv, zone_doc)
        _guard(args, _findings(args, typ, body, inv, devs, zone_doc), o)
        if not devs and zone_doc is None:
            raise ValueError("no device matches (name devices, or --zone/--role they announce)")
        _preview(o, typ, body, inv, devs)
        signed = _sign_all(args, typ, body, devs, zone_doc)
        if args.dry_run:
            return _dry_run(o, signed)
        # A retained document reaches an offline device when it returns: not waited for now.
        away = frozenset(inv.offline(devs)) if typ != "cmd" else frozenset()
        wait = not args.no_wait and bool(devs)
        if wait:
            client.subscribe([ack_topic(d) for d in devs])  # before publishing: none missed
        expect = _publish(o, client, typ, signed)
        if not wait:
            if zone_doc is not None and not devs:
                o.note("no device announces this zone: not waiting for acks")
            return 0
        board = fleet.AckBoard(typ, int(signed[0][0].payload["ver"]), expect, away=away)
        fleet.follow(client, board, ack_timeout(args.timeout, typ, body), o)
        if typ == "cmd":
            for line in not_run(board, signed[0][0].payload.get("exp")):
                o.say(line, "not_run")
        _unacked(o, board, inv)
        return board.exit_code()


def not_run(board: fleet.AckBoard, exp: int | None) -> list[str]:
    """The lines saying which devices did not run a command (expired, refused, no ack yet)."""
    refused = []
    for dev in board.expect:
        body = board.got.get(dev, {}).get("body")
        if body is not None and body.get("status") != "applied":
            why = " ".join(str(x) for x in (body.get("status"), body.get("reason")) if x)
            refused.append(f"{dev} ({why})")
    silent = [dev for dev in board.expect if dev not in board.got]
    lines = [f"not run: {', '.join(refused)}"] if refused else []
    if silent and exp is not None:
        until = datetime.fromtimestamp(exp / 1000).astimezone().isoformat(timespec="seconds")
        lines.append(
            f"not run so far (no ack): {', '.join(silent)}; a device that gets the command "
            f"before {until} runs it, later it acks expired and does not"
        )
    elif silent:
        lines.append(f"not run so far (no ack): {', '.join(silent)}")
    return lines


def cmd_push_config(args: argparse.Namespace, read: Callable[[Any], Any]) -> int:
    """push-config: the file minus local-only keys, validated, to one device or a fleet."""
    data = read(expand(args.file))
    if not isinstance(data, dict):
        raise ConfigError([(args.file, "must hold a table/object of config sections")])
    body, removed = documents.config_body(data, "config-check")
    if removed:
        output.make(args).note(f"left out (local-only, never sent): {', '.join(removed)}")
    return _push(args, "config", body)


def cmd_push_tasks(args: argparse.Namespace, read: Callable[[Any], Any]) -> int:
    """push-tasks: a whole task set, to one device or a fleet."""
    body = documents.tasks_body(read(expand(args.file)))
    return _push(args, "tasks", body)


def cmd_set_mode(args: argparse.Namespace) -> int:
    """set-mode: one zone document (acked by the zone's devices) or one per named device."""
    body = documents.mode_body(args.mode, args.reason)
    if args.zone:
        documents.DocTarget(zone=args.zone)
        return _push(args, "mode", body, zone_doc=args.zone)
    return _push(args, "mode", body)


def cmd_cmd(args: argparse.Namespace) -> int:
    """cmd: a one-off command (not retained) to one device or a fleet."""
    cmd_args: dict[str, Any] = {}
    for item in args.arg or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--arg {item!r} is not KEY=VALUE")
        cmd_args[name] = value  # every argument is text (the device refuses anything else)
    return _push(args, "cmd", documents.cmd_body(args.action, cmd_args))


def cmd_retract(args: argparse.Namespace) -> int:
    """retract: clear a retained document (a typo'd device id, a document sent by mistake)."""
    if args.zone:
        documents.DocTarget(zone=args.zone)
        topics = [f"{PREFIX}/zone/{args.zone}/desired/mode"]
    else:
        documents.DocTarget(dev=args.device)
        typs = [args.typ] if args.typ else ["config", "tasks", "mode"]
        topics = [documents.topic_for(t, documents.DocTarget(dev=args.device)) for t in typs]
    cfg = settings(args)
    o = output.make(args)
    with OpsClient(cfg.broker, args.client_id) as client:
        client.subscribe(topics)
        held = {m.topic for m in _drain(client) if m.retain and m.payload}
        for topic in topics:
            if topic not in held:
                o.say(f"{topic}: nothing retained", "retract", topic=topic, removed=False)
                continue
            client.publish(topic, b"", retain=True)  # an empty retained message deletes it
            o.say(f"{topic}: retained document removed", "retract", topic=topic, removed=True)
    if not held:
        return 0
    o.note(
        "what a device already applied stays applied: send a newer document to change it "
        "(config: `edge-agent config reset` on the device goes back to its local file)"
    )
    return 0


def _drain(client: OpsClient, settle_s: float = 0.5) -> list[Any]:
    got = []
    while (msg := client.get(settle_s)) is not None:
        got.append(msg)
    return got


def add_targets(p: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """Flags that pick the devices of a push (by name, from a file, by zone, by role)."""
    if positional:
        p.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids")
    g = p.add_argument_group("fleet (devices as they announce themselves in their birth)")
    g.add_argument("--devices-file", metavar="FILE", help="device ids, one a line (# comments)")
    if positional:
        g.add_argument("--zone", help="every device that announces this zone")
    g.add_argument("--role", choices=("patrol", "camera_gateway"), help="every device of a role")
    g.add_argument(
        "--force",
        action="store_true",
        help="push although a check predicts a rejection or a loss (an id the broker never saw, "
        "a zone no device announces, tasks for a non-patrol device, a config removing a part)",
    )
    g.add_argument(
        "--inventory-wait",
        type=float,
        default=3.0,
        metavar="S",
        help="at most this long to read the devices' retained state",
    )
