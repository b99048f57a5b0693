"""The `capacity` command line end to end, in a temporary store, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity import __version__

STAT_KEYS = ["label", "kind", "count", "errors", "error_pct", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "throughput_rps"]


def capacity(*args: str, store: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "CAPACITY_STORE"} | (env or {})
    extra = ["--store", str(store)] if store else []
    return subprocess.run([sys.executable, "-m", "capacity", *args, *extra], capture_output=True, text=True, env=full_env, timeout=120)


def test_version() -> None:
    out = capacity("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_ingest_runs_and_stats_end_to_end(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = tmp_path / "store"
    out = capacity("ingest", str(ramp20_jtl), "--run", "ramp", "--tag", "platform=moodle", "--tag", "users=20", "--host", "gen1", store=store)
    assert out.returncode == 0, out.stderr
    assert "jmeter_jtl" in out.stdout and "requests=1,806" in out.stdout and " s" in out.stdout
    again = capacity("ingest", str(ramp20_jtl), "--run", "ramp", store=store)
    assert again.returncode == 0 and "unchanged" in again.stdout

    runs = json.loads(capacity("runs", "--json", store=store).stdout)
    assert len(runs) == 1
    run = runs[0]
    assert {"run", "tags", "hosts", "start", "end", "files"} <= set(run)
    assert run["run"] == "ramp" and run["tags"] == {"platform": "moodle", "users": "20"}
    assert run["files"][0]["rows"] == {"requests": 1806, "load": 91}
    assert {"path", "sha256", "collector", "rows"} <= set(run["files"][0])

    result = capacity("stats", "ramp", "--json", store=store)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["run"] == "ramp" and stats["percentile_method"] == "linear"
    raw = pd.read_csv(ramp20_jtl, keep_default_na=False)
    is_tx = raw.responseMessage.str.startswith("Number of samples in transaction")
    samples = raw[~is_tx]
    span_s = ((samples.timeStamp + samples.elapsed).max() - samples.timeStamp.min()) / 1000
    by_label = {(s["label"], s["kind"]): s for s in stats["labels"]}
    assert len(by_label) == raw.label.nunique()
    for (label, kind), s in by_label.items():
        assert set(STAT_KEYS) <= set(s)
        rows = raw[(raw.label == label) & (is_tx if kind == "transaction" else ~is_tx)]
        elapsed = rows.elapsed.to_numpy()
        assert s["count"] == len(rows)
        assert s["errors"] == int((~rows.success).sum())
        assert s["mean_ms"] == pytest.approx(elapsed.mean())
        for key, q in (("p50_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99)):
            assert s[key] == pytest.approx(np.percentile(elapsed, q)), (label, key)
        assert s["max_ms"] == elapsed.max()
        assert s["throughput_rps"] == pytest.approx(len(rows) / span_s)
    overall = stats["overall"]
    assert overall["count"] == len(samples) == 1642
    assert overall["p95_ms"] == pytest.approx(np.percentile(samples.elapsed, 95))
    assert overall["error_pct"] == pytest.approx(100 * (~samples.success).sum() / len(samples))

    nearest = json.loads(capacity("stats", "ramp", "--json", "--percentile-method", "nearest", store=store).stdout)
    assert nearest["percentile_method"] == "nearest"
    assert nearest["overall"]["p95_ms"] in set(samples.elapsed)

    table = capacity("stats", "ramp", store=store)
    assert table.returncode == 0 and "07 Quiz submit" in table.stdout and "linear" in table.stdout


def test_store_from_environment(tmp_path: Path, ramp20_jtl: Path) -> None:
    env = {"CAPACITY_STORE": str(tmp_path / "envstore")}
    assert capacity("ingest", str(ramp20_jtl), "--run", "r", env=env).returncode == 0
    assert (tmp_path / "envstore" / "catalog.json").exists()
    assert json.loads(capacity("runs", "--json", env=env).stdout)[0]["run"] == "r"


def test_folder_ingest_skips_unknown_files(tmp_path: Path, ramp20_jtl: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.jtl").write_bytes(ramp20_jtl.read_bytes())
    (folder / "notes.txt").write_text("what we ran\n")
    out = capacity("ingest", str(folder), "--run", "r", store=tmp_path / "s")
    assert out.returncode == 0, out.stderr
    assert "notes.txt: skipped" in out.stdout and "a.jtl: ingested" in out.stdout


def test_exit_codes_usage_and_bad_input(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = tmp_path / "s"
    assert capacity("ingest", str(ramp20_jtl), store=store).returncode == 2  # --run missing
    assert capacity("frobnicate").returncode == 2
    assert capacity("ingest", str(ramp20_jtl), "--run", "r", "--tag", "novalue", store=store).returncode == 2
    assert capacity("ingest", str(ramp20_jtl), "--run", "r", "--collector", "nope", store=store).returncode == 2

    garbage = tmp_path / "garbage.jtl"
    garbage.write_bytes(b"\x00\x01\x02 binary junk")
    bad = capacity("ingest", str(garbage), "--run", "r", store=store)
    assert bad.returncode == 3
    assert str(garbage) in bad.stderr and "Traceback" not in bad.stderr

    broken = tmp_path / "broken.jtl"
    lines = ramp20_jtl.read_text().splitlines(keepends=True)
    lines[40] = "1795303385110,forty,01 Home,200,OK,MOOC learners 1-1,text,true,8380,1,1,45\n"
    broken.write_text("".join(lines))
    out = capacity("ingest", str(broken), "--run", "r", store=store)
    assert out.returncode == 3 and "Traceback" not in out.stderr and str(broken) in out.stderr
    assert "nothing of this file was stored" in out.stderr

    assert capacity("stats", "missing-run", store=store).returncode == 3
    assert capacity("ingest", str(tmp_path / "nope.jtl"), "--run", "r", store=store).returncode == 3
    assert capacity("ingest", str(ramp20_jtl), "--run", "../up", store=store).returncode == 3
    assert capacity("ingest", str(ramp20_jtl), "--run", "r", "--tz", "Mars/Olympus", store=store).returncode == 3


def test_duckdb_memory_limit_is_configurable(tmp_path: Path, ramp20_jtl: Path) -> None:
    store = tmp_path / "s"
    assert capacity("ingest", str(ramp20_jtl), "--run", "r", store=store).returncode == 0
    ok = capacity("stats", "r", "--json", store=store, env={"CAPACITY_DUCKDB_MEMORY": "64MB"})
    assert ok.returncode == 0 and json.loads(ok.stdout)["overall"]["count"] == 1642
    bad = capacity("stats", "r", store=store, env={"CAPACITY_DUCKDB_MEMORY": "lots"})
    assert bad.returncode == 3 and "CAPACITY_DUCKDB_MEMORY" in bad.stderr and "Traceback" not in bad.stderr
