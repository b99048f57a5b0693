"""Fast path of the JMeter CSV JTL reader: DuckDB's parallel CSV scanner.

`scan` gives the same raw batches as the plain reader of `collectors.jmeter_jtl`
(JMeter column names, `int64` numeric columns, `string` text columns, empty
unquoted fields as nulls, quoted empty fields as empty strings), so both paths
feed the same conversion into `requests`. It is strict: a row DuckDB cannot
split or convert raises `Unavailable`, and the caller then reads the file with
the plain reader, which names the line. DuckDB's own error messages are never
shown to users, since its line numbers count differently.

This is not a collector (no `name`, not in the registry): it only parses.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

# DuckDB's memory for the scan; the batches handed to Python are extra, bounded by `batch_rows`.
MEMORY_LIMIT = "512MB"


T = TypeVar("T")
_DONE = object()


class Unavailable(Exception):
    """DuckDB cannot read this file as given (missing engine, rejected dialect, malformed or unconvertible row)."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_type(arrow_type: pa.DataType) -> str:
    return "BIGINT" if pa.types.is_integer(arrow_type) else "VARCHAR"


def query(path: Path, names: list[str], types: dict[str, pa.DataType], delimiter: str, header: bool) -> str:
    """The `read_csv` query reading the JTL with the given columns, types and dialect, strictly."""
    columns = ", ".join(f"{_literal(n)}: {_literal(_sql_type(types[n]))}" for n in names)
    options = [
        f"header = {str(header).lower()}",
        f"delim = {_literal(delimiter)}",
        "quote = '\"'",
        "escape = '\"'",
        f"columns = {{{columns}}}",
        "auto_detect = false",
        # A short, long or unconvertible row is an error, never padded, skipped or nulled.
        "strict_mode = true",
        "null_padding = false",
        "ignore_errors = false",
        # JMeter writes "" for an empty string it had to quote; only unquoted empty fields are missing values.
        "allow_quoted_nulls = false",
        "nullstr = ''",
        "parallel = true",
    ]
    return f"SELECT * FROM read_csv({_literal(str(path))}, {', '.join(options)})"


def scan(
    path: Path,
    names: list[str],
    types: dict[str, pa.DataType],
    delimiter: str,
    header: bool,
    batch_rows: int,
    threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Raw batches of the JTL at `path`, in file order, typed as `types` says.

    Raises `Unavailable` (possibly after some batches were given) when DuckDB
    is missing or rejects the file; nothing else escapes from the engine.
    """
    try:
        import duckdb
    except ImportError as exc:
        raise Unavailable("duckdb is not installed") from exc
    try:
        # Spill to the system's temporary folder: DuckDB's default is `.tmp` in the working directory.
        spill = os.path.join(tempfile.gettempdir(), "capacity-duckdb-spill")
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": threads or os.cpu_count() or 1,
                                     "preserve_insertion_order": True, "temp_directory": spill})
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error as exc:
        raise Unavailable(str(exc)) from exc
    try:
        # A relation streams; `execute` would materialise the whole result first.
        relation = con.sql(query(path, names, types, delimiter, header))
        # `to_arrow_reader` since DuckDB 1.4, `fetch_arrow_reader` before.
        open_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
        reader = open_reader(batch_rows)
        schema = pa.schema([(n, types[n]) for n in names])
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            if batch.schema != schema:
                batch = pa.RecordBatch.from_arrays([batch.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)
            yield batch
    except (duckdb.Error, pa.ArrowException, OSError) as exc:  # pyarrow reports a failed stream as OSError
        raise Unavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    finally:
        con.close()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced in a thread up to `depth` ahead of the consumer.

    Parsing (DuckDB, Arrow compute) and the consumer's work (Parquet writing, hashing) release
    the GIL, so they overlap on separate cores. An exception in the producer is raised to the
    consumer at the point it happened; closing the consumer stops the producer.
    """
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((False, exc))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="jtl-fast-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            got = box.get()
            if got is _DONE:
                return
            ok, value = got  # type: ignore[misc]
            if not ok:
                raise value
            yield value
    finally:
        stop.set()
        worker.join()
