"""A real PostgreSQL (Debian's `postgresql`) for tests: initdb into a temporary directory, a free
loopback port, no Unix socket outside that directory; started and stopped by the fixture.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` user the Debian
package creates, with the data directory handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agent.demo.broker import free_port, wait_listening


def pg_bin(name: str) -> str | None:
    """The newest installed PostgreSQL's `name` program (initdb, postgres)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class Postgres:
    """One PostgreSQL server; `dsn` reaches its `archive` database as the superuser."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: as root that is 0700 root's, out of the postgres user's
        # reach; a fresh directory of its own in /tmp is handed to it instead.
        self.dir = Path(tempfile.mkdtemp(prefix="grid-pg-"))
        self.data = self.dir / "pgdata"
        self.sock = self.dir / "sock"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log_file = self.dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        self.dsn = f"postgresql://grid@127.0.0.1:{self.port}/archive"

    def _as_user(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, user=self._user, group=self._user, **kw)  # type: ignore[call-overload, no-any-return]

    def init(self) -> None:
        """initdb with trust auth on loopback and a `grid` superuser, then create the db."""
        initdb, postgres = pg_bin("initdb"), pg_bin("postgres")
        if initdb is None or postgres is None:
            pytest.fail("PostgreSQL is not installed: scripts/setup.sh installs postgresql")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self._user is not None:
            pw = pwd.getpwnam(self._user)
            for p in (self.dir, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        argv = [initdb, "-D", str(self.data), "-U", "grid", "-A", "trust", "-E", "UTF8"]
        proc = self._as_user([*argv, "--no-sync"], stdout=subprocess.DEVNULL)
        assert proc.wait(120) == 0, "initdb failed"
        self.start()
        import psycopg

        with psycopg.connect(
            f"postgresql://grid@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE archive")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        postgres = pg_bin("postgres")
        assert postgres is not None
        argv = [
            postgres, "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
            "-k", str(self.sock), "-c", "fsync=on", "-c", "synchronous_commit=on",
            "-c", "shared_buffers=64MB", "-c", "max_connections=40",
        ]  # fmt: skip
        with self.log_file.open("ab") as out:
            self.proc = self._as_user(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_listening(self.host, self.port, self.proc, self.log)
        self._ready()

    def _ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(
                    f"postgresql://grid@127.0.0.1:{self.port}/postgres", connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Stop the server (SIGINT: fast shutdown, open transactions rolled back)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def remove(self) -> None:
        """Stop and delete the data directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        """The server's log, for a failure message."""
        try:
            return self.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return ""
