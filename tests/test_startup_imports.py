"""What a command loads at start-up, in a fresh interpreter: the start-up costs `docs/performance.md` counts on.

pandas and scipy are a second of imports, DuckDB a tenth: `stats` needs neither pandas nor scipy,
an ingest of a file DuckDB does not parse needs no DuckDB, and loading the collectors' registry
loads no pandas. Every command runs numpy's OpenBLAS on one thread unless the user chose otherwise, and the
`capacity` executable spares its objects from the garbage collector's passes at exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in-process in a fresh interpreter, then reports which modules it loaded.
PROBE = """
import json, os, sys
from capacity.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    loaded = {m: m in sys.modules for m in ("pandas", "scipy", "duckdb")}
    print("PROBE" + json.dumps({"loaded": loaded, "openblas": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def probe(*args: str, env: dict[str, str] | None = None) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | (env or {})
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out[out.rindex("PROBE") + len("PROBE"):])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup") / "store"
    probe("ingest", str(DATA / "jmeter_jtl" / "header-2.13-default.jtl"), "--run", "r1", "--store", str(root))
    return root


def test_stats_loads_neither_pandas_nor_scipy(store: Path) -> None:
    got = probe("stats", "r1", "--store", str(store))
    assert got["loaded"] == {"pandas": False, "scipy": False, "duckdb": True}


def test_an_xml_ingest_loads_no_duckdb(tmp_path: Path) -> None:
    got = probe("ingest", str(DATA / "jmeter_xml" / "xml-subresults-assertions.jtl"), "--run", "x", "--store", str(tmp_path / "s"))
    assert got["loaded"]["duckdb"] is False


def test_the_registry_loads_no_pandas() -> None:
    code = "import sys, collectors.registry; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "False"


def test_openblas_runs_on_one_thread_unless_the_user_chose(store: Path) -> None:
    assert probe("runs", "--store", str(store))["openblas"] == "1"
    assert probe("runs", "--store", str(store), env={"OPENBLAS_NUM_THREADS": "2"})["openblas"] == "2"


# Reports, when the interpreter exits, how many objects the cyclic collector no longer traverses and how many it still does.
FROZEN_AT_EXIT = """
import atexit, gc, os, sys
atexit.register(lambda: os.write(2, b"FROZEN %d %d\\n" % (gc.get_freeze_count(), len(gc.get_objects()))))
{call}
"""


def frozen_at_exit(call: str, *args: str) -> tuple[int, int, str]:
    done = subprocess.run([sys.executable, "-c", FROZEN_AT_EXIT.format(call=call), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    frozen, tracked = done.stderr.rsplit("FROZEN ", 1)[1].split()[:2]
    return int(frozen), int(tracked), done.stdout


def test_the_executable_spares_its_modules_from_the_collector_at_exit(store: Path) -> None:
    # `python -m capacity` and the `capacity` script go through `run`: everything, including what the command
    # imported and made after its module was loaded (DuckDB, the results), is frozen before exit.
    frozen, tracked, out = frozen_at_exit("from capacity.cli import run; run()", "stats", "r1", "--store", str(store), "--json")
    assert frozen > 10_000
    assert tracked < 100
    assert json.loads(out)["run"] == "r1"


def test_a_caller_that_lives_on_keeps_its_collector(store: Path) -> None:
    # a notebook or a test calling `main` keeps collecting everything: freezing would keep its garbage
    frozen, tracked, _ = frozen_at_exit("from capacity.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass",
                                        "stats", "r1", "--store", str(store))
    assert frozen == 0
    assert tracked > 10_000
