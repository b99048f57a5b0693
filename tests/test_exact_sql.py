"""The histogram SQL of `capacity.analysis.exact_sql` gives the statistics a full sort gives.

Checked against numpy (linear interpolation, its default) and the nearest-rank definition on
random groups with repeated values, float values, missing values and failures, and against
DuckDB's own `quantile_disc`.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from capacity.analysis.exact_sql import PERCENTILES, histogram_sql, merged_sql, stats_sql


def frame(rng: np.random.Generator, n: int, floats: bool) -> pa.Table:
    values = rng.gamma(2.0, 80.0, n) if floats else rng.integers(0, int(rng.integers(1, 3000)), n).astype(float)
    missing = rng.random(n) < 0.03
    return pa.table({
        "g": rng.integers(0, 4, n),
        "elapsed_ms": pa.array(values, mask=missing),
        "success": rng.random(n) > 0.2,
    })


@pytest.mark.parametrize("floats", [False, True])
def test_statistics_equal_a_full_sort(floats):
    rng = np.random.default_rng(7 if floats else 3)
    con = duckdb.connect()
    for _ in range(40):
        t = frame(rng, int(rng.integers(1, 2500)), floats)
        con.register("t", t)
        histogram = "(" + histogram_sql(["g"], "t") + ")"
        got = con.execute(stats_sql(histogram, ["g"]) + " ORDER BY g").fetchall()
        nearest = {r[0]: r[1:] for r in con.execute(
            f"SELECT g, {', '.join(PERCENTILES)} FROM ({stats_sql(histogram, ['g'], 'nearest')})"
        ).fetchall()}
        disc = dict(con.execute("SELECT g, quantile_disc(elapsed_ms, [0.5, 0.9, 0.95, 0.99, 0.999]) FROM t GROUP BY g").fetchall())
        g = t["g"].to_numpy()
        v = t["elapsed_ms"].to_numpy(zero_copy_only=False)
        ok = t["success"].to_numpy(zero_copy_only=False)
        for row in got:
            key, count, errors, _, mean, std, low, *rest = row
            pcts, high = rest[:-1], rest[-1]
            inside = g == key
            values = v[inside][~np.isnan(v[inside])]
            assert count == inside.sum() and errors == (~ok[inside]).sum()
            if values.size == 0:
                assert mean is None and all(p is None for p in pcts)
                continue
            assert mean == pytest.approx(values.mean(), rel=1e-12) and std == pytest.approx(values.std(), rel=1e-9, abs=1e-9)
            assert (low, high) == (values.min(), values.max())
            ordered = np.sort(values)
            for (name, q), p in zip(PERCENTILES.items(), pcts, strict=True):
                assert p == pytest.approx(np.percentile(values, 100 * q), rel=1e-12, abs=1e-12), name
                rank = max(0, math.ceil(q * values.size) - 1)
                assert nearest[key][list(PERCENTILES).index(name)] == ordered[rank] == disc[key][list(PERCENTILES).index(name)]


def test_merged_histogram_gives_the_overall_line():
    rng = np.random.default_rng(11)
    t = frame(rng, 5000, False)
    con = duckdb.connect()
    con.register("t", t)
    con.execute(f"CREATE TABLE h AS {histogram_sql(['g'], 't')}")
    overall = con.execute(stats_sql(merged_sql("h", [], "g < 3"), [])).fetchone()
    direct = con.execute(stats_sql("(" + histogram_sql([], "(SELECT * FROM t WHERE g < 3)") + ")", [])).fetchone()
    assert overall == direct
    values = t.filter(pa.compute.less(t["g"], 3))["elapsed_ms"].drop_null().to_numpy()
    assert overall[6] == pytest.approx(np.percentile(values, 50))  # count, errors, error_pct, mean, std, min, p50


def test_apdex_from_the_histogram():
    t = pa.table({"elapsed_ms": [50.0, 100.0, 150.0, 400.0, 401.0, 90.0], "success": [True, True, True, True, True, False]})
    con = duckdb.connect()
    con.register("t", t)
    histogram = "(" + histogram_sql([], "t") + ")"
    row = con.execute(f"SELECT apdex FROM ({stats_sql(histogram, [], apdex_t_ms=100)})").fetchone()
    # satisfied: 50, 100; tolerating: 150, 400; frustrated: 401 and the failed 90
    assert row[0] == pytest.approx((2 + 0.5 * 2) / 6)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="nearest"):
        stats_sql("h", [], "median-of-medians")
