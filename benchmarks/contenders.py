"""What users would pick instead of `capacity`, each answering the same question about a CSV JTL.

    python benchmarks/contenders.py NAME JTL [PARQUET]

The question: per label, count, errors, mean, p50/p90/p95/p99 (linear interpolation between closest
ranks, numpy's default), max and throughput (count over the span from the first start to the last
end). Each contender prints one JSON object {label: {...}} on stdout, so the bench can check that
the exact ones agree. This file is run by the bench venv's Python too (polars, Taurus), so it
imports nothing from the project and each library only inside its own contender.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
# The JMeter 5.x default columns (the generated JTL), typed as a user of each library would.
INT_COLUMNS = ("timeStamp", "elapsed", "bytes", "sentBytes", "grpThreads", "allThreads", "Latency", "IdleTime", "Connect")

Result = dict[str, dict[str, Any]]


def _duckdb_sql(source: str) -> str:
    quantiles = ", ".join(f"quantile_cont(elapsed, {q}) AS {name}" for name, q in QUANTILES.items())
    return (
        f"WITH t AS (SELECT label, elapsed, success, timeStamp FROM {source}), "
        "s AS (SELECT (max(timeStamp + elapsed) - min(timeStamp)) / 1000.0 AS span FROM t) "
        f"SELECT label, count(*) AS count, count(*) FILTER (WHERE NOT success) AS errors, avg(elapsed) AS mean, {quantiles}, "
        "max(elapsed) AS max, count(*) / any_value(s.span) AS throughput FROM t, s GROUP BY label ORDER BY label"
    )


def _duckdb(con: Any, source: str) -> Result:
    rows = con.execute(_duckdb_sql(source)).fetchall()
    keys = ["count", "errors", "mean", *QUANTILES, "max", "throughput"]
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def duckdb_csv(jtl: Path, _: Path | None) -> Result:
    """DuckDB straight on the CSV (the aggregate without storing anything)."""
    return _duckdb(_connect(), f"read_csv('{jtl}')")


def duckdb_to_parquet(jtl: Path, parquet: Path | None) -> Result:
    """DuckDB CSV -> Parquet (zstd), every column kept: what a user would store."""
    assert parquet is not None
    _connect().execute(f"COPY (SELECT * FROM read_csv('{jtl}')) TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
    return {}


def duckdb_parquet(_: Path, parquet: Path | None) -> Result:
    """DuckDB's query on that Parquet file."""
    return _duckdb(_connect(), f"read_parquet('{parquet}')")


def polars_streaming(jtl: Path, _: Path | None) -> Result:
    """polars lazy scan, aggregated with the streaming engine."""
    import polars as pl

    frame = pl.scan_csv(jtl, schema_overrides={c: pl.Int64 for c in INT_COLUMNS})
    span = (pl.col("timeStamp") + pl.col("elapsed")).max() - pl.col("timeStamp").min()
    whole = frame.select(span.alias("span")).collect(engine="streaming")["span"][0] / 1000.0
    out = (
        frame.group_by("label")
        .agg(
            pl.len().alias("count"),
            (~pl.col("success")).sum().alias("errors"),
            pl.col("elapsed").mean().alias("mean"),
            *[pl.col("elapsed").quantile(q, interpolation="linear").alias(n) for n, q in QUANTILES.items()],
            pl.col("elapsed").max().alias("max"),
        )
        .collect(engine="streaming")
    )
    return {r["label"]: {**{k: v for k, v in r.items() if k != "label"}, "throughput": r["count"] / whole} for r in out.to_dicts()}


def pandas_naive(jtl: Path, _: Path | None) -> Result:
    """pandas read_csv of the whole file, then groupby().quantile(): the notebook way."""
    import pandas as pd

    df = pd.read_csv(jtl)
    span = ((df["timeStamp"] + df["elapsed"]).max() - df["timeStamp"].min()) / 1000.0
    g = df.groupby("label")["elapsed"]
    out = pd.DataFrame({"count": g.size(), "errors": (~df["success"]).groupby(df["label"]).sum(), "mean": g.mean(), "max": g.max()})
    for name, q in QUANTILES.items():
        out[name] = g.quantile(q)
    out["throughput"] = out["count"] / span
    return {label: {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for label, row in out.to_dict("index").items()}


def pyarrow_read(jtl: Path, _: Path | None) -> Result:
    """pyarrow read_csv of every column into memory (multi-threaded), counts and means per label (no exact percentiles)."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(jtl)
    grouped = table.group_by("label").aggregate([("elapsed", "count"), ("elapsed", "mean"), ("elapsed", "max")])
    return {r["label"]: {"count": r["elapsed_count"], "mean": r["elapsed_mean"], "max": r["elapsed_max"]} for r in grouped.to_pylist()}


def taurus(jtl: Path, _: Path | None) -> Result:
    """Taurus (bzt) as it reads any JTL: its JTLReader under its ConsolidatingAggregator.

    Taurus never uses the reader alone: whether it ran JMeter itself or loads a finished file
    (`external-results-loader`), the reader is an underling of the aggregator, which the engine
    asks for new data once per check interval (`check`) and drains at the end (`post_process`);
    the final statistics are the cumulative KPI sets of the last datapoint its listeners see.
    This drives it the same way, without the engine's sleep between checks.
    """
    import logging

    from bzt.engine import Engine
    from bzt.modules.aggregator import AggregatorListener, ConsolidatingAggregator, DataPoint, KPISet
    from bzt.modules.jmeter import JTLReader
    from bzt.utils import BetterDict

    class Last(AggregatorListener):
        point = None

        def aggregated_second(self, data: Any) -> None:
            self.point = data

    log = logging.getLogger("bench")
    aggregator = ConsolidatingAggregator()
    aggregator.engine = Engine(log)
    aggregator.settings = BetterDict.from_dict({"percentiles": [q * 100 for q in QUANTILES.values()]})
    aggregator.prepare()
    aggregator.add_underling(JTLReader(str(jtl), log))
    last = Last()
    aggregator.add_listener(last)
    aggregator.startup()
    # Each check reads for up to one check interval; the file is finished when a check brings nothing.
    seen = object()
    while last.point is not seen:
        seen = last.point
        aggregator.check()
    aggregator.post_process()
    result: Result = {}
    for label, kpi in (last.point[DataPoint.CUMULATIVE].items() if last.point else []):
        if not label:
            continue
        perc = kpi[KPISet.PERCENTILES]
        result[label] = {"count": kpi[KPISet.SAMPLE_COUNT], "errors": kpi[KPISet.FAILURES], "mean": kpi[KPISet.AVG_RESP_TIME] * 1000,
                         **{n: perc[str(q * 100)] * 1000 for n, q in QUANTILES.items()}}
    return result


CONTENDERS: dict[str, Callable[[Path, Path | None], Result]] = {
    "duckdb_csv": duckdb_csv,
    "duckdb_to_parquet": duckdb_to_parquet,
    "duckdb_parquet": duckdb_parquet,
    "polars_streaming": polars_streaming,
    "pandas_naive": pandas_naive,
    "pyarrow_read": pyarrow_read,
    "taurus": taurus,
}


def main() -> None:
    name, jtl = sys.argv[1], Path(sys.argv[2])
    parquet = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(CONTENDERS[name](jtl, parquet), default=float))


if __name__ == "__main__":
    main()
