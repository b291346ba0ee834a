"""Validating the config file in a forked child, for `edge-agent run` (issue 22).

Validation builds pydantic's validators: a few MB of an idle device's resident memory that would
never be given back, for models the device does not use again until a document arrives.
`load_in_child` forks; the child validates the file exactly as `agent.config.model.load` does
and sends back, pickled over a pipe, the validated `Config` or the problems of an invalid file
(the same `ConfigError`), then exits. The models are `defer_build`, so this process, which only
unpickles instances, never builds a validator; it builds one later if a document or a remote
config must be validated.

A fork, not a new interpreter: the child needs no interpreter path or import path of its own
(an emulated or frozen agent has neither to give), and it starts with what is already imported.
Call it before any thread is started: a forked child has only the calling thread, and a lock
another thread held at the fork stays held in the child.

The pickle comes from this process's own child over a pipe: it is as trusted as the code
itself. Nothing else reaches `pickle.loads` here.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config.model import Config

_TIMEOUT_S = 120.0  # a slow SD card on first start; validation itself takes a tenth of that


def _load(path: Path) -> Config:
    from agent.config.model import load

    return load(path)


def load_in_child(
    path: Path, validate: Callable[[Path], Config] = _load, timeout_s: float = _TIMEOUT_S
) -> Config:
    """Validate `path` with `validate` in a forked child; the validated config, or ConfigError.

    Raises ConfigError naming the file when the child cannot report (it crashed, was killed,
    timed out or sent no result): the agent then stops as it does for an invalid file.
    """
    sys.stdout.flush()  # or the child would write this process's buffered output again
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(path, validate, write_end)
    os.close(write_end)
    try:
        data = _read_all(read_end, time.monotonic() + timeout_s)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        raise ConfigError([(str(path), f"could not validate within {timeout_s:g} s")]) from None
    finally:
        os.close(read_end)
        status = os.waitpid(pid, 0)[1]
    return _result(path, data, os.waitstatus_to_exitcode(status))


def _child(path: Path, validate: Callable[[Path], Config], out: int) -> NoReturn:
    """Validate, write the pickled outcome to `out`, exit: 0 when it was written, else 1.

    Whatever is raised, the child exits here (with its traceback on stderr), never returning
    into the parent's code; the parent reports the exit code.
    """
    code = 1
    try:
        result: tuple[str, object]
        try:
            result = ("config", validate(path))
        except ConfigError as exc:
            result = ("problems", exc.problems)
        data = memoryview(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        while data:
            data = data[os.write(out, data) :]
        code = 0
    finally:
        if code:
            traceback.print_exception(*sys.exc_info())
        sys.stderr.flush()
        os._exit(code)  # no atexit handlers or buffers of the parent's run in the child


def _read_all(fd: int, deadline: float) -> bytes:
    """Everything written to the pipe `fd` until its writer closes it; TimeoutError at deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _result(path: Path, data: bytes, exit_code: int) -> Config:
    """The config the child sent, or ConfigError with its problems or with what went wrong."""
    if exit_code != 0:
        how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exited with {exit_code}"
        raise ConfigError([(str(path), f"the validating process {how}")])
    try:
        kind, value = pickle.loads(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ConfigError([(str(path), f"no result from the validating process: {exc}")]) from None
    if kind == "problems":
        raise ConfigError(value)
    return value  # type: ignore[no-any-return]
