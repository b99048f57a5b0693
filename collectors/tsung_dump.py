"""Tsung `tsung.dump` written with `dumptraffic="protocol"` into `requests`.

One line per HTTP response (FORMATS.md L4.2), header
`#date;pid;id;http method;host;URL;HTTP status;size;duration;transaction;match;error;tag`
(Tsung >= 1.5.1; older releases wrote `#date;pid;id;http method;host;URL;HTTP status;size;match;error`).
`date` is the *end* of the request (Tsung docs), in epoch seconds with 2 to 6
decimals, so the start is `date - duration`, computed in integer microseconds
to stay exact to the millisecond. The `match` column says whether a `<match>`
pattern matched; it is not an error (Taurus' reader confused the two). A request
fails when its HTTP status is >= 400 or Tsung wrote an error name.

The label is `<METHOD> <URL>`: Tsung has no request names and the method would
otherwise be lost. Read with pyarrow's streaming CSV reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from capacity.schema import conform, empty
from collectors.base import CollectorError, count_lines, csv_batches, ends_with_newline, first_lines

name = "tsung_dump"

HEADERS = {
    "#date;pid;id;http method;host;URL;HTTP status;size;duration;transaction;match;error;tag": (
        "date", "pid", "id", "method", "host", "url", "status", "size", "duration", "transaction", "match", "error", "tag",
    ),
    "#date;pid;id;http method;host;URL;HTTP status;size;match;error": (
        "date", "pid", "id", "method", "host", "url", "status", "size", "match", "error",
    ),
}
BLOCK_SIZE = 8 << 20
DATE_RE = r"^(?P<sec>\d+)(?:\.(?P<frac>\d{1,6}))?$"


def detect(path: Path) -> bool:
    """A file whose first line is one of the `dumptraffic="protocol"` headers."""
    lines = first_lines(path, 1)
    return bool(lines) and lines[0].strip() in HEADERS


class _Invalid:
    def __init__(self) -> None:
        self.rows: list[tuple[int | None, str]] = []

    def handler(self, row: pacsv.InvalidRow) -> str:
        self.rows.append((row.number, row.text))
        return "skip"


def _start_ms(path: Path, date: pa.Array, duration: pa.Array | None) -> pa.Array:
    parts = pc.extract_regex(date, DATE_RE)
    bad = pc.sum(pc.cast(pc.is_null(parts), pa.int64())).as_py()
    if bad:
        first = pc.index(pc.is_null(parts), True).as_py()
        raise CollectorError(path, f"date {date[first].as_py()!r} is not epoch seconds (expected like 1795304329.648933)")
    seconds = pc.cast(pc.struct_field(parts, "sec"), pa.int64())
    frac = pc.utf8_rpad(pc.struct_field(parts, "frac"), 6, "0")
    end_us = pc.add(pc.multiply(seconds, 1_000_000), pc.cast(frac, pa.int64()))
    if duration is not None:
        dur_us = pc.cast(pc.round(pc.multiply(pc.fill_null(duration, 0.0), 1000.0)), pa.int64())
        end_us = pc.subtract(end_us, dur_us)
    return pc.cast(pc.divide(end_us, 1000), pa.timestamp("ms", tz="UTC"))


def _blank_to_null(column: pa.Array, also: str | None = None) -> pa.Array:
    blank = pc.equal(pc.utf8_trim_whitespace(column), "")
    if also is not None:
        blank = pc.or_(blank, pc.equal(column, also))
    return pc.if_else(pc.fill_null(blank, True), pa.scalar(None, pa.string()), column)


def _to_requests(path: Path, batch: pa.RecordBatch) -> pa.Table:
    col = {n: batch.column(n) for n in batch.schema.names}
    duration = col.get("duration")
    status = _blank_to_null(col["status"])
    error = _blank_to_null(col["error"])
    code = pc.cast(pc.if_else(pc.match_substring_regex(status, r"^\d+$"), status, pa.scalar(None, pa.string())), pa.int64())
    # Tsung writes failures such as `error_no_http_status` in the status column.
    error = pc.coalesce(error, pc.if_else(pc.is_null(code), status, pa.scalar(None, pa.string())))
    success = pc.and_kleene(pc.fill_null(pc.less(code, 400), False), pc.is_null(error))
    label = pc.binary_join_element_wise(pc.utf8_upper(col["method"]), col["url"], " ")
    cols: dict[str, pa.Array] = {
        "ts": _start_ms(path, col["date"], duration),
        "elapsed_ms": duration if duration is not None else pa.nulls(batch.num_rows, pa.float64()),
        "label": label,
        "success": success,
        "row_kind": pa.array(["sample"] * batch.num_rows, pa.string()),
        "status": status,
        "error": error,
        "bytes": col["size"],
        "thread": col["id"],
        "url": col["url"],
        "var_pid": col["pid"],
        "var_host": col["host"],
        "var_match": _blank_to_null(col["match"]),
        "source": pa.array([name] * batch.num_rows, pa.string()),
    }
    if "transaction" in col:
        cols["var_transaction"] = _blank_to_null(col["transaction"], also="-")
    if "tag" in col:
        cols["var_tag"] = _blank_to_null(col["tag"])
    if duration is None:
        raise CollectorError(path, "this dump header has no duration column, so requests have no elapsed time", line=1)
    return conform(pa.table(cols), "requests")


def read_batches(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> Iterator[tuple[str, pa.Table]]:
    """Stream a protocol dump as batches of the canonical `requests` table."""
    path = Path(path)
    lines = first_lines(path, 1)
    header = lines[0].strip() if lines else ""
    if header not in HEADERS:
        raise CollectorError(path, f"expected the header {next(iter(HEADERS))!r} (dumptraffic=\"protocol\"), got {header[:80]!r}", line=1)
    names = list(HEADERS[header])
    types = {n: pa.string() for n in names}
    types["size"] = pa.int64()
    if "duration" in types:
        types["duration"] = pa.float64()
    invalid = _Invalid()
    try:
        reader = pacsv.open_csv(
            path,
            # Single-threaded, so the invalid-row handler gets the row's number for the error.
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=";", quote_char=False, invalid_row_handler=invalid.handler),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise _malformed(path, exc, len(names)) from exc
    pending: pa.RecordBatch | None = None
    # pyarrow reads ahead, so bad rows are judged at the end, before the last
    # batch goes out: a failure then aborts the whole ingest.
    for batch in csv_batches(reader, lambda exc: _malformed(path, exc, len(names))):
        if pending is not None:
            yield "requests", _to_requests(path, pending)
        pending = batch if batch.num_rows else None
    if invalid.rows:
        _check_last(path, invalid.rows, warn)
    if pending is not None:
        yield "requests", _to_requests(path, pending)


def _malformed(path: Path, exc: Exception, fields: int) -> CollectorError:
    return CollectorError(path, f"malformed protocol dump ({exc}); expected {fields} `;`-separated fields with a numeric size and duration")


def _fail(path: Path, rows: list[tuple[int | None, str]]) -> None:
    number, text = rows[0]
    raise CollectorError(path, f"wrong number of `;`-separated fields in {text[:80]!r}", line=number)


def _check_last(path: Path, rows: list[tuple[int | None, str]], warn: Callable[[str], None] | None) -> None:
    total, complete = count_lines(path), ends_with_newline(path)
    number, text = rows[-1]
    if len(rows) == 1 and not complete and (number is None or number >= total):
        if warn:
            warn(f"{path}:{total}: truncated last line skipped ({text[:60]!r})")
        return
    _fail(path, rows)


def read(path: Path, **options: object) -> dict[str, pa.Table]:
    """Read a whole protocol dump into the canonical `requests` table."""
    parts = [t for _, t in read_batches(path, **options)]  # type: ignore[arg-type]
    if not parts:
        return {"requests": empty("requests")}
    return {"requests": pa.concat_tables(parts)}
