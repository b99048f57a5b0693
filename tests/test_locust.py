"""Locust collectors over real CSV/JSON outputs (2.47, 1.0.3) and the older eras' headers, checked against the raw text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from collectors import locust_csv, locust_failures, locust_json, registry
from collectors.base import CollectorError

DATA = Path(__file__).parent / "data"
CSV = DATA / "locust_csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _by_label(table) -> dict[str, dict]:
    return {r["label"]: r for r in table.to_pylist()}


def test_stats_csv_matches_raw_text() -> None:
    path = CSV / "v2.47-stats-aggregated-row.csv"
    assert registry.detect(path) is locust_csv
    table = locust_csv.read(path)["request_stats"]
    assert table.schema.metadata[b"percentile_method"] == b"locust-bucketed"
    rows = _by_label(table)
    for raw in _rows(path):
        label = raw["Name"] if raw["Name"] == "Aggregated" else f"{raw['Type']} {raw['Name']}"
        got = rows[label]
        assert got["count"] == int(raw["Request Count"]) and got["errors"] == int(raw["Failure Count"])
        assert got["mean_ms"] == float(raw["Average Response Time"])
        assert got["p95_ms"] == float(raw["95%"]) and got["p999_ms"] == float(raw["99.9%"])
        assert got["percentile_method"] == "locust-bucketed"
    assert rows["Aggregated"]["row_kind"] == "total" and rows["Aggregated"]["count"] == 2295
    assert rows["POST /login [POST]"]["row_kind"] == "sample"


def test_na_percentiles_are_null() -> None:
    table = locust_csv.read(CSV / "v2.47-aggregated-only_stats_history.csv")["request_stats"]
    first = table.to_pylist()[0]
    assert first["count"] == 0 and first["p50_ms"] is None and first["p999_ms"] is None


def test_full_history_windows_sum_to_final_stats_and_give_exact_means() -> None:
    history = locust_csv.read(CSV / "v2.47-full-history_stats_history.csv")
    stats = history["request_stats"]
    final = _by_label(locust_csv.read(CSV / "v2.47-stats-aggregated-row.csv")["request_stats"])
    sums = {}
    for r in stats.to_pylist():
        sums[r["label"]] = sums.get(r["label"], 0) + r["count"]
    assert sums == {label: row["count"] for label, row in final.items()}
    # Independent: window mean from the cumulative columns of two raw rows of `GET /`.
    raw = [r for r in _rows(CSV / "v2.47-full-history_stats_history.csv") if r["Name"] == "/"]
    a, b = raw[10], raw[11]
    n_a, n_b = int(a["Total Request Count"]), int(b["Total Request Count"])
    expected = (n_b * float(b["Total Average Response Time"]) - n_a * float(a["Total Average Response Time"])) / (n_b - n_a)
    window = [r for r in stats.to_pylist() if r["label"] == "GET /" and r["window_end"].timestamp() == int(b["Timestamp"])][0]
    assert window["count"] == n_b - n_a
    assert window["mean_ms"] == pytest.approx(expected, rel=1e-12)
    assert window["window_start"].timestamp() == int(a["Timestamp"])
    assert window["percentile_method"] == "locust-bucketed-current"


def test_history_load_rows() -> None:
    load = locust_csv.read(CSV / "v2.47-full-history_stats_history.csv")["load"].to_pylist()
    raw = [r for r in _rows(CSV / "v2.47-full-history_stats_history.csv") if r["Name"] == "Aggregated"]
    assert len(load) == len(raw) == 90
    assert [r["active_users"] for r in load] == [float(r["User Count"]) for r in raw]
    assert load[-1]["rps"] == 26.9 and load[-1]["errors_per_s"] == 2.2
    agg = locust_csv.read(CSV / "v2.47-aggregated-only_stats_history.csv")["request_stats"]
    assert set(agg["percentile_method"].to_pylist()) == {"locust-bucketed-cumulative"}


@pytest.mark.parametrize(
    "name",
    ["v1.0.3-quoted-none-type-99.999_stats.csv", "v0.14-hash-requests-99.999-no-percent_stats.csv", "v0.12-total-row_requests.csv"],
)
def test_every_era_gives_the_same_numbers(name: str) -> None:
    # The three files carry the same run (1.0.3 is real; 0.14 and 0.12 are written from their header text).
    rows = _by_label(locust_csv.read(CSV / name)["request_stats"])
    total = rows.get("Aggregated") or rows["Total"]
    assert total["row_kind"] == "total"
    assert (total["count"], total["errors"], total["mean_ms"], total["max_ms"]) == (124, 19, 37.0, 245.0)
    assert total["p95_ms"] == 210.0 and total["p90_ms"] == 170.0
    assert rows["GET /slow (recommendations)"]["count"] == 29


def test_old_era_distribution_and_history() -> None:
    dist = _by_label(locust_csv.read(CSV / "v0.12-total-row_distribution.csv")["request_stats"])
    assert dist["Total"]["row_kind"] == "total" and dist["Total"]["p80_ms"] == 87.0
    hist = locust_csv.read(CSV / "v0.14-none-type_stats_history.csv")
    counts = [r["count"] for r in hist["request_stats"].to_pylist()]
    assert counts == [0, 31, 93]
    assert hist["load"].num_rows == 3


def test_failures_and_exceptions() -> None:
    failures = locust_failures.read(DATA / "locust_failures/v2.47-first-last-seen_failures.csv")["failures"].to_pylist()
    quiz = [f for f in failures if f["label"] == "POST /quiz/1"][0]
    assert quiz["count"] == 22 and quiz["error"] == "CatchResponseError('quiz answer marked incorrect')"
    assert quiz["first_seen"].isoformat() == "2026-11-21T23:43:17+00:00"
    assert sum(f["count"] for f in failures) == 154  # the Aggregated failure count of the same run
    exceptions = locust_failures.read(DATA / "locust_failures/v2.47-multiline-traceback_exceptions.csv")["failures"].to_pylist()
    assert len(exceptions) == 1 and exceptions[0]["count"] == 5 and exceptions[0]["row_kind"] == "exception"
    assert 'assert resp.json()["ok"] is True' in exceptions[0]["traceback"]
    old = locust_failures.read(DATA / "locust_failures/v1.0.3-quoted-no-seen_failures.csv")["failures"].to_pylist()
    assert [f["count"] for f in old] == [14, 5] and old[0]["first_seen"] is None


def test_json_percentiles_follow_locusts_rule() -> None:
    path = DATA / "locust_json/v2.47-json-file-bucketed-histograms.json"
    assert registry.detect(path) is locust_json
    table = locust_json.read(path)["request_stats"]
    whole = {r["label"]: r for r in table.to_pylist() if r["window_start"] is None}
    entries = json.loads(path.read_text())
    merged = []
    for entry in entries:
        values = np.repeat([float(k) for k in entry["response_times"]], list(entry["response_times"].values()))
        values.sort()
        merged.append(values)
        row = whole[f"{entry['method']} {entry['name']}"]
        assert row["count"] == entry["num_requests"] == len(values)
        assert row["mean_ms"] == pytest.approx(entry["total_response_time"] / entry["num_requests"])
        for key, p in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            assert row[key] == values[min(int(len(values) * p), len(values) - 1)]
    everything = np.sort(np.concatenate(merged))
    assert whole["Aggregated"]["p95_ms"] == everything[int(len(everything) * 0.95)]
    per_second = [r for r in table.to_pylist() if r["window_start"] is not None and r["label"] == "GET /"]
    assert sum(r["count"] for r in per_second) == entries[0]["num_requests"]
    load = locust_json.read(path)["load"]
    assert pc.sum(load["rps"]).as_py() == sum(e["num_requests"] for e in entries)


def test_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x_stats.csv"
    bad.write_text((CSV / "v2.47-stats-aggregated-row.csv").read_text().replace(",522,0,", ",many,0,"))
    with pytest.raises(CollectorError):
        locust_csv.read(bad)
    other = tmp_path / "y.csv"
    other.write_text("a,b\n1,2\n")
    for module in (locust_csv, locust_failures, locust_json):
        assert not module.detect(other)
        with pytest.raises(CollectorError):
            module.read(other)
    broken = tmp_path / "z.json"
    broken.write_text((DATA / "locust_json/v2.47-json-file-bucketed-histograms.json").read_text()[:900])
    with pytest.raises(CollectorError):
        locust_json.read(broken)
