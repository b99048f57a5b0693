"""Locust `*_failures.csv` and `*_exceptions.csv` into the `failures` table.

Failures are not statistics, so they get their own table rather than rows of
`request_stats`: `Method,Name,Error,Occurrences` (+ `First Seen,Last Seen` in
ISO-8601 UTC since 2.44.0) and `Count,Message,Traceback,Nodes` (since 1.4, the
traceback a quoted multi-line field). The label is `<Method> <Name>`, as in the
`request_stats` rows of `locust_csv`, so the two join.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform
from collectors.base import CollectorError, first_lines, read_csv_text

name = "locust_failures"

HEADS = {"failure": "Method,Name,Error,Occurrences", "exception": "Count,Message,Traceback,Nodes"}


def _kind(path: Path) -> str | None:
    lines = first_lines(path, 1)
    header = lines[0].replace('"', "") if lines else ""
    return next((kind for kind, head in HEADS.items() if header.startswith(head)), None)


def detect(path: Path) -> bool:
    """A Locust failures or exceptions CSV (by its header)."""
    return _kind(path) is not None


def _text(table: pa.Table, column: str) -> pa.Array:
    return pc.fill_null(pc.cast(table[column].combine_chunks(), pa.string()), "")


def _seen(path: Path, table: pa.Table, column: str) -> pa.Array | None:
    if column not in table.column_names:
        return None
    text = _text(table, column)
    blank = pc.equal(text, "")
    try:
        parsed = pc.strptime(pc.if_else(blank, pa.scalar(None, pa.string()), text), format="%Y-%m-%dT%H:%M:%SZ", unit="ms", error_is_null=False)
    except pa.ArrowInvalid as exc:
        raise CollectorError(path, f"{column!r} is not an ISO-8601 UTC time like 2026-11-21T23:43:18Z: {exc}") from exc
    return pc.assume_timezone(parsed, timezone="UTC")


def _count(path: Path, table: pa.Table, column: str) -> pa.Array:
    try:
        return pc.cast(_text(table, column), pa.int64())
    except pa.ArrowInvalid as exc:
        raise CollectorError(path, f"{column!r} holds a value that is not a whole number: {exc}") from exc


def _line_of_record(path: Path, record: int) -> int:
    """1-based line where CSV record `record` (pyarrow's `Row #`, header included) starts.

    Tracebacks span lines inside quotes, so record and line numbers differ (error path only).
    """
    number, quoted = 0, False
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not quoted:
                record -= 1
                if record == 0:
                    return number
            quoted ^= raw.count(b'"') % 2 == 1
    return number


def read(path: Path, **_: object) -> dict[str, pa.Table]:
    """Read a failures or exceptions CSV into the canonical `failures` table."""
    path = Path(path)
    kind = _kind(path)
    if kind is None:
        raise CollectorError(path, f"expected a header starting {HEADS['failure']!r} or {HEADS['exception']!r}", line=1)
    # Read every column as text: pyarrow would otherwise turn First Seen into its own timestamps.
    known = ("Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen", "Count", "Message", "Traceback", "Nodes")
    table = read_csv_text(path, known, "Locust CSV", line_of=lambda row: _line_of_record(path, row))
    n = table.num_rows
    if kind == "failure":
        method = _text(table, "Method")
        cols = {
            "error": _text(table, "Error"),
            "count": _count(path, table, "Occurrences"),
            "label": pc.binary_join_element_wise(method, _text(table, "Name"), " "),
            "method": method,
        }
        for column, key in (("First Seen", "first_seen"), ("Last Seen", "last_seen")):
            seen = _seen(path, table, column)
            if seen is not None:
                cols[key] = seen
    else:
        cols = {
            "error": _text(table, "Message"),
            "count": _count(path, table, "Count"),
            "traceback": _text(table, "Traceback"),
            "nodes": _text(table, "Nodes"),
        }
    cols["row_kind"] = pa.array([kind] * n, pa.string())
    cols["source"] = pa.array([name] * n, pa.string())
    return {"failures": conform(pa.table(cols), "failures")}
