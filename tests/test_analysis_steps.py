"""Step detection and the step table, on the corpus step-load run and on synthetic runs with known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capacity.analysis.align import estimate_offset, steady_window, users_per_second
from capacity.analysis.steps import detect_steps, steps_for_run, steps_for_runs
from capacity.store import Store
from tests.test_analysis_helpers import STEP_JTL, step_run

# JMeter corpus MANIFEST (run d): allThreads, HTTP samples/s, mean ms, p90 ms, error % over 30 s windows.
MANIFEST_D = [(7, 45.0, 37.8, 119, 14.6), (12, 90.9, 36.6, 124, 14.7), (22, 167.8, 44.1, 152, 15.2), (42, 202.4, 122.0, 381, 20.9)]


@pytest.fixture(scope="module")
def d_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    assert STEP_JTL.is_file(), f"missing sample {STEP_JTL}"
    store = Store.open(tmp_path_factory.mktemp("store"), create=True)
    store.ingest(STEP_JTL, "d")
    return store


def test_corpus_step_run_gives_the_four_manifest_steps(d_store: Store) -> None:
    con = d_store.connect(["d"])
    table, notes = steps_for_run(con, "d", settle_s=0)
    assert list(table["users"]) == [7, 12, 22, 42]
    for (_, s), (_users, x, mean, p90, err) in zip(table.iterrows(), MANIFEST_D, strict=True):
        assert s["throughput_rps"] == pytest.approx(x, rel=0.03)
        assert s["mean_ms"] == pytest.approx(mean, rel=0.05)
        assert s["p90_ms"] == pytest.approx(p90, rel=0.05)
        assert s["error_pct"] == pytest.approx(err, abs=1.0)
        assert 27 <= s["duration_s"] <= 30
    assert table["cpu_pct"].isna().all() and notes["clock_offset_method"].startswith("not estimated")


def test_step_values_match_the_raw_file(d_store: Store) -> None:
    raw = pd.read_csv(STEP_JTL)
    raw = raw[raw["dataType"].notna()]  # HTTP samples only; transaction rows have an empty dataType
    con = d_store.connect(["d"])
    table, _ = steps_for_run(con, "d")
    s = table.iloc[3]
    lo, hi = s["start"].value // 10**6, s["end"].value // 10**6
    inside = raw[(raw["timeStamp"] >= lo) & (raw["timeStamp"] < hi)]
    assert s["requests"] == len(inside)
    assert s["mean_ms"] == pytest.approx(inside["elapsed"].mean())
    assert s["p95_ms"] == pytest.approx(np.percentile(inside["elapsed"], 95))
    assert s["error_pct"] == pytest.approx(100 * (~inside["success"]).mean())


def test_detect_steps_plateaus_and_ramp() -> None:
    idx = pd.date_range("2026-01-01", periods=100, freq="1s", tz="UTC")
    users = pd.Series(np.r_[np.linspace(0, 10, 5), [10] * 30, [11, 15], [20] * 40, [20, 21, 19], [20] * 10, [5] * 10], index=idx)
    steps = detect_steps(users, min_step_s=10, settle_s=0)
    assert [s.users for s in steps] == [10, 20, 5]
    assert steps[1].end - steps[1].start == pd.Timedelta(seconds=53)  # the 20-user plateau survives the 19/21 blip
    ramp = pd.Series(np.arange(1, 61, dtype=float), index=idx[:60])
    bins = detect_steps(ramp, min_step_s=10, ramp_bins=6)
    assert len(bins) == 6 and all(b.kind == "ramp" for b in bins)
    assert bins[0].users == pytest.approx(5.5) and bins[-1].users == pytest.approx(55.5)


def test_users_are_summed_over_generators_and_host_means_use_the_offset(tmp_path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    step_run(store, "syn", [10, 20, 40], 60, rps=[50, 100, 180], cpu=[20, 35, 65], mem=[1e9, 1.2e9, 1.6e9], mean_ms=[50, 55, 90],
             host_shift_s=7, generators=2)
    con = store.connect(["syn"])
    curve = users_per_second(con, "syn")
    assert set(curve.round().unique()) >= {10, 20, 40}
    table, notes = steps_for_run(con, "syn", clock_offset_s=7)
    assert list(table["users"]) == [10, 20, 40]
    assert table["cpu_pct"].to_numpy() == pytest.approx([20, 35, 65], abs=0.5)
    assert table["mem_used_bytes"].to_numpy() == pytest.approx([1e9, 1.2e9, 1.6e9], rel=0.01)
    auto, notes = steps_for_run(con, "syn")
    assert notes["clock_offset_s"] == pytest.approx(7, abs=1)
    assert auto["cpu_pct"].to_numpy() == pytest.approx([20, 35, 65], abs=1.5)
    unshifted, _ = steps_for_run(con, "syn", clock_offset_s=0)
    assert unshifted["cpu_pct"].iloc[1] > 35 + 1  # without the offset the step mixes in the next level (server clock 7 s behind)


def test_estimate_offset_recovers_a_known_lag() -> None:
    idx = pd.date_range("2026-01-01", periods=300, freq="1s", tz="UTC")
    load = pd.Series(np.repeat([10.0, 30, 60, 20, 50], 60), index=idx)
    server = pd.Series(load.to_numpy()[::5] * 1.2 + 3, index=idx[::5] - pd.Timedelta(seconds=12))
    off = estimate_offset(load, server)
    assert abs(off.seconds - 12) <= 2.5 and off.correlation > 0.95  # resolution: the 5 s sampling interval
    noise = pd.Series(np.random.default_rng(1).normal(size=60), index=idx[::5])
    assert estimate_offset(load, noise).seconds == 0.0


def test_steady_window_trims_warmup_and_cooldown() -> None:
    idx = pd.date_range("2026-01-01", periods=100, freq="1s", tz="UTC")
    users = pd.Series(np.r_[np.arange(1, 21), [20] * 70, np.arange(19, 9, -1)], index=idx, dtype=float)
    start, end = steady_window(users)
    assert start == idx[17] and end == idx[91]
    s2, e2 = steady_window(users, warmup_s=5, cooldown_s=5)
    assert s2 == idx[5] and e2 == idx[94]


def test_runs_at_fixed_users_give_one_step_each(tmp_path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    for i, (n, x) in enumerate(((10, 40.0), (30, 100.0))):
        step_run(store, f"u{n}", [n], 60, rps=[x], cpu=[10 + n], mem=[1e9], mean_ms=[40], seed=i)
        store.set_tags(f"u{n}", {"users": str(n)})
    table = steps_for_runs(store, ["u30", "u10"], clock_offset_s=0)
    assert list(table["users"]) == [10, 30] and list(table["run"]) == ["u10", "u30"]
    assert table["throughput_rps"].to_numpy() == pytest.approx([40, 100], rel=0.05)
    assert table["cpu_pct"].to_numpy() == pytest.approx([20, 40], abs=0.5)
