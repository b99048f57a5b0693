"""JMeter CSV JTL files (any version, with or without a header) into `requests` and `load`.

The file's layout (delimiter, columns, timestamp format) comes from `jtl_layout`. Large files
are parsed by DuckDB's parallel scanner (`jtl_fast`), the others (and anything DuckDB rejects)
by pyarrow's streaming CSV reader: no per-row Python, memory bounded by the batch size whatever
the file size. Both feed the same conversion into `requests`. The `load` table (active threads,
requests and errors per generator and second) is reduced from the samples as they stream past
(`load_seconds`); a bad line is located by `jtl_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors import jtl_errors, jtl_fast
from collectors.base import CollectorError, first_lines, tables_of
from collectors.jtl_layout import read_options, sdf_to_strptime, split_data, split_header
from collectors.load_seconds import LoadSeconds

name = "jmeter_jtl"

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
# Standard columns the canonical table has no place for: read, then dropped
# (they must not turn into `var_*` columns, which are sample variables).
DROPPED = {"Encoding", "Filename", "SampleCount", "ErrorCount"}
INT_COLUMNS = {"elapsed", "bytes", "sentBytes", "grpThreads", "allThreads", "Latency", "IdleTime", "Connect", "SampleCount", "ErrorCount"}
TX_PREFIX = "Number of samples in transaction"
BLOCK_SIZE = 8 << 20
ENGINES = ("auto", "fast", "plain")
# Below this size DuckDB's start-up costs more than its parallel scan saves.
FAST_MIN_BYTES = 16 << 20
# Rows per batch of the fast path: large row groups, while a batch and its conversion stay well under 1 GB.
FAST_BATCH_ROWS = 1 << 18
TAIL_BYTES = 64 << 10
# Rows of the previous batch kept to find a sub-result's parent across a batch boundary:
# JMeter writes a parent and its sub-results together, so a short tail is enough.
CARRY_ROWS = 2000

# Sub-results written since JMeter 5.0 are labelled `<parent label>-<index>`.
SUBRESULT_LABEL = r"^(?P<parent>.+)-\d+$"
# Remote engines prefix thread names with `<host[:port]>-` (THREAD_GROUP_DISTRIBUTED_PREFIX_PROPERTY_NAME);
# only host-looking prefixes are taken, so a Thread Group named `Users-A` is not mistaken for an engine.
ENGINE_PREFIX = (
    r"^(?P<engine>(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+)(?::\d+)?"
    r"|[A-Za-z0-9_.\-]+:\d+)-.+ \d+-\d+$"
)

Warn = Callable[[str], None] | None


def detect(path: Path) -> bool:
    """A CSV whose header starts `timeStamp,elapsed`, or whose rows start with a JMeter timestamp and elapsed."""
    lines = first_lines(path, 2)
    if not lines:
        return False
    return split_header(lines[0]) is not None or split_data(lines[0]) is not None


def _zone(path: Path, tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CollectorError(path, f"unknown time zone {tz!r}") from exc
    return tz


class _Rows:
    """Collects the rows pyarrow cannot split into the expected fields."""

    def __init__(self) -> None:
        self.invalid: list[str] = []

    def handler(self, row: pacsv.InvalidRow) -> str:
        self.invalid.append(row.text)
        return "skip"


class _Reading:
    """State of one file being read: where it is, how to parse timestamps, what to carry between batches."""

    def __init__(self, path: Path, delimiter: str, skip: int, ts_format: str, tz: str, fallback_generator: str) -> None:
        self.path = path
        self.delimiter = delimiter
        self.skip = skip
        self.ts_format = ts_format
        self.tz = tz
        self.fallback_generator = fallback_generator
        self.rows_before = 0
        self.carry: pa.Table | None = None
        self.load = LoadSeconds(name)


def _timestamps(state: _Reading, column: pa.Array) -> pa.Array:
    if state.ts_format == "ms":
        return pc.cast(pc.cast(column, pa.int64()), pa.timestamp("ms", tz="UTC"))
    fmt, has_ms = sdf_to_strptime(state.ts_format)
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    base = pc.utf8_slice_codeunits(text, 0, -4) if has_ms else text
    naive = pc.strptime(base, format=fmt, unit="ms", error_is_null=True)
    if has_ms:
        ms_ok = pc.match_substring_regex(text, r"[.,]\d{3}$")
        millis = pc.cast(pc.if_else(ms_ok, pc.utf8_slice_codeunits(text, -3), pa.scalar(None, pa.string())), pa.int64())
        naive = pc.cast(pc.add(pc.cast(naive, pa.int64()), millis), pa.timestamp("ms"))
    bad = pc.and_(pc.is_null(naive), pc.is_valid(text))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        raise CollectorError(
            state.path,
            f"timeStamp {text[index].as_py()!r} does not match {state.ts_format!r}",
            line=jtl_errors.line_of_row(state, state.rows_before + index),
        )
    local = pc.assume_timezone(naive, timezone=state.tz, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(local, pa.timestamp("ms", tz="UTC"))


def _per_distinct(column: pa.Array, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """`fn` applied to the distinct values only (labels and thread names repeat a lot), spread back to every row."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = fn(encoded.dictionary)
    if values.null_count == len(values):
        # The usual case (no sub-results, no remote engines): no strings to copy for every row.
        return pa.nulls(len(column), values.type)
    return pc.take(values, encoded.indices)


def _row_kinds(state: _Reading, cols: dict[str, pa.Array], n: int) -> pa.Array:
    """`transaction` for Transaction Controller rows, `subresult` for `<parent>-<i>` rows inside their parent, else `sample`."""
    is_tx = pc.starts_with(cols["message"], TX_PREFIX) if "message" in cols else pa.array(np.zeros(n, dtype=bool))
    kinds = pc.if_else(pc.fill_null(is_tx, False), "transaction", "sample")
    label = cols["label"]
    thread = pc.fill_null(cols["thread"], "") if "thread" in cols else pa.array([""] * n, pa.string())
    start = pc.cast(cols["ts"], pa.int64())
    end = pc.add(start, pc.cast(pc.fill_null(cols["elapsed_ms"], 0), pa.int64()))
    frame = pa.table({"thread": thread, "label": label, "start": start, "end": end})
    history = frame if state.carry is None else pa.concat_tables([state.carry, frame])
    state.carry = frame.slice(max(0, n - CARRY_ROWS))

    parent = _per_distinct(label, lambda values: pc.struct_field(pc.extract_regex(values, SUBRESULT_LABEL), "parent"))
    if parent.null_count == n:
        return kinds
    candidate = pc.fill_null(pc.is_in(parent, value_set=pc.unique(history["label"])), False)
    if not pc.any(candidate).as_py():
        return kinds
    # Only the few candidate rows and their possible parents go through pandas' as-of join
    # (imported here: most files have no sub-results, and pandas is a third of the start-up).
    import pandas as pd

    children = frame.append_column("parent", parent).append_column("row", pa.array(np.arange(n))).filter(candidate).to_pandas()
    parents = history.filter(pc.is_in(history["label"], value_set=pa.array(children["parent"].unique(), pa.string()))).to_pandas()
    parents = parents.rename(columns={"label": "parent", "end": "parent_end"}).assign(parent_start=lambda f: f["start"])
    # The parent is the latest row of the same thread, labelled with the prefix, that started no later than the child.
    matched = pd.merge_asof(
        children.sort_values("start"),
        parents[["thread", "parent", "start", "parent_start", "parent_end"]].sort_values("start"),
        on="start",
        by=["thread", "parent"],
        direction="backward",
    )
    inside = matched["parent_end"].notna() & (matched["end"] <= matched["parent_end"]) & (matched["start"] >= matched["parent_start"])
    mask = np.zeros(n, dtype=bool)
    mask[matched.loc[inside, "row"].to_numpy(dtype=np.int64)] = True
    return pc.if_else(pa.array(mask), "subresult", kinds)


def _generators(state: _Reading, cols: dict[str, pa.Array], n: int) -> pa.Array:
    fallback = pa.scalar(state.fallback_generator, pa.string())
    if "generator" in cols:
        return pc.coalesce(cols["generator"], fallback)
    if "thread" in cols:
        engine = _per_distinct(cols["thread"], lambda values: pc.struct_field(pc.extract_regex(values, ENGINE_PREFIX), "engine"))
        if engine.null_count == n:
            return pa.repeat(fallback, n)
        return pc.coalesce(engine, fallback)
    return pa.array([state.fallback_generator] * n, pa.string())


def _successes(text: pa.Array) -> pa.Array:
    """`true` in any case is a success (JMeter's `Boolean.parseBoolean`); lower-casing only when needed."""
    exact = pc.equal(text, "true")
    if pc.all(pc.or_kleene(exact, pc.equal(text, "false"))).as_py():
        return exact
    return pc.equal(pc.utf8_lower(text), "true")


def _to_requests(state: _Reading, batch: pa.RecordBatch) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for jm in batch.schema.names:
        arr = batch.column(jm)
        if jm == "timeStamp":
            cols["ts"] = _timestamps(state, arr)
        elif jm == "success":
            cols["success"] = _successes(pc.cast(arr, pa.string()))
        elif jm in RENAMES:
            cols[RENAMES[jm]] = arr
        elif jm not in DROPPED:
            cols[f"var_{jm}"] = pc.cast(arr, pa.string())
    n = batch.num_rows
    for key in ("ts", "elapsed_ms", "label", "success"):
        if cols[key].null_count:
            index = pc.index(pc.is_null(cols[key]), True).as_py()
            raise CollectorError(state.path, f"empty {key!r} field", line=jtl_errors.line_of_row(state, state.rows_before + index))
    for key in ("elapsed_ms", "latency_ms", "idle_ms", "connect_ms"):
        if key in cols:
            cols[key] = pc.cast(cols[key], pa.float64())
    cols["generator"] = _generators(state, cols, n)
    cols["row_kind"] = _row_kinds(state, cols, n)
    cols["source"] = pa.repeat(pa.scalar(name, pa.string()), n)
    state.rows_before += n
    table = pa.table(cols)
    state.load.add(table)
    return table


def read_batches(
    path: Path,
    tz: str = "UTC",
    columns: list[str] | str | None = None,
    jmeter_version: str | None = None,
    timestamp_format: str | None = None,
    host: str | None = None,
    warn: Warn = None,
    engine: str = "auto",
    **_: object,
) -> Iterator[tuple[str, pa.Table]]:
    """Stream a CSV JTL as batches of the canonical `requests` table.

    `columns` (list or comma-separated text) or `jmeter_version` name the columns of a headerless
    file; `timestamp_format` is the SimpleDateFormat of `timeStamp` when it is not epoch ms and not
    one JMeter's loader recognises; `tz` is the zone of formatted timestamps; `host` names the
    generator when neither a `Hostname` column nor a distributed engine prefix tells it.
    `engine`: `fast` parses with DuckDB's parallel CSV scanner, `plain` with pyarrow's streaming
    reader, `auto` (default) takes `fast` for files of at least FAST_MIN_BYTES whose last line is
    complete. Both give the same table; when DuckDB rejects a file the plain reader takes over
    (and names the bad line).
    """
    path = Path(path)
    tz = _zone(path, tz)
    if engine not in ENGINES:
        raise CollectorError(path, f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    delimiter, names, skip, ts_format = read_options(path, columns, jmeter_version, timestamp_format)
    types = {n: pa.int64() for n in names if n in INT_COLUMNS}
    types["timeStamp"] = pa.int64() if ts_format == "ms" else pa.string()
    for n in names:
        types.setdefault(n, pa.string())
    fallback = host or path.stem
    plain = _Plain(path, names, types, delimiter, skip, ts_format, tz, fallback, warn)
    if engine == "plain" or (engine == "auto" and not _worth_fast(path, delimiter, len(names))):
        yield from plain.batches()
        return
    state = _Reading(path, delimiter, skip, ts_format, tz, fallback)
    raw_batches = jtl_fast.scan(path, names, types, delimiter, header=skip == 1, batch_rows=FAST_BATCH_ROWS)
    given = 0
    try:
        # Converted in the prefetch thread too, while the caller writes the previous batch.
        for table in jtl_fast.prefetched(_to_requests(state, raw) for raw in raw_batches if raw.num_rows):
            given += table.num_rows
            yield "requests", table
    except jtl_fast.Unavailable:
        # The plain reader starts over (it names the bad line, or forgives a truncated last one);
        # the rows already given are skipped, so nothing is written twice.
        for kind, table in plain.batches():
            if kind != "requests":
                yield kind, table
            elif given >= table.num_rows:
                given -= table.num_rows
            else:
                yield kind, table.slice(given)
                given = 0
        return
    load = state.load.table()
    if load is not None:
        yield "load", load


def _worth_fast(path: Path, delimiter: str, field_count: int) -> bool:
    """Large enough for the engine's start-up to pay, and not visibly truncated at the end.

    A cut last line is the usual damage (JMeter killed); the plain reader forgives it, so such a
    file goes straight to the plain reader instead of being scanned twice. A last line holding a
    quote cannot be judged by splitting and is left to the engine.
    """
    size = path.stat().st_size
    if size < FAST_MIN_BYTES:
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    if not tail.endswith((b"\n", b"\r")):
        return False
    last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    return b'"' in last or len(last.split(delimiter.encode())) == field_count


class _Plain:
    """The plain reader: pyarrow's streaming CSV reader, single-threaded, memory bounded by BLOCK_SIZE."""

    def __init__(self, path: Path, names: list[str], types: dict[str, pa.DataType], delimiter: str, skip: int,
                 ts_format: str, tz: str, fallback_generator: str, warn: Warn) -> None:
        self.path, self.names, self.types, self.delimiter, self.skip = path, names, types, delimiter, skip
        self.ts_format, self.tz, self.fallback_generator, self.warn = ts_format, tz, fallback_generator, warn

    def batches(self) -> Iterator[tuple[str, pa.Table]]:
        """Batches of `requests`, from the start of the file."""
        state = _Reading(self.path, self.delimiter, self.skip, self.ts_format, self.tz, self.fallback_generator)
        rows = _Rows()
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(column_names=self.names, skip_rows=self.skip, block_size=BLOCK_SIZE),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=rows.handler),
                # Only an empty field is missing: a label or message reading `NA` or `null` is text.
                convert_options=pacsv.ConvertOptions(column_types=self.types, null_values=[""], strings_can_be_null=True,
                                                     quoted_strings_can_be_null=False),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise jtl_errors.as_error(state, exc) from exc
        # One batch is held back: only once the next one parsed cleanly is it sure that the
        # malformed rows seen so far were not in the middle of the file.
        pending: pa.Table | None = None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise jtl_errors.as_error(state, exc) from exc
            if len(rows.invalid) > 1:
                # Only one malformed row (the last line) is ever forgiven.
                raise jtl_errors.malformed(state, rows.invalid[0])
            if pending is not None:
                yield "requests", pending
            pending = _to_requests(state, batch) if batch.num_rows else None
        jtl_errors.check_tail(state, rows.invalid, self.warn)
        if pending is not None:
            yield "requests", pending
        load = state.load.table()
        if load is not None:
            yield "load", load


def read(path: Path, **options: object) -> dict[str, pa.Table]:
    """Read a whole CSV JTL into the canonical `requests` table and its `load` per second."""
    return tables_of(read_batches(path, **options), "requests")  # type: ignore[arg-type]
