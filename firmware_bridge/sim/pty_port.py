"""A pty pair standing in for a serial device, reached through a symlink that survives replug.

Interface:
    port = PtyPort(link_path=None)      # default: <tempdir>/tty<name>
    port.plug()                         # new pty, symlink -> its slave (e.g. /dev/pts/7)
    port.path                           # the symlink: give it to pyserial / SerialLink
    port.write(data) -> int             # to the device side; bytes the reader is not draining
                                        # are dropped (counted in .dropped) instead of blocking
    port.master_fd                      # for loop.add_reader (simulators read host bytes here)
    port.unplug()                       # close the pty and remove the symlink: readers get
                                        # EIO/EOF, opening the path fails with ENOENT
    port.close()                        # unplug and remove the temporary directory

Why a symlink: a pty cannot be reopened once its master is closed, and a real USB adapter
that comes back gets a new device node too; a stable path (like /dev/serial/by-id/...) that is
repointed to the new pty lets the serial link's reopen logic find the device again.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import tty
from pathlib import Path

log = logging.getLogger(__name__)


class PtyPort:
    """Owns one pty pair at a time and the symlink pointing at its slave."""

    def __init__(self, link_path: str | os.PathLike[str] | None = None, *, name: str = "SIM"):
        self._tmpdir: str | None = None
        self._name = name
        self._path = None if link_path is None else str(link_path)
        self.master_fd: int | None = None
        self._slave_fd: int | None = None
        self.dropped = 0
        self.written = 0

    @property
    def path(self) -> str:
        """The symlink path (a temporary directory is made on first use; close() removes it)."""
        if self._path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="gridedge-sim-")
            self._path = str(Path(self._tmpdir) / f"tty{self._name}")
        return self._path

    def plug(self) -> None:
        """Create a fresh pty and point the symlink at its slave."""
        if self.master_fd is not None:
            return
        master, slave = os.openpty()
        # Raw before anyone opens it: with the default cooked mode the line discipline would
        # echo our own output back to us and translate CR/LF.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master_fd, self._slave_fd = master, slave
        tmp = f"{self.path}.new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)  # atomic repoint
        log.debug("pty %s -> %s", self.path, os.ttyname(slave))

    def unplug(self) -> None:
        """Remove the symlink and close the pty (the reader sees the device vanish)."""
        if self._path is not None and os.path.lexists(self._path):
            os.unlink(self._path)
        for fd in (self.master_fd, self._slave_fd):
            if fd is not None:
                os.close(fd)
        self.master_fd = self._slave_fd = None

    def write(self, data: bytes) -> int:
        """Write towards the host; returns bytes written (0 when unplugged or full)."""
        fd = self.master_fd
        if fd is None:
            self.dropped += len(data)
            return 0
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            n = 0
        self.written += n
        self.dropped += len(data) - n
        return n

    def read(self, size: int = 4096) -> bytes:
        """Bytes the host wrote (b"" when none are waiting or the port is unplugged)."""
        fd = self.master_fd
        if fd is None:
            return b""
        try:
            return os.read(fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            return b""

    def close(self) -> None:
        """Unplug and remove the temporary directory."""
        self.unplug()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
