"""Exact request statistics in plain SQL, computed from value histograms.

Response times repeat a lot (JMeter, Locust and Tsung write whole milliseconds),
so a group of ten million samples holds a few thousand distinct values. Counting
each distinct value once (`histogram_sql`) and reading the order statistics off
the running counts (`stats_sql`) gives exactly the percentiles a full sort
gives, with one hash aggregation instead of a sort of every sample. It also lets
totals over several groups (the overall line over every label) be computed from
the small histogram instead of a second pass over the samples.

The SQL uses only `GROUP BY`, window sums and `FILTER`, so the same statements
run on DuckDB, PostgreSQL or Spark SQL (see docs/scale.md).

Percentile definitions, for a group of `n` values sorted ascending, `x[0..n-1]`:

- `linear`: `h = q (n - 1)`, `x[floor(h)] + (h - floor(h)) (x[ceil(h)] - x[floor(h)])`,
  numpy's default and DuckDB's `quantile_cont`;
- `nearest`: `x[ceil(q n) - 1]`, the nearest rank, DuckDB's `quantile_disc`.

A value of rank `k` (from 0) is the smallest value whose running count exceeds `k`.
"""

from __future__ import annotations

PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}
METHODS = ("linear", "nearest")


def histogram_sql(keys: list[str], source: str, value: str = "elapsed_ms", ok: str = "success") -> str:
    """Per `keys` and distinct `value`: rows `c`, rows with a value `cv`, failed rows `e`.

    `keys` are expressions of `source` given as `<expression> AS <name>` or bare
    column names; `source` is a table, view or parenthesised query with its filter.
    Rows without a value count in `c` and `e` but not in the value statistics.
    """
    names = [k.rsplit(" AS ", 1)[-1] for k in keys]
    select = "".join(f"{k}, " for k in keys)
    group = "".join(f"{n}, " for n in names)
    return (
        f"SELECT {select}{value} AS v, count(*) AS c, count({value}) AS cv, count(*) FILTER (WHERE NOT {ok}) AS e "
        f"FROM {source} GROUP BY {group}{value}"
    )


def _percentile(q: float, method: str) -> str:
    # The rank is computed in double precision, as engines' own percentile functions do: with an
    # exact decimal `q`, a rank a hair below an integer would pick a different neighbour.
    fraction = f"CAST({q!r} AS DOUBLE)"
    if method == "nearest":
        return f"min(v) FILTER (WHERE cum >= ceil({fraction} * n))"
    low = f"min(v) FILTER (WHERE cum > floor({fraction} * (n - 1)))"
    high = f"min(v) FILTER (WHERE cum > ceil({fraction} * (n - 1)))"
    h = f"{fraction} * (max(n) - 1)"
    return f"{low} + ({high} - {low}) * ({h} - floor({h}))"


def stats_sql(histogram: str, keys: list[str], method: str = "linear", apdex_t_ms: float | None = None) -> str:
    """Statistics per `keys` from `histogram` (a table or parenthesised query shaped like `histogram_sql`'s).

    Columns: the keys, `count`, `errors`, `error_pct`, `mean_ms`, `std_ms` (population),
    `min_ms`, the `PERCENTILES`, `max_ms`, and `apdex` when `apdex_t_ms` is given
    (satisfied: a success within T; tolerating: a success within 4T, counted half).
    """
    if method not in METHODS:
        raise ValueError(f"unknown percentile method {method!r}; known: {', '.join(METHODS)}")
    over = f"PARTITION BY {', '.join(keys)}" if keys else ""
    lead = "".join(f"{k}, " for k in keys)
    percentiles = ", ".join(f"{_percentile(q, method)} AS {name}" for name, q in PERCENTILES.items())
    apdex = ""
    if apdex_t_ms:
        t = float(apdex_t_ms)
        apdex = (f", (coalesce(sum(c - e) FILTER (WHERE v <= {t}), 0) "
                 f"+ 0.5 * coalesce(sum(c - e) FILTER (WHERE v > {t} AND v <= {4 * t}), 0)) / sum(c) AS apdex")
    return (
        f"WITH w AS (SELECT *, sum(cv) OVER ({over} ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum, "
        f"sum(cv) OVER ({over}) AS n, sum(cv * v) OVER ({over}) / nullif(sum(cv) OVER ({over}), 0) AS mean FROM {histogram}) "
        f"SELECT {lead}sum(c) AS count, sum(e) AS errors, 100.0 * sum(e) / sum(c) AS error_pct, max(mean) AS mean_ms, "
        "sqrt(sum(cv * (v - mean) * (v - mean)) / nullif(max(n), 0)) AS std_ms, min(v) AS min_ms, "
        f"{percentiles}, max(v) AS max_ms{apdex} FROM w"
        + (f" GROUP BY {', '.join(keys)}" if keys else "")
    )


def merged_sql(histogram: str, keys: list[str], where: str | None = None) -> str:
    """`histogram` summed over the keys not in `keys` (e.g. every label into one overall histogram)."""
    lead = "".join(f"{k}, " for k in keys)
    return (f"(SELECT {lead}v, sum(c) AS c, sum(cv) AS cv, sum(e) AS e FROM {histogram}"
            f"{f' WHERE {where}' if where else ''} GROUP BY {lead}v)")
