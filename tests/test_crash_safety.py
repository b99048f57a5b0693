"""Crash-safety of the store: `capacity ingest` killed with SIGKILL at random moments.

`make test` runs a reduced campaign; `make torture` sets CAPACITY_TORTURE=1 for the full one
(at least 50 kills). The figures are printed for docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from benchmarks.generate import jtl_csv
from capacity.store import Store

FULL = os.environ.get("CAPACITY_TORTURE") == "1"
KILLS = 60 if FULL else 12
ROWS_PER_FILE = 150_000


def _ingest(folder: Path, store: Path, run: str = "r") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "capacity", "ingest", str(folder), "--run", run, "--store", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _visible_rows(store: Path) -> int:
    base = store / "requests"
    if not base.exists():
        return 0
    return ds.dataset(base, format="parquet", partitioning="hive").count_rows()


def _check_consistent(store_dir: Path) -> int:
    """After recovery: catalog complete, files match it, nothing else visible. Returns the rows recorded."""
    if not (store_dir / "catalog.json").exists():
        assert _visible_rows(store_dir) == 0
        return 0
    store = Store.open(store_dir)
    with store.locked():
        pass
    assert store.verify() == []
    recorded = 0
    for run in store.runs():
        shas = [f["sha256"] for f in run["files"]]
        assert len(shas) == len(set(shas)), "a file was recorded twice"
        recorded += sum(f["rows"].get("requests", 0) for f in run["files"])
    assert _visible_rows(store_dir) == recorded
    return recorded


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for i in range(3):
        jtl_csv(folder / f"gen{i}.jtl", ROWS_PER_FILE, random_seed=0.1 * (i + 1))
    return folder


def test_sigkill_at_random_moments_never_corrupts_the_store(tmp_path: Path, inputs: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(20261122)
    start = time.perf_counter()
    probe = _ingest(inputs, tmp_path / "probe")
    assert probe.wait(timeout=300) == 0
    full_run = time.perf_counter() - start
    outcomes = {"killed": 0, "finished before kill": 0}
    for _ in range(KILLS):
        proc = _ingest(inputs, store)
        time.sleep(rng.uniform(0.0, 0.8 * full_run))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            outcomes["killed"] += 1
        else:
            outcomes["finished before kill"] += 1
        proc.wait(timeout=60)
        _check_consistent(store)
        if proc.returncode == 0:  # complete: start the next attempt from an empty store so it has work to interrupt
            shutil.rmtree(store)
    final = _ingest(inputs, store)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode() if final.stderr else ""
    assert _check_consistent(store) == 3 * ROWS_PER_FILE
    (run,) = Store.open(store).runs()
    assert sorted(Path(f["path"]).name for f in run["files"]) == ["gen0.jtl", "gen1.jtl", "gen2.jtl"]
    print(f"\ncrash-safety: {KILLS} SIGKILL attempts, {outcomes['killed']} kills mid-ingest, "
          f"{outcomes['finished before kill']} finished first; store consistent after every one; "
          f"final re-run complete with no duplicates ({3 * ROWS_PER_FILE:,} rows)")
    assert outcomes["killed"] >= KILLS // 2


def test_concurrent_ingests_are_serialised(tmp_path: Path, inputs: Path) -> None:
    store = tmp_path / "store"
    files = sorted(inputs.glob("*.jtl"))
    procs = [subprocess.Popen([sys.executable, "-m", "capacity", "ingest", str(f), "--run", "shared", "--store", str(store)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode() if p.stderr else ""
    assert _check_consistent(store) == len(files) * ROWS_PER_FILE
    assert len(Store.open(store).run("shared")["files"]) == len(files)
