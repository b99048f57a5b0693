"""Ed-Fi load tester exports (`Events` and `RunInfoes` tables as CSV) into `requests`.

The tester stores one row per API call in its `Events` table: `RunId, Id,
StartDateTime, EndDateTime, EventType` (0 Create, 1 Read, 2 Update, 3 Delete)
`, SdkModelType, EventDisposition` (1 success, 2 error) `, HttpStatusCode, Error`,
and a `ThreadId` when the export has one. Times are SQL Server `datetime2`
text without a zone, in the tester's local time (`tz` option), with up to 7
decimals. The label is `<operation> <SdkModelType>` (`Create Student`).

The run configuration lives in `RunInfoes` (`Id, StartDateTime, ..., ThreadCount,
CreateRatio, ReadRatio, UpdateRatio, DeleteRatio`). When a `RunInfoes*.csv`
sits next to the events file, the row of the events' run becomes run tags:
JSON under the key `run_tags` of the requests table's schema metadata, which
the store records in the catalog. Read on its own, a RunInfoes file gives an
empty `requests` table carrying the same metadata (for its latest run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform, empty
from collectors.base import CollectorError, check_zone, first_lines, read_csv_text

name = "edfi_events"

EVENT_COLUMNS = ("RunId", "Id", "StartDateTime", "EndDateTime", "EventType", "SdkModelType", "EventDisposition", "HttpStatusCode", "Error")
RUN_COLUMNS = ("Id", "StartDateTime", "ThreadCount", "CreateRatio", "ReadRatio", "UpdateRatio", "DeleteRatio")
OPERATIONS = {0: "Create", 1: "Read", 2: "Update", 3: "Delete"}
STAMP_RE = r"^(?P<base>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,7}))?$"


def _header(path: Path) -> list[str]:
    lines = first_lines(path, 1)
    return [h.strip().strip('"') for h in lines[0].split(",")] if lines else []


def _kind(path: Path) -> str | None:
    header = _header(path)
    if tuple(header[: len(EVENT_COLUMNS)]) == EVENT_COLUMNS:
        return "events"
    if header[:2] == ["Id", "StartDateTime"] and all(c in header for c in RUN_COLUMNS):
        return "runs"
    return None


def detect(path: Path) -> bool:
    """An Events export (header `RunId,Id,StartDateTime,EndDateTime,EventType,...`) or a RunInfoes export."""
    return _kind(path) is not None


def _read(path: Path, header: list[str]) -> pa.Table:
    return read_csv_text(path, header, "CSV export")


def _microseconds(path: Path, column: pa.Array, tz: str, what: str) -> pa.Array:
    """Local datetime2 text -> epoch microseconds (UTC), exact to the microsecond."""
    parts = pc.extract_regex(column, STAMP_RE)
    bad = pc.is_null(parts)
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        raise CollectorError(path, f"{what} {column[row].as_py()!r} is not a `YYYY-MM-DD HH:MM:SS[.fffffff]` time", line=row + 2)
    base = pc.strptime(pc.replace_substring(pc.struct_field(parts, "base"), "T", " "), format="%Y-%m-%d %H:%M:%S", unit="us")
    local = pc.assume_timezone(base, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    frac = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.struct_field(parts, "frac"), 7, "0"), 0, 6)
    return pc.add(pc.cast(pc.cast(local, pa.timestamp("us", tz="UTC")), pa.int64()), pc.cast(frac, pa.int64()))


def _int(path: Path, table: pa.Table, column: str) -> pa.Array:
    text = pc.utf8_trim_whitespace(table[column].combine_chunks())
    try:
        return pc.cast(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text), pa.int64())
    except pa.ArrowInvalid as exc:
        raise CollectorError(path, f"column {column} holds a value that is not a whole number: {exc}") from exc


def _run_tags(path: Path, run_id: int | None) -> dict[str, object] | None:
    """The RunInfoes row of `run_id` (the latest run when None) as tags."""
    table = _read(path, _header(path))
    ids = _int(path, table, "Id").to_pylist()
    if not ids:
        return None
    index = ids.index(run_id) if run_id in ids else (ids.index(max(i for i in ids if i is not None)) if run_id is None else None)
    if index is None:
        return None
    row = {c: table[c][index].as_py() for c in table.column_names}
    tags: dict[str, object] = {"edfi_run_id": ids[index]}
    for column, value in row.items():
        if column == "Id" or value == "":
            continue
        try:
            tags[column] = int(value)
        except ValueError:
            tags[column] = value
    tags["threads"] = tags.get("ThreadCount")
    tags["crud_ratio"] = "/".join(str(tags.get(f"{op}Ratio")) for op in OPERATIONS.values())
    return tags


def _sibling_runs(path: Path) -> Path | None:
    for candidate in sorted(path.parent.glob("*.csv")):
        if candidate != path and "runinfo" in candidate.name.lower() and _kind(candidate) == "runs":
            return candidate
    return None


def _with_tags(table: pa.Table, tags: dict[str, object] | None) -> pa.Table:
    if not tags:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"run_tags": json.dumps(tags, sort_keys=True).encode()})


def read(path: Path, tz: str = "UTC", warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read an Events export into `requests` (with run tags from a sibling RunInfoes export)."""
    path = Path(path)
    check_zone(path, tz)
    kind = _kind(path)
    if kind is None:
        raise CollectorError(path, f"expected an Events export with header {','.join(EVENT_COLUMNS)} or a RunInfoes export", line=1)
    if kind == "runs":
        return {"requests": _with_tags(empty("requests"), _run_tags(path, None))}
    header = _header(path)
    table = _read(path, header)
    n = table.num_rows
    start_us = _microseconds(path, table["StartDateTime"].combine_chunks(), tz, "StartDateTime")
    end_us = _microseconds(path, table["EndDateTime"].combine_chunks(), tz, "EndDateTime")
    event_type = _int(path, table, "EventType")
    disposition = _int(path, table, "EventDisposition")
    unknown = pc.invert(pc.fill_null(pc.is_in(event_type, pa.array(list(OPERATIONS))), False))
    if pc.any(unknown).as_py():
        row = pc.index(unknown, True).as_py()
        raise CollectorError(path, f"EventType {table['EventType'][row].as_py()!r}: expected 0-3 (Create, Read, Update, Delete)", line=row + 2)
    operation = pc.take(pa.array(list(OPERATIONS.values())), event_type)
    error = pc.utf8_trim_whitespace(table["Error"].combine_chunks())
    cols = {
        "ts": pc.cast(pc.divide(start_us, 1000), pa.timestamp("ms", tz="UTC")),
        "elapsed_ms": pc.divide(pc.cast(pc.subtract(end_us, start_us), pa.float64()), 1000.0),
        "label": pc.binary_join_element_wise(operation, table["SdkModelType"].combine_chunks(), " "),
        "success": pc.fill_null(pc.equal(disposition, 1), False),
        "row_kind": pa.array(["sample"] * n, pa.string()),
        "status": pc.utf8_trim_whitespace(table["HttpStatusCode"].combine_chunks()),
        "error": pc.if_else(pc.equal(error, ""), pa.scalar(None, pa.string()), error),
        "var_run_id": table["RunId"],
        "var_event_id": table["Id"],
        "source": pa.array([name] * n, pa.string()),
    }
    if "ThreadId" in table.column_names:
        cols["thread"] = table["ThreadId"]
    run_ids = pc.unique(_int(path, table, "RunId")).to_pylist()
    tags = None
    runs = _sibling_runs(path)
    if runs is not None and len(run_ids) == 1:
        tags = _run_tags(runs, run_ids[0])
        if tags is None and warn:
            warn(f"{runs}: no row for run {run_ids[0]}; no run tags")
    elif len(run_ids) > 1 and warn:
        warn(f"{path}: the export holds runs {run_ids}; run tags are only attached for single-run exports")
    return {"requests": _with_tags(conform(pa.table(cols), "requests"), tags)}
