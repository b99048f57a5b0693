"""JMeter CSV JTL files (any version, with or without a header) into `requests`.

Read with pyarrow's streaming CSV reader: no per-row Python, memory bounded by
the block size whatever the file size. Column order follows
`CSVSaveService.printableFieldNamesToString` (see FORMATS.md 3.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors.base import CollectorError, first_lines

name = "jmeter_jtl"

# Headerless files can only be read with the column list their JMeter wrote.
COLUMNS_BY_VERSION: dict[str, list[str]] = {
    "2.13": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,bytes,grpThreads,allThreads,Latency".split(","),
    "3.0": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,grpThreads,allThreads,Latency,IdleTime".split(","),
    "3.1": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,Latency,IdleTime,Connect".split(","),
    "5.0": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect".split(","),
}

# JMeter column -> canonical column of `requests`.
RENAMES = {
    "timeStamp": "ts",
    "elapsed": "elapsed_ms",
    "label": "label",
    "responseCode": "status",
    "responseMessage": "message",
    "threadName": "thread",
    "dataType": "data_type",
    "success": "success",
    "failureMessage": "error",
    "bytes": "bytes",
    "sentBytes": "sent_bytes",
    "grpThreads": "group_threads",
    "allThreads": "active_users",
    "URL": "url",
    "Latency": "latency_ms",
    "IdleTime": "idle_ms",
    "Connect": "connect_ms",
    "Hostname": "generator",
}
KNOWN = set(RENAMES) | {"Encoding", "Filename", "SampleCount", "ErrorCount"}
INT_COLUMNS = {"elapsed", "bytes", "sentBytes", "grpThreads", "allThreads", "Latency", "IdleTime", "Connect", "SampleCount", "ErrorCount"}
DELIMITERS = (",", ";", "\t", "|")
TX_PREFIX = "Number of samples in transaction"
BLOCK_SIZE = 8 << 20

# SimpleDateFormat patterns JMeter falls back to when loading, as strptime formats.
DATE_FORMATS = {
    "yyyy/MM/dd HH:mm:ss.SSS": (r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}", "%Y/%m/%d %H:%M:%S"),
    "yyyy/MM/dd HH:mm:ss": (r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", "%Y/%m/%d %H:%M:%S"),
    "yyyy-MM-dd HH:mm:ss.SSS": (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "%Y-%m-%d %H:%M:%S"),
    "yyyy-MM-dd HH:mm:ss": (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "%Y-%m-%d %H:%M:%S"),
    "yyyy-MM-dd'T'HH:mm:ss.SSS": (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", "%Y-%m-%dT%H:%M:%S"),
    "MM/dd/yy HH:mm:ss": (r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d", "%m/%d/%y %H:%M:%S"),
}


def _split_header(line: str) -> tuple[str, list[str]] | None:
    for delim in DELIMITERS:
        fields = [f.strip('"') for f in line.split(delim)]
        if len(fields) >= 3 and fields[0] == "timeStamp" and fields[1] == "elapsed":
            return delim, fields
    return None


def _timestamp_format(value: str) -> str | None:
    """'ms' for epoch milliseconds, a DATE_FORMATS key, or None."""
    if re.fullmatch(r"\d{10,14}", value):
        return "ms"
    for key, (pattern, _) in DATE_FORMATS.items():
        if re.fullmatch(pattern, value):
            return key
    return None


def _split_data(line: str) -> tuple[str, list[str]] | None:
    for delim in DELIMITERS:
        fields = line.split(delim)
        if len(fields) >= 8 and _timestamp_format(fields[0]) and fields[1].isdigit():
            return delim, fields
    return None


def detect(path: Path) -> bool:
    """A CSV whose header starts `timeStamp,elapsed`, or whose rows start with a JMeter timestamp and elapsed."""
    lines = first_lines(path, 2)
    if not lines:
        return False
    return _split_header(lines[0]) is not None or _split_data(lines[0]) is not None


def _columns_for(path: Path, field_count: int, columns: list[str] | None, version: str | None) -> list[str]:
    if columns:
        chosen = columns
    elif version:
        if version not in COLUMNS_BY_VERSION:
            raise CollectorError(path, f"unknown JMeter version {version!r}; known: {', '.join(COLUMNS_BY_VERSION)}")
        chosen = COLUMNS_BY_VERSION[version]
    else:
        matches = [cols for cols in COLUMNS_BY_VERSION.values() if len(cols) == field_count]
        chosen = matches[-1] if matches else COLUMNS_BY_VERSION["5.0"]
    if len(chosen) != field_count:
        raise CollectorError(
            path,
            f"headerless file has {field_count} fields per row but the column list has {len(chosen)}; "
            "give the JMeter version or the column list (--columns)",
            line=1,
        )
    return chosen


def _zone(path: Path, tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CollectorError(path, f"unknown time zone {tz!r}") from exc
    return tz


class _Rows:
    """Tracks malformed rows pyarrow reports, so only a truncated last line is forgiven."""

    def __init__(self) -> None:
        self.invalid: list[tuple[int | None, str]] = []

    def handler(self, row: pacsv.InvalidRow) -> str:
        self.invalid.append((row.number, row.text))
        return "skip"


def _timestamps(path: Path, column: pa.ChunkedArray | pa.Array, ts_format: str, tz: str) -> pa.Array:
    if ts_format == "ms":
        return pc.cast(pc.cast(column, pa.int64()), pa.timestamp("ms", tz="UTC"))
    _, fmt = DATE_FORMATS[ts_format]
    text = pc.cast(column, pa.string())
    has_ms = ts_format.endswith(".SSS")
    base = pc.utf8_slice_codeunits(text, 0, len(ts_format.replace("'", "")) - 4) if has_ms else text
    try:
        naive = pc.strptime(base, format=fmt, unit="ms", error_is_null=False)
    except pa.ArrowInvalid as exc:
        raise CollectorError(path, f"timeStamp does not match {ts_format!r}: {exc}") from exc
    if has_ms:
        millis = pc.cast(pc.utf8_slice_codeunits(text, -3), pa.int64())
        naive = pc.cast(pc.add(pc.cast(naive, pa.int64()), millis), pa.timestamp("ms"))
    local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(local, pa.timestamp("ms", tz="UTC"))


def _to_requests(path: Path, batch: pa.RecordBatch, ts_format: str, tz: str, generator: str) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for jm in batch.schema.names:
        arr = batch.column(jm)
        if jm == "timeStamp":
            cols["ts"] = _timestamps(path, arr, ts_format, tz)
        elif jm == "success":
            cols["success"] = pc.equal(pc.utf8_lower(pc.cast(arr, pa.string())), "true")
        elif jm in RENAMES:
            cols[RENAMES[jm]] = arr
        else:
            cols[f"var_{jm}"] = pc.cast(arr, pa.string())
    if "generator" not in cols:
        cols["generator"] = pa.array([generator] * batch.num_rows, pa.string())
    message = cols.get("message")
    if message is not None:
        is_tx = pc.fill_null(pc.starts_with(message, TX_PREFIX), False)
        cols["row_kind"] = pc.if_else(is_tx, "transaction", "sample")
    else:
        cols["row_kind"] = pa.array(["sample"] * batch.num_rows, pa.string())
    for key in ("elapsed_ms", "latency_ms", "idle_ms", "connect_ms"):
        if key in cols:
            cols[key] = pc.cast(cols[key], pa.float64())
    cols["source"] = pa.array([name] * batch.num_rows, pa.string())
    return pa.table(cols)


def read_batches(
    path: Path,
    tz: str = "UTC",
    columns: list[str] | None = None,
    jmeter_version: str | None = None,
    warn: Callable[[str], None] | None = None,
    **_: object,
) -> Iterator[tuple[str, pa.Table]]:
    """Stream a CSV JTL as batches of the canonical `requests` table."""
    path = Path(path)
    tz = _zone(path, tz)
    lines = first_lines(path, 2)
    if not lines:
        raise CollectorError(path, "empty file: expected a JMeter CSV JTL")
    header = _split_header(lines[0])
    if header:
        delimiter, names = header
        skip = 1
        sample = lines[1] if len(lines) > 1 else None
    else:
        data = _split_data(lines[0])
        if data is None:
            raise CollectorError(path, "not a JMeter CSV JTL: expected a `timeStamp,elapsed,...` header or rows starting with a timestamp and an elapsed time", line=1)
        delimiter, fields = data
        names = _columns_for(path, len(fields), columns, jmeter_version)
        skip = 0
        sample = lines[0]
    if "timeStamp" not in names or "elapsed" not in names or "label" not in names or "success" not in names:
        raise CollectorError(path, "the JTL lacks one of the columns timeStamp, elapsed, label, success", line=1)
    ts_format = "ms"
    if sample is not None:
        ts_value = sample.split(delimiter)[names.index("timeStamp")].strip('"')
        ts_format = _timestamp_format(ts_value) or "ms"
        if _timestamp_format(ts_value) is None:
            raise CollectorError(path, f"unrecognised timeStamp {ts_value!r}: expected epoch milliseconds or a JMeter date format", line=skip + 1)
    types = {n: pa.int64() for n in names if n in INT_COLUMNS}
    types["timeStamp"] = pa.int64() if ts_format == "ms" else pa.string()
    for n in names:
        types.setdefault(n, pa.string())
    rows = _Rows()
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=rows.handler),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise _as_error(path, exc, skip) from exc
    generator = path.stem
    pending: pa.Table | None = None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise _as_error(path, exc, skip) from exc
        if pending is not None:
            yield "requests", pending
        pending = _to_requests(path, batch, ts_format, tz, generator) if batch.num_rows else None
    _check_invalid(path, rows.invalid, skip, warn)
    if pending is not None:
        yield "requests", pending


def _check_invalid(path: Path, invalid: list[tuple[int | None, str]], skip: int, warn: Callable[[str], None] | None) -> None:
    if not invalid:
        return
    number, text = invalid[-1]
    total_lines = _count_lines(path)
    truncated_last = len(invalid) == 1 and not _ends_with_newline(path) and (number is None or number + skip >= total_lines - 1)
    if truncated_last:
        if warn:
            warn(f"{path}:{total_lines}: truncated last line skipped ({text[:60]!r})")
        return
    number, text = invalid[0]
    line = number + skip if number is not None else None
    raise CollectorError(path, f"wrong number of fields in row {text[:80]!r}", line=line)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) in (b"\n", b"\r")


def _count_lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            count += chunk.count(b"\n")
    return count + (0 if _ends_with_newline(path) else 1)


def _as_error(path: Path, exc: pa.ArrowInvalid, skip: int) -> CollectorError:
    text = str(exc)
    found = re.search(r"Row #(\d+)", text)
    line = int(found.group(1)) + skip if found else None
    return CollectorError(path, f"malformed CSV: {text}", line=line)


def read(path: Path, **options: object) -> dict[str, pa.Table]:
    """Read a whole CSV JTL into the canonical `requests` table."""
    parts = [t for _, t in read_batches(path, **options)]  # type: ignore[arg-type]
    if not parts:
        from capacity.schema import empty

        return {"requests": empty("requests")}
    return {"requests": pa.concat_tables(parts, promote_options="permissive")}
