"""Steps of a run that has only the load tool's windowed summaries (Locust `--csv-full-history`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from capacity.analysis.steps import steps_for_run
from capacity.store import Store
from tests.conftest import DATA

HISTORY = DATA / "locust_csv" / "v2.47-full-history_stats_history.csv"


def test_locust_history_gives_the_plateau_with_counts_from_the_raw_totals(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.ingest(HISTORY, "locust")
    con = store.connect(["locust"])
    try:
        frame, _ = steps_for_run(con, "locust")
    finally:
        con.close()
    assert list(frame["users"]) == [50]
    step = frame.iloc[0]
    raw = pd.read_csv(HISTORY, keep_default_na=False)
    agg = raw[raw["Name"] == "Aggregated"].set_index("Timestamp")
    start = int(pd.Timestamp(step["start"]).timestamp())
    end = int(pd.Timestamp(step["end"]).timestamp())
    # a window (t-1, t] inside [start, end]: requests = the cumulative total at the last t <= end minus the total at start
    last, first = agg.loc[:end].iloc[-1], agg.loc[start]
    expected = last["Total Request Count"] - first["Total Request Count"]
    failures = last["Total Failure Count"] - first["Total Failure Count"]
    assert step["requests"] == expected
    assert step["error_pct"] == pytest.approx(100 * failures / expected)
    sum_end = last["Total Request Count"] * last["Total Average Response Time"]
    sum_start = first["Total Request Count"] * first["Total Average Response Time"]
    assert step["mean_ms"] == pytest.approx((sum_end - sum_start) / expected, rel=1e-6)
    assert pd.isna(step["p95_ms"]), "percentiles cannot come from summaries"
