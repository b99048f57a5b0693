"""JMeter Summary Report / Aggregate Report "Save Table Data" CSVs into `request_stats`.

Written by `CSVSaveService.saveCSVStats` (FORMATS.md 3.3): delimiter `,`, values
formatted by `java.text.DecimalFormat` in the JVM's locale, so a robust reader
accepts `.50000` (no leading zero), `1.234%`, and comma decimals quoted as
`"1,234%"`. The last row, `TOTAL`, is kept with row_kind `total`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors.base import CollectorError, first_lines

name = "jmeter_summary"

# Header -> (canonical column, factor). KB/sec columns become bytes per second.
HEADERS: dict[str, tuple[str, float]] = {
    "# Samples": ("count", 1.0),
    "Average": ("mean_ms", 1.0),
    "Median": ("p50_ms", 1.0),
    "Min": ("min_ms", 1.0),
    "Max": ("max_ms", 1.0),
    "Std. Dev.": ("std_ms", 1.0),
    "Throughput": ("throughput_rps", 1.0),
    "Received KB/sec": ("received_bytes_per_s", 1024.0),
    "KB/sec": ("received_bytes_per_s", 1024.0),
    "Sent KB/sec": ("sent_bytes_per_s", 1024.0),
    "Avg. Bytes": ("avg_bytes", 1.0),
}
# "{0}% Line" headers (aggregate_rpt_pct1..3) -> the percentile columns the schema has.
PERCENTILES = {"50": "p50_ms", "66": "p66_ms", "75": "p75_ms", "80": "p80_ms", "90": "p90_ms", "95": "p95_ms", "98": "p98_ms", "99": "p99_ms", "99.9": "p999_ms"}
# Layouts of files saved without "Save Table Header", by field count (only the unambiguous ones).
HEADERLESS: dict[int, list[str]] = {
    11: ["Label", "# Samples", "Average", "Min", "Max", "Std. Dev.", "Error %", "Throughput", "Received KB/sec", "Sent KB/sec", "Avg. Bytes"],
    13: ["Label", "# Samples", "Average", "Median", "90% Line", "95% Line", "99% Line", "Min", "Max", "Error %", "Throughput", "Received KB/sec", "Sent KB/sec"],
    12: ["Label", "# Samples", "Average", "Median", "90% Line", "95% Line", "99% Line", "Min", "Max", "Error %", "Throughput", "KB/sec"],
}


def _header(line: str) -> list[str] | None:
    fields = [f.strip().strip('"') for f in line.split(",")]
    if len(fields) >= 4 and fields[0] == "Label" and fields[1] == "# Samples":
        return fields
    return None


def detect(path: Path) -> bool:
    """A CSV whose header starts `Label,# Samples,` (Summary, Aggregate or Synthesis Report)."""
    lines = first_lines(path, 1)
    return bool(lines) and _header(lines[0]) is not None


def _column_of(path: Path, header: str) -> tuple[str, float] | None:
    if header in HEADERS:
        return HEADERS[header]
    found = re.fullmatch(r"(\d+(?:\.\d+)?)% Line", header)
    if found:
        key = found.group(1)
        if key not in PERCENTILES:
            raise CollectorError(path, f"percentile column {header!r} has no canonical column (known: {', '.join(PERCENTILES)})", line=1)
        return PERCENTILES[key], 1.0
    return None


def _numbers(path: Path, column: pa.ChunkedArray, header: str, first_line: int) -> pa.ChunkedArray:
    """DecimalFormat text (any locale, `%` and `.5` forms) as float64; a CollectorError on anything else."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    text = pc.replace_substring(pc.replace_substring(text, "%", ""), "\u00a0", "")
    # DecimalFormat patterns of these tables have no grouping, so a comma is a decimal comma.
    text = pc.replace_substring(text, ",", ".")
    text = pc.replace_substring(pc.replace_substring(text, "\u221e", "inf"), "\ufffd", "")
    valid = pc.match_substring_regex(text, r"^(-?(\d+\.?\d*|\.\d+)([eE]-?\d+)?|-?inf|)$")
    if not pc.all(pc.fill_null(valid, True)).as_py():
        index = pc.index(valid, False).as_py()
        raise CollectorError(path, f"column {header!r}: expected a number, got {column[index].as_py()!r}", line=first_line + index)
    empty = pc.equal(text, "")
    return pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), text), pa.float64())


def read(path: Path, columns: list[str] | str | None = None, **_: object) -> dict[str, pa.Table]:
    """Read a Summary/Aggregate Report CSV into `request_stats` (headerless files: 11, 12 or 13 fields, or `columns`)."""
    path = Path(path)
    lines = first_lines(path, 1)
    if not lines:
        raise CollectorError(path, "empty file: expected a JMeter Summary or Aggregate Report CSV")
    names = _header(lines[0])
    skip = 1
    if names is None:
        skip = 0
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",")]
        try:
            count = len(pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 16)).column_names) if not columns else len(columns)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise CollectorError(path, f"not a JMeter Summary or Aggregate Report CSV: {exc}", line=1) from exc
        names = list(columns) if columns else HEADERLESS.get(count)
        if names is None:
            raise CollectorError(path, f"no `Label,# Samples,...` header and {count} fields per row is ambiguous; give the column list (columns)", line=1)
    if "Label" not in names or "# Samples" not in names:
        raise CollectorError(path, "expected the columns `Label` and `# Samples`", line=1)
    try:
        raw = pacsv.read_csv(
            path,
            # Single-threaded, so pyarrow numbers the row of a parse error.
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        found = re.search(r"Row #(\d+)", str(exc))
        raise CollectorError(path, f"malformed CSV: expected {len(names)} comma-separated fields: {exc}", line=int(found.group(1)) if found else None) from exc
    if raw.num_rows == 0:
        raise CollectorError(path, "no rows: expected at least the TOTAL row under the header", line=skip + 1)
    return {"request_stats": _to_stats(path, raw, names, skip + 1)}


def _to_stats(path: Path, raw: pa.Table, names: list[str], first_line: int) -> pa.Table:
    label = raw.column("Label")
    if label.null_count:
        raise CollectorError(path, "empty Label", line=first_line + pc.index(pc.is_null(label), True).as_py())
    cols: dict[str, pa.ChunkedArray] = {"label": label}
    for header in names:
        target = _column_of(path, header)
        if target is None:
            continue
        column, factor = target
        values = _numbers(path, raw.column(header), header, first_line)
        cols[column] = pc.multiply(values, factor) if factor != 1.0 else values
    count = cols["count"]
    if count.null_count:
        raise CollectorError(path, "empty `# Samples`", line=first_line + pc.index(pc.is_null(count), True).as_py())
    cols["count"] = pc.cast(pc.round(count), pa.int64())
    if "Error %" in names:
        pct = _numbers(path, raw.column("Error %"), "Error %", first_line)
        cols["errors"] = pc.cast(pc.round(pc.divide(pc.multiply(cols["count"], pct), 100.0)), pa.int64())
    cols["row_kind"] = pc.if_else(pc.equal(label, "TOTAL"), "total", "sample")
    cols["source"] = pa.array([name] * raw.num_rows, pa.string())
    return pa.table(cols)


def read_batches(path: Path, **options: object) -> Iterator[tuple[str, pa.Table]]:
    """The `read` result as batches (these files are small)."""
    yield from read(path, **options).items()  # type: ignore[arg-type]
