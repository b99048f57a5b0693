"""The Parquet store: layout, catalog, idempotency, atomicity, recovery and the notebook API."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import capacity
from capacity.store import Store, StoreError
from collectors import jmeter_jtl
from collectors.base import CollectorError


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_layout_is_hive_partitioned_and_readable_by_engines(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = capacity.open_store(tmp_path / "s", create=True)
    result = store.ingest(ramp20_jtl, "ramp-1", tags={"platform": "moodle"})
    assert result.rows == {"requests": 1806, "load": 91}
    parts = list((tmp_path / "s" / "requests").glob("run_id=ramp-1/*.parquet"))
    assert len(parts) == 1
    by_arrow = ds.dataset(tmp_path / "s" / "requests", partitioning="hive").to_table()
    assert by_arrow.num_rows == 1806 and set(by_arrow.column("run_id").to_pylist()) == {"ramp-1"}
    by_duckdb = duckdb.sql(f"SELECT count(*), min(run_id) FROM read_parquet('{tmp_path}/s/requests/*/*.parquet', hive_partitioning=true)").fetchall()[0]
    assert by_duckdb == (1806, "ramp-1")
    # zstd-compressed, and the run id lives in the path only
    meta = pq.ParquetFile(parts[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "run_id" not in pq.read_schema(parts[0]).names


def test_catalog_records_provenance(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.ingest(ramp20_jtl, "r", tags={"platform": "moodle", "users": "20"}, host="gen-1", tz="Europe/Paris")
    (run,) = store.runs()
    assert run["run"] == "r" and run["tags"] == {"platform": "moodle", "users": "20"}
    assert run["hosts"] == [{"name": "gen-1", "cpu_count": None, "memory_bytes": None, "instance_type": None}]
    (entry,) = run["files"]
    import hashlib
    assert entry["sha256"] == hashlib.sha256(ramp20_jtl.read_bytes()).hexdigest()
    assert entry["collector"] == "jmeter_jtl" and entry["rows"] == {"requests": 1806, "load": 91} and entry["tz"] == "Europe/Paris"
    raw = pd.read_csv(ramp20_jtl)
    assert run["start"] == pd.Timestamp(raw.timeStamp.min(), unit="ms", tz="UTC").isoformat(timespec="milliseconds")
    assert run["end"] == pd.Timestamp(raw.timeStamp.max(), unit="ms", tz="UTC").isoformat(timespec="milliseconds")
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert catalog["runs"]["r"]["files"][0]["parts"]["requests"].startswith("requests/run_id=r/")
    store.set_host("r", "web-1", cpu_count=2, memory_bytes=8 << 30, instance_type="t3.large")
    assert {h["name"]: h["cpu_count"] for h in store.run("r")["hosts"]} == {"gen-1": None, "web-1": 2}


def test_reingesting_the_same_file_is_a_noop(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.ingest(ramp20_jtl, "r")
    before = _snapshot(tmp_path)
    again = store.ingest(ramp20_jtl, "r")
    assert again.skipped and "already ingested" in again.note
    assert _snapshot(tmp_path) == before
    # the same file into another run is a new file of that run
    store.ingest(ramp20_jtl, "other")
    assert store.table("requests").num_rows == 2 * 1806


def test_changed_file_with_same_name_is_a_new_file(tmp_path: Path, ramp20_jtl: Path) -> None:
    copy = tmp_path / "results.jtl"
    copy.write_bytes(ramp20_jtl.read_bytes())
    store = Store.open(tmp_path / "s", create=True)
    store.ingest(copy, "r")
    lines = ramp20_jtl.read_text().splitlines(keepends=True)
    copy.write_text("".join(lines[:-10]))
    second = store.ingest(copy, "r")
    assert not second.skipped and "same name" in second.note
    assert [f["rows"]["requests"] for f in store.run("r")["files"]] == [1806, 1796]


def test_bad_input_midway_leaves_the_store_unchanged(tmp_path: Path, ramp20_jtl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path / "s", create=True)
    store.ingest(ramp20_jtl, "r")
    before = _snapshot(tmp_path / "s")
    lines = ramp20_jtl.read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.jtl"
    lines[1500] = "1795303385110,46,01 Home,200,OK\n"  # a short row deep in the file
    broken.write_text("".join(lines))
    monkeypatch.setattr(jmeter_jtl, "BLOCK_SIZE", 16 << 10)  # several batches, so some were written first
    with pytest.raises(CollectorError) as err:
        store.ingest(broken, "r")
    assert err.value.path == str(broken) and err.value.line == 1501
    assert _snapshot(tmp_path / "s") == before


def test_exception_mid_write_leaves_the_store_unchanged(tmp_path: Path, steps_jtl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path / "s", create=True)
    store.ingest(steps_jtl, "steady")
    before = _snapshot(tmp_path / "s")
    monkeypatch.setattr(jmeter_jtl, "BLOCK_SIZE", 64 << 10)
    calls = {"n": 0}
    real_write = pq.ParquetWriter.write_table

    def flaky(self: pq.ParquetWriter, table: pa.Table, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (simulated)")
        real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", flaky)
    with pytest.raises(OSError, match="simulated"):
        store.ingest(steps_jtl, "new-run")
    assert calls["n"] == 4
    assert _snapshot(tmp_path / "s") == before
    assert [r["run"] for r in store.runs()] == ["steady"]


def test_recovery_removes_files_the_catalog_does_not_record(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.ingest(ramp20_jtl, "r")
    part = next((tmp_path / "requests" / "run_id=r").glob("*.parquet"))
    orphan_dir = tmp_path / "requests" / "run_id=ghost"
    orphan_dir.mkdir()
    orphan = orphan_dir / "deadbeef.parquet"
    orphan.write_bytes(part.read_bytes())  # renamed into place, then the process died before the catalog
    partial = part.parent / "_tmp-123.partial"
    partial.write_bytes(b"PAR1 half")
    with store.locked():
        pass
    assert not orphan.exists() and not orphan_dir.exists() and not partial.exists() and part.exists()
    assert ds.dataset(tmp_path / "requests", partitioning="hive").to_table().num_rows == 1806


def test_writers_are_serialised_by_the_lock(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    order: list[str] = []

    def hold() -> None:
        with store.locked():
            order.append("first in")
            time.sleep(0.5)
            order.append("first out")

    worker = threading.Thread(target=hold)
    worker.start()
    time.sleep(0.1)
    with Store.open(tmp_path).locked():
        order.append("second in")
    worker.join()
    assert order == ["first in", "first out", "second in"]


def test_notebook_api_tables_and_sql(tmp_path: Path, ramp20_jtl: Path, steps_jtl: Path) -> None:
    store = capacity.open_store(tmp_path, create=True)
    store.ingest(ramp20_jtl, "a")
    store.ingest(steps_jtl, "b")
    assert [r["run"] for r in store.runs()] == ["a", "b"]
    assert store.table("requests", ["b"]).num_rows == 16691
    frame = store.df("requests", ["a"], columns=["label", "elapsed_ms", "run_id"])
    assert list(frame.columns) == ["label", "elapsed_ms", "run_id"] and len(frame) == 1806
    counts = store.sql("SELECT run_id, count(*) AS n FROM requests GROUP BY run_id ORDER BY run_id")
    assert counts.to_dict("records") == [{"run_id": "a", "n": 1806}, {"run_id": "b", "n": 16691}]
    empty = store.sql("SELECT count(*) AS n FROM host_metrics")
    assert int(empty.n[0]) == 0
    raw = pd.read_csv(steps_jtl)
    p95 = store.sql("SELECT quantile_cont(elapsed_ms, 0.95) AS p FROM requests WHERE run_id = 'b'").p[0]
    assert p95 == pytest.approx(np.percentile(raw.elapsed, 95))
    with pytest.raises(StoreError, match="no run 'zzz'"):
        store.table("requests", ["zzz"])


def test_invalid_run_ids_and_missing_store(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    for bad in ("../escape", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(StoreError, match="invalid run id"):
            store.ingest(ramp20_jtl, bad)
    with pytest.raises(StoreError, match="no store"):
        Store.open(tmp_path / "nothing")
    (tmp_path / "s" / "catalog.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable catalog"):
        Store.open(tmp_path / "s").runs()


def test_verify_reports_changed_missing_and_unrecorded_files(tmp_path: Path, ramp20_jtl: Path, steps_jtl: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.ingest(ramp20_jtl, "a")
    store.ingest(steps_jtl, "b")
    assert store.verify() == []
    part_a = next((tmp_path / "requests" / "run_id=a").glob("*.parquet"))
    part_b = next((tmp_path / "requests" / "run_id=b").glob("*.parquet"))
    pq.write_table(pq.read_table(part_a).slice(0, 100), part_a)  # tampered: fewer rows
    part_b.unlink()
    stray = tmp_path / "requests" / "run_id=a" / "stray.parquet"
    stray.write_bytes(b"x")
    problems = store.verify()
    assert any("run a" in p and "100 rows, catalog says 1806" in p for p in problems)
    assert any("run b" in p and "data file missing" in p for p in problems)
    assert any("stray.parquet" in p and "not recorded" in p for p in problems)
    assert all("run b" not in p for p in store.verify("a"))
