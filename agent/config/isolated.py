"""Validating the config file in a child process, for `edge-agent run` (issue 22).

Validation builds pydantic's validators: about 2.5 MB of an idle device's resident memory that
would never be given back, for models the device does not use again until a document arrives.
`load_in_child` runs `python -m agent.config.isolated FILE`, which validates the file exactly as
`agent.config.model.load` does, and reads back the result as a pickle: the validated `Config`,
or the problems of an invalid file (the same `ConfigError`). The models are `defer_build`, so
the parent, which only unpickles instances, never builds a validator; it builds one later if a
document or a remote config must be validated.

The pickle comes from a child this process started with its own interpreter and code, over a
pipe: it is as trusted as the code itself. Nothing else reaches `pickle.loads` here.

Cost: one interpreter start, about 0.1-0.2 s of spawn-to-birth here (ceiling 1 s).
"""

from __future__ import annotations

import os
import pickle
import site
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config.model import Config

_TIMEOUT_S = 120.0  # a slow SD card on first start; validation itself takes a tenth of that


def _child_env() -> dict[str, str]:
    """This environment; from a checkout, with the checkout first on PYTHONPATH.

    The child must import this very code, whatever the parent's working directory. An installed
    agent is found by the child's own site-packages, which must not move before the stdlib.
    """
    root = Path(__file__).resolve().parents[2]
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in installed:
        return dict(os.environ)
    paths = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def load_in_child(
    path: Path, python: str = sys.executable, timeout_s: float = _TIMEOUT_S
) -> Config:
    """Validate `path` in a child process; the validated config, or ConfigError.

    `python`: the interpreter to run it with (this one).
    Raises ConfigError naming the file when the child cannot report (it crashed, was killed,
    timed out or wrote no result): the agent then stops as it does for an invalid file.
    """
    argv = [python, "-m", "agent.config.isolated", str(path)]
    try:
        proc = subprocess.run(
            argv, capture_output=True, timeout=timeout_s, env=_child_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError([(str(path), f"could not validate: {exc}")]) from None
    sys.stderr.write(proc.stderr.decode("utf-8", "replace"))  # the child's warnings, if any
    if proc.returncode != 0:
        why = f"the validating process exited with {proc.returncode}"
        raise ConfigError([(str(path), why)])
    try:
        kind, value = pickle.loads(proc.stdout)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ConfigError([(str(path), f"no result from the validating process: {exc}")]) from None
    if kind == "problems":
        raise ConfigError(value)
    return value  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """The child: validate argv[0], write ("config", Config) or ("problems", [...]) pickled."""
    from agent.config.model import load

    result: tuple[str, object]
    try:
        result = ("config", load(Path(argv[0])))
    except ConfigError as exc:
        result = ("problems", exc.problems)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
