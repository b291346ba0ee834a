"""The publisher's in-flight window and scan cursor (sync/window.py), without a broker."""

from __future__ import annotations

from sync.messages import Priority
from sync.outbox_rows import Row
from sync.window import START, Scan, Window


def row(rowid: int, priority: int = Priority.RECORD, group: str | None = None) -> Row:
    return Row(rowid, priority, "t", b"", 1, False, group)


def window(size: int = 3, low_cap: int = 1) -> tuple[Window, list[str]]:
    seen: list[str] = []
    win = Window(
        size,
        low_cap,
        acked=lambda r: seen.append(f"ack {r.rowid}"),
        refused=lambda r: seen.append(f"refused {r.rowid}"),
        wake=lambda: seen.append("wake"),
    )
    return win, seen


def test_each_puback_goes_to_its_row_once() -> None:
    win, seen = window()
    win.add(7, row(1), 10.0)
    win.add(8, row(2), 11.0)
    win.on_puback(8, False)
    win.on_puback(8, True)  # a second answer for the same packet id: nothing
    win.on_puback(99, True)  # not ours: nothing
    win.on_puback(7, True)
    assert seen == ["refused 2", "wake", "ack 1", "wake"] and len(win) == 0


def test_full_for_the_window_and_the_low_priority_share() -> None:
    win, _ = window(size=3, low_cap=1)
    win.add(1, row(1, Priority.DETECTION), 0.0)
    assert win.full_for(row(2, Priority.MEDIA))  # the low share is taken
    assert not win.full_for(row(2, Priority.URGENT))
    win.add(2, row(2), 1.0)
    win.add(3, row(3), 2.0)
    assert win.full_for(row(4, Priority.URGENT))  # the window is
    assert win.oldest_sent() == 0.0 and win.rowids() == {1, 2, 3}
    win.on_puback(1, True)
    assert not win.full_for(row(5, Priority.MEDIA)) and win.oldest_sent() == 1.0


def test_a_suspect_alone_in_flight() -> None:
    win, _ = window()
    win.add(1, row(5), 0.0)
    assert win.alone({5}) and not win.alone({6})
    win.add(2, row(6), 0.0)
    assert not win.alone({5})


def test_scan_refill_rewind_and_photos_set_aside() -> None:
    scan = Scan()
    assert scan.cursor == START
    scan.refill([row(1), row(2, group="m"), row(3)], keep=lambda r: r.rowid != 3)
    assert scan.cursor == (Priority.RECORD, 3) and [r.rowid for r in scan.buffer] == [1, 2]
    scan.drop_groups({"m"})
    assert [r.rowid for r in scan.buffer] == [1]
    scan.rewind((Priority.URGENT, -1))
    assert scan.cursor == (Priority.URGENT, -1) and not scan.buffer
    scan.rewind((Priority.MEDIA, 9))  # never forward
    assert scan.cursor == (Priority.URGENT, -1)
