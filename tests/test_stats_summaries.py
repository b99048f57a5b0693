"""`capacity stats` on runs that hold only the load tools' own summaries (Locust, JMeter Summary/Aggregate, Tsung)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA


def stats_json(tmp_path: Path, *files: Path) -> dict:
    store = tmp_path / "store"
    for f in files:
        done = subprocess.run([sys.executable, "-m", "capacity", "ingest", str(f), "--run", "r", "--store", str(store)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    out = subprocess.run([sys.executable, "-m", "capacity", "stats", "r", "--json", "--store", str(store)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_locust_final_stats_are_the_tools_own_figures(tmp_path: Path) -> None:
    path = DATA / "locust_csv" / "v2.47-stats-aggregated-row.csv"
    result = stats_json(tmp_path, path, DATA / "locust_csv" / "v2.47-full-history_stats_history.csv")
    raw = pd.read_csv(path, keep_default_na=False)
    assert result["basis"] == "summaries" and result["percentile_method"] == "locust-bucketed"
    rows = raw[raw["Name"] != "Aggregated"]
    by_label = {s["label"]: s for s in result["labels"]}
    assert len(by_label) == len(rows)
    for _, r in rows.iterrows():
        s = next(v for k, v in by_label.items() if k.endswith(r["Name"]) or r["Name"] in k)
        assert s["count"] == r["Request Count"] and s["errors"] == r["Failure Count"]
        assert s["mean_ms"] == pytest.approx(r["Average Response Time"])
        assert s["p95_ms"] == pytest.approx(float(r["95%"])) and s["max_ms"] == pytest.approx(r["Max Response Time"])
    total = raw[raw["Name"] == "Aggregated"].iloc[0]
    assert result["overall"]["count"] == total["Request Count"]
    assert result["overall"]["throughput_rps"] == pytest.approx(total["Requests/s"])
    # the history file's windows are not mixed into the whole-run figures
    assert sum(s["count"] for s in result["labels"]) == total["Request Count"]


@pytest.mark.parametrize(("name", "count", "mean_ms", "rps"), [("summary-report-openedx-native.csv", 8174, 24316, 4.01),
                                                               ("summary-report-openedx-devstack.csv", 1030, 33315, 0.28)])
def test_jmeter_summary_reports_give_back_the_seed_numbers(tmp_path: Path, name: str, count: int, mean_ms: float, rps: float) -> None:
    result = stats_json(tmp_path, DATA / "jmeter_summary" / name)
    assert result["percentile_method"] == "unavailable"
    overall = result["overall"]
    assert overall["count"] == count and overall["mean_ms"] == pytest.approx(mean_ms)
    assert round(overall["throughput_rps"], 2) == rps
    assert sum(s["count"] for s in result["labels"]) == count


def test_jmeter_aggregate_report_percentiles_match_the_raw_run(tmp_path: Path, ramp20_jtl: Path) -> None:
    result = stats_json(tmp_path, DATA / "jmeter_summary" / "aggregate-report-from-ramp20.csv")
    raw = pd.read_csv(ramp20_jtl, keep_default_na=False)
    home = next(s for s in result["labels"] if s["label"] == "01 Home")
    elapsed = raw[raw.label == "01 Home"].elapsed.to_numpy()
    assert home["count"] == len(elapsed)
    # JMeter's Aggregate Report writes whole milliseconds; its percentile is a nearest rank
    assert home["p90_ms"] == np.percentile(elapsed, 90, method="nearest") or abs(home["p90_ms"] - np.percentile(elapsed, 90)) <= 1


def test_tsung_whole_run_rows_match_the_dump_of_the_same_run(tmp_path: Path) -> None:
    # the corpus run's tsung.log and tsung.dump (tests/data READMEs): Tsung's `request` total against every dumped request
    result = stats_json(tmp_path, DATA / "tsung_log" / "duplicate-match-key-late-404-osmon.log")
    frame = pd.read_csv(DATA / "tsung_dump" / "variable-decimals-match-column-404-503.dump", sep=";")
    overall = result["overall"]
    assert overall["count"] == len(frame) == 4896
    assert overall["mean_ms"] == pytest.approx(frame["duration"].mean(), abs=0.5)
    assert overall["max_ms"] == pytest.approx(frame["duration"].max(), abs=0.5)
    assert {s["label"] for s in result["labels"]} >= {"connect", "page", "session", "tr_home", "tr_login", "tr_open_course"}
