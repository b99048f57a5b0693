"""Buffer what a live collector gathers and flush it to the store in chunks.

Each flush is one catalog file entry (and one Parquet file per table), so a
crash or a kill loses at most what arrived since the previous flush. The store
lock is taken only for the write itself, never while a source waits on the
network. Gaps (polls that failed) travel with the next flush and are kept in
that chunk's catalog entry under `gaps`, so a recording with holes says where
the holes are even when a whole chunk holds nothing but a gap.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform
from capacity.store import Store

# A flush is forced at this many buffered rows whatever the flush period, so a
# fast source cannot grow memory without bound between two timed flushes.
DEFAULT_MAX_ROWS = 200_000


@dataclass
class Gap:
    """A stretch during which the source did not answer usefully."""

    start: datetime
    after: datetime | None
    end: datetime | None = None
    failed_polls: int = 0
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """Length from the last good poll (or first failure) to the recovery; None while still open."""
        if self.end is None:
            return None
        return (self.end - (self.after or self.start)).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """The catalog form of the gap."""
        iso = (lambda d: d.isoformat(timespec="milliseconds") if d else None)  # noqa: E731 - local formatter
        return {
            "start": iso(self.start), "end": iso(self.end), "after": iso(self.after),
            "failed_polls": self.failed_polls, "error": self.error, "seconds": self.seconds, **self.detail,
        }


@dataclass
class FlushResult:
    """What one flush wrote."""

    rows: dict[str, int]
    gaps: int
    part_name: str


def _chunk_digest(tables: dict[str, pa.Table], gaps: list[dict[str, Any]]) -> str:
    """sha256 of the chunk's Arrow IPC bytes (table by table, sorted) and its gap list."""
    digest = hashlib.sha256()
    for kind in sorted(tables):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tables[kind].schema) as writer:
            writer.write_table(tables[kind])
        digest.update(kind.encode())
        digest.update(sink.getvalue().to_pybytes())
    digest.update(json.dumps(gaps, sort_keys=True).encode())
    return digest.hexdigest()


class StoreSink:
    """Collects `(table kind, table)` batches and writes them to one run every `flush_every` seconds."""

    def __init__(self, store: Store, run: str, *, collector: str, location: str, host: str | None,
                 flush_every: float = 5.0, max_rows: int = DEFAULT_MAX_ROWS, tags: dict[str, str] | None = None,
                 on_flush: Callable[[FlushResult], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.run = run
        self.collector = collector
        self.location = location
        self.host = host
        self.flush_every = flush_every
        self.max_rows = max_rows
        self.tags = tags
        self.on_flush = on_flush
        self.clock = clock
        self._tables: dict[str, list[pa.Table]] = {}
        self._gaps: list[Gap] = []
        self._rows = 0
        self._last_flush = clock()
        self.flushes = 0
        self.written: dict[str, int] = {}
        self.gaps_written = 0

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for the next flush."""
        return self._rows

    def add(self, batches: Iterable[tuple[str, pa.Table]]) -> None:
        """Buffer conformed copies of `batches` (a schema error surfaces here, not at flush time)."""
        for kind, table in batches:
            if table.num_rows == 0:
                continue
            self._tables.setdefault(kind, []).append(conform(table, kind))
            self._rows += table.num_rows

    def add_gap(self, gap: Gap) -> None:
        """Record a finished (or, at the end, still open) gap with the next flush."""
        self._gaps.append(gap)

    def due(self) -> bool:
        """Whether a flush is needed now: the buffer is full, or the period passed with something to write."""
        if self._rows >= self.max_rows:
            return True
        return bool(self._rows or self._gaps) and self.clock() - self._last_flush >= self.flush_every

    def next_due(self) -> float:
        """The monotonic time at which a timed flush falls due; infinity while there is nothing to write."""
        if not (self._rows or self._gaps):
            return math.inf
        return self._last_flush + self.flush_every

    def flush(self) -> FlushResult | None:
        """Write everything buffered as one chunk; None when there was nothing to write."""
        self._last_flush = self.clock()
        if not self._rows and not self._gaps:
            return None
        tables = {kind: pa.concat_tables(parts) for kind, parts in self._tables.items()}
        gaps = [g.as_json() for g in self._gaps]
        first = [pc.min(t["ts"]).cast(pa.int64()).as_py() for t in tables.values() if "ts" in t.column_names]
        first_ms = min(first) if first else int(self._gaps[0].start.timestamp() * 1000)
        part_name = f"live-{self.collector}-{first_ms}-{uuid.uuid4().hex[:8]}"
        provenance: dict[str, Any] = {
            "path": self.location,
            "name": part_name,
            "sha256": _chunk_digest(tables, gaps),
            "collector": self.collector,
            "part_name": part_name,
            "size_bytes": 0,
            "tz": "UTC",
            "host": self.host,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "live": True,
            "gaps": gaps,
        }
        with self.store.locked():
            rows = self.store.write_batches(self.run, list(tables.items()), provenance, tags=self.tags, host=self.host)
        # Only forget the buffer once the chunk is safely in the catalog.
        self._tables.clear()
        self._gaps.clear()
        self._rows = 0
        self.flushes += 1
        self.gaps_written += len(gaps)
        for kind, n in rows.items():
            self.written[kind] = self.written.get(kind, 0) + n
        result = FlushResult(rows, len(gaps), part_name)
        if self.on_flush:
            self.on_flush(result)
        return result
