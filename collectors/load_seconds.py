"""The `load` table of a sample log: users, requests and errors per generator and second.

A JMeter sample carries its generator's active thread count (`allThreads`);
the load level of a second is that count at the last sample started in it,
which is what `capacity.analysis.align.users_per_second` reads from `requests`
when no `load` table exists. Writing it once while the samples stream past lets
every later question about the load curve (steps, offsets, reports) read a few
thousand rows instead of every sample.

Batches arrive in file order, and a second can recur in a later batch (JMeter
writes samples as they end, not as they start), so each batch is reduced to
one row per (generator, second) and the reductions are merged at the end. Only
`sample` rows count: transactions and sub-results would count requests twice.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform

_PARTIAL = ("generator", "second", "last_ms", "users", "requests", "errors")


def _reduce(table: pa.Table) -> pa.Table:
    """One row per (generator, second): users at the latest start, requests and failures summed."""
    ordered = table.sort_by([("generator", "ascending"), ("second", "ascending"), ("last_ms", "ascending"), ("users", "ascending")])
    return ordered.group_by(["generator", "second"], use_threads=False).aggregate(
        [("last_ms", "max"), ("users", "last"), ("requests", "sum"), ("errors", "sum")]
    ).rename_columns(["generator", "second", "last_ms", "users", "requests", "errors"]).select(list(_PARTIAL))


class LoadSeconds:
    """Accumulates `requests` batches; `table()` gives the `load` rows of everything added."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[pa.Table] = []

    def add(self, requests: pa.Table) -> None:
        """Reduce one batch of `requests` (columns ts, success, row_kind, generator, active_users)."""
        if "active_users" not in requests.column_names or requests.num_rows == 0:
            return
        keep = pc.and_(pc.equal(requests["row_kind"], "sample"), pc.is_valid(requests["active_users"]))
        rows = requests.filter(keep)
        if rows.num_rows == 0:
            return
        start_ms = pc.cast(rows["ts"], pa.int64())
        batch = pa.table({
            "generator": rows["generator"],
            "second": pc.floor(pc.divide(pc.cast(start_ms, pa.float64()), 1000.0)).cast(pa.int64()),
            "last_ms": start_ms,
            "users": pc.cast(rows["active_users"], pa.float64()),
            "requests": pa.array(np.ones(rows.num_rows, dtype=np.int64)),
            "errors": pc.cast(pc.invert(rows["success"]), pa.int64()),
        })
        self.parts.append(_reduce(batch))

    def table(self) -> pa.Table | None:
        """The `load` table, or None when no sample had a user count.

        A row's `ts` is the start of the second's latest sample: the moment the user count was
        read, and never outside the samples' own span (the run's start and end stay the same).
        """
        if not self.parts:
            return None
        merged = _reduce(pa.concat_tables(self.parts)).sort_by([("second", "ascending"), ("generator", "ascending")])
        self.parts = [merged]
        return conform(pa.table({
            "ts": pc.cast(merged["last_ms"], pa.timestamp("ms", tz="UTC")),
            "active_users": merged["users"],
            "rps": pc.cast(merged["requests"], pa.float64()),
            "errors_per_s": pc.cast(merged["errors"], pa.float64()),
            "generator": merged["generator"],
            "source": pa.repeat(pa.scalar(self.source, pa.string()), merged.num_rows),
        }), "load")
