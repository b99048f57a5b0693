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

# Within a (generator, second) group the latest sample wins, the larger user count on a tie: both
# are packed in one integer (millisecond within the second above the user count) so that a hash
# aggregation's `max` finds it, with no sort.
_USER_BITS = 40
_PARTIAL = ["generator", "second", "latest", "requests", "errors"]
# Seconds a one-generator batch may span and still be counted in an array (`_by_second`): a
# batch of samples spanning more (a clock jump) is hashed instead.
_MAX_SPAN_S = 1 << 20


def _reduce(table: pa.Table) -> pa.Table:
    """One row per (generator, second): the latest reading, requests and failures summed."""
    out = table.group_by(["generator", "second"]).aggregate([("latest", "max"), ("requests", "sum"), ("errors", "sum")])
    return out.rename_columns([c.removesuffix("_max").removesuffix("_sum") for c in out.column_names]).select(_PARTIAL)


def _by_second(generator: pa.Scalar, second: np.ndarray, latest: np.ndarray, errors: np.ndarray) -> pa.Table:
    """`_reduce` of a batch from one generator, counted per second with numpy.

    A batch nearly always comes from one generator and covers a few seconds: counting into an
    array indexed by the second costs a third of a hash aggregation.
    """
    low = second.min()
    offset = second - low
    size = int(offset.max()) + 1
    requests = np.bincount(offset, minlength=size)
    failed = np.bincount(offset, weights=errors, minlength=size).astype(np.int64)
    top = np.full(size, -1, dtype=np.int64)
    np.maximum.at(top, offset, latest)
    present = np.flatnonzero(requests)
    return pa.table({
        "generator": pa.repeat(generator, len(present)),
        "second": present + low,
        "latest": top[present],
        "requests": requests[present],
        "errors": failed[present],
    })


class LoadSeconds:
    """Accumulates `requests` batches; `table()` gives the `load` rows of everything added."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[pa.Table] = []

    def add(self, requests: pa.Table) -> None:
        """Reduce one batch of `requests` (columns ts, success, row_kind, generator, active_users)."""
        if "active_users" not in requests.column_names or requests.num_rows == 0:
            return
        users = requests["active_users"]
        # A negative or absurd thread count says nothing about load: such rows are left out of it.
        in_range = pc.and_(pc.greater_equal(users, 0), pc.less(users, 1 << _USER_BITS))
        keep = pc.and_(pc.equal(requests["row_kind"], "sample"), pc.fill_null(in_range, False))
        rows = requests.select(["ts", "generator", "success"]).append_column("users", users).filter(keep)
        if rows.num_rows == 0:
            return
        start_ms = pc.cast(rows["ts"], pa.int64()).to_numpy()
        second = np.floor_divide(start_ms, 1000)
        latest = ((start_ms - second * 1000) << _USER_BITS) | pc.cast(rows["users"], pa.int64()).to_numpy()
        errors = np.logical_not(rows["success"].to_numpy()).astype(np.int64)
        generator = rows["generator"]
        if int(second.max() - second.min()) <= _MAX_SPAN_S and pc.all(pc.equal(generator, generator[0]), skip_nulls=False).as_py():
            self.parts.append(_by_second(generator[0], second, latest, errors))
            return
        self.parts.append(_reduce(pa.table({
            "generator": generator,
            "second": second,
            "latest": latest,
            "requests": np.ones(len(second), dtype=np.int64),
            "errors": errors,
        })))

    def table(self) -> pa.Table | None:
        """The `load` table, or None when no sample had a user count.

        A row's `ts` is the start of the second's latest sample: the moment the user count was
        read, and never outside the samples' own span (the run's start and end stay the same).
        """
        if not self.parts:
            return None
        merged = _reduce(pa.concat_tables(self.parts)).sort_by([("second", "ascending"), ("generator", "ascending")])
        self.parts = [merged]
        latest = merged["latest"].to_numpy()
        start_ms = merged["second"].to_numpy() * 1000 + (latest >> _USER_BITS)
        return conform(pa.table({
            "ts": pa.array(start_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "active_users": (latest & ((1 << _USER_BITS) - 1)).astype(np.float64),
            "rps": pc.cast(merged["requests"], pa.float64()),
            "errors_per_s": pc.cast(merged["errors"], pa.float64()),
            "generator": merged["generator"],
            "source": pa.repeat(pa.scalar(self.source, pa.string()), merged.num_rows),
        }), "load")
