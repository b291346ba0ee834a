"""memory.defer_imports: a module libraries import but a device does not use, imported on first use.

Each case runs in a fresh interpreter: this one has imported urllib.request long ago.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.kits.paths import REPO


def run(code: str, *args: str) -> str:
    """Run `code` in a fresh interpreter from this checkout; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_binds_the_stand_in_and_the_first_attribute_imports_the_module() -> None:
    out = run(
        """
        import sys
        from agent.runtime.memory import defer_imports
        print(defer_imports(("urllib.request",)))
        import urllib.request
        stub = urllib.request
        print(type(stub).__name__, "http.client" in sys.modules)
        getproxies = urllib.request.getproxies  # the first read
        real = sys.modules["urllib.request"]
        print(type(real).__name__, real is not stub, urllib.request is real)
        print(getproxies is real.getproxies, stub.urlopen is real.urlopen)
        print("http.client" in sys.modules)
        """
    )
    assert out.splitlines() == [
        "['urllib.request']",
        "_Deferred False",
        "module True True",
        "True True",
        "True",
    ]


def test_paho_imports_without_loading_urllib_request() -> None:
    out = run(
        """
        import sys
        from agent.runtime.memory import defer_imports
        defer_imports()
        import paho.mqtt.client
        print(type(sys.modules["urllib.request"]).__name__, "http.client" in sys.modules)
        """
    )
    assert out == "_Deferred False"


def test_a_module_already_imported_is_left_alone() -> None:
    out = run(
        """
        import sys, urllib.request
        from agent.runtime.memory import defer_imports
        print(defer_imports(("urllib.request", "no_such_module_here")))
        print(type(sys.modules["urllib.request"]).__name__)
        """
    )
    assert out.splitlines() == ["[]", "module"]


def test_a_failed_import_leaves_the_stand_in_for_the_next_try(tmp_path: Path) -> None:
    (tmp_path / "flaky_mod.py").write_text(
        "import os\nif os.environ.get('FAIL'):\n    raise ImportError('not now')\nVALUE = 7\n"
    )
    out = run(
        """
        import os, sys
        sys.path.insert(0, sys.argv[1])
        from agent.runtime.memory import defer_imports
        defer_imports(("flaky_mod",))
        import flaky_mod
        os.environ["FAIL"] = "1"
        try:
            flaky_mod.VALUE
        except ImportError as exc:
            print("failed:", exc, type(sys.modules["flaky_mod"]).__name__)
        del os.environ["FAIL"]
        print(flaky_mod.VALUE, type(sys.modules["flaky_mod"]).__name__)
        """,
        str(tmp_path),
    )
    assert out.splitlines() == ["failed: not now _Deferred", "7 module"]


def test_threads_reading_at_once_import_it_once_whatever_the_order(tmp_path: Path) -> None:
    """The first reads race: each round starts 8 threads in a different order at a barrier.

    Every thread must get the real module's attribute, and the module must run exactly once
    per round (it counts its own executions).
    """
    names = [f"attr{i}" for i in range(8)]
    (tmp_path / "counted_mod.py").write_text(
        "import sys, time\n"
        "sys.modules['__main__'].executed.append(1)\n"
        "time.sleep(0.01)  # a slow import widens the window\n"
        + "".join(f"{n} = object()\n" for n in names)
    )
    out = run(
        """
        import random, sys, threading
        sys.path.insert(0, sys.argv[1])
        from agent.runtime.memory import defer_imports
        sys.setswitchinterval(1e-6)
        executed = []
        names = [f"attr{i}" for i in range(8)]
        for round_ in range(12):
            sys.modules.pop("counted_mod", None)
            executed.clear()
            assert defer_imports(("counted_mod",)) == ["counted_mod"]
            stub = sys.modules["counted_mod"]
            barrier = threading.Barrier(len(names))
            got = {}
            def read(attr):
                barrier.wait()
                got[attr] = getattr(stub, attr)
            order = names[:]
            random.Random(round_).shuffle(order)
            threads = [threading.Thread(target=read, args=(a,)) for a in order]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            real = sys.modules["counted_mod"]
            assert type(real).__name__ == "module", round_
            assert all(got[a] is getattr(real, a) for a in names), round_
            assert len(executed) == 1, (round_, len(executed))
        print("ok")
        """,
        str(tmp_path),
    )
    assert out == "ok"
