"""The collector contract and its one error type.

A collector is a module with:

- `name: str`, the name used by `--collector` and recorded in the catalog;
- `detect(path) -> bool`, a cheap sniff of the file name and first bytes;
- `read(path, **options) -> dict[str, pyarrow.Table]`, canonical tables keyed
  by table name (see `capacity.schema.TABLES`).

A collector whose input can be large may also offer
`read_batches(path, **options) -> Iterator[tuple[str, pyarrow.Table]]`, which
the store writes to Parquet as the batches come, so memory does not grow with
the file. Options every collector accepts and may ignore: `tz` (IANA zone of
timestamps written without one), `host` (host name when the file lacks it).

The helpers below are the few steps many collectors share (checking the `tz`
option, reading a whole text file, a date option with the file's modification
date as fallback, line counts, text CSV reading, rows to a canonical table), so
each one fails the same way everywhere: with a `CollectorError`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.csv as pacsv

from capacity.schema import conform, empty

SNIFF_BYTES = 64 * 1024


class CollectorError(Exception):
    """Bad input: carries the file, the line (1-based, when known) and the reason."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class Collector(Protocol):
    """What the registry expects of a collector module."""

    name: str

    def detect(self, path: Path) -> bool: ...

    def read(self, path: Path, **options: object) -> dict[str, pa.Table]: ...


def head_bytes(path: str | Path, size: int = SNIFF_BYTES) -> bytes:
    """The first `size` bytes of a file (empty for unreadable paths)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def head_text(path: str | Path, size: int = SNIFF_BYTES) -> str:
    """The first bytes of a file as text, without a UTF-8 BOM; empty if it is not text."""
    raw = head_bytes(path, size)
    if b"\x00" in raw:
        return ""
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def first_lines(path: str | Path, count: int = 5) -> list[str]:
    """The first `count` non-empty lines of a text file, for sniffing."""
    lines = [ln.rstrip("\r") for ln in head_text(path).split("\n")]
    return [ln for ln in lines if ln.strip()][:count]


def check_zone(path: str | Path, tz: str) -> ZoneInfo:
    """The IANA zone named by the `tz` option; a CollectorError naming `path` if there is none."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise CollectorError(path, f"unknown time zone {tz!r}: expected an IANA name such as Europe/Paris") from exc


def option_time(path: str | Path, ts: object) -> dt.datetime | None:
    """The `ts` option as an aware UTC datetime: a datetime (naive means UTC), epoch seconds, or None."""
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return ts.astimezone(dt.UTC) if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise CollectorError(path, f"option ts={ts!r}: expected a datetime or epoch seconds") from exc


def read_text(path: str | Path, expected: str) -> str:
    """The whole file as UTF-8 text, a leading BOM dropped, line ends as written.

    A decode error names the byte offset in the file and what the file should
    have been (`expected`, e.g. "sar text output"); an unreadable file is a
    CollectorError too.
    """
    try:
        # Decoding the bytes in one go (not a text-mode read) keeps the offset of a bad byte exact.
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CollectorError(path, f"not UTF-8 text at byte {exc.start}: expected {expected}") from exc
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror or exc}") from exc


def given_date(path: str | Path, date: object, warn: Callable[[str], None] | None, why: str) -> dt.date:
    """The `date` option (YYYY-MM-DD) for formats that print times of day only.

    Without the option the file's modification date is used, and `warn` is told
    so, starting with `why` (e.g. "top prints no date").
    """
    if date:
        try:
            return dt.date.fromisoformat(str(date))
        except ValueError as exc:
            raise CollectorError(path, f"option date={date!r} is not YYYY-MM-DD") from exc
    try:
        day = dt.date.fromtimestamp(os.path.getmtime(path))
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror or exc}") from exc
    if warn:
        warn(f"{path}: {why}; using the file's modification date {day} (give date=YYYY-MM-DD)")
    return day


def ends_with_newline(path: str | Path) -> bool:
    """Whether the file's last byte is `\\n` (true for an empty file): else its last line may be cut."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror or exc}") from exc


def count_lines(path: str | Path) -> int:
    """Number of lines in the file, a last line without `\\n` included (read in 1 MiB chunks)."""
    count = 0
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                count += chunk.count(b"\n")
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror or exc}") from exc
    return count + (0 if ends_with_newline(path) else 1)


def csv_error_row(exc: BaseException) -> int | None:
    """The 1-based row (header included) that pyarrow names in a CSV parse error (`Row #N`), if any."""
    found = re.search(r"Row #(\d+)", str(exc))
    return int(found.group(1)) if found else None


def csv_batches(reader: pacsv.CSVStreamingReader, error: Callable[[Exception], CollectorError]) -> Iterator[pa.RecordBatch]:
    """The batches of a streaming CSV reader; a parse or decode error is raised as `error(exc)`.

    `error` is called only when the error happens, so it may name the line
    reached so far by the caller's loop.
    """
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise error(exc) from exc
        yield batch


def read_csv_text(path: str | Path, columns: Iterable[str], what: str,
                  line_of: Callable[[int], int] | None = None) -> pa.Table:
    """A whole CSV file with a header row; `columns` are read as text (empty is "", not null).

    Quoted values may span lines. A parse error is a CollectorError "malformed
    <what>: ..." naming pyarrow's row, or the line `line_of(row)` maps it to
    when records and lines differ.
    """
    try:
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False),
            # Single-threaded, so pyarrow numbers the row of a parse error.
            read_options=pacsv.ReadOptions(use_threads=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        row = csv_error_row(exc)
        line = line_of(row) if row is not None and line_of is not None else row
        raise CollectorError(path, f"malformed {what}: {exc}", line=line) from exc


def rows_table(rows: list[dict[str, object]], kind: str, source: str) -> pa.Table:
    """The canonical `kind` table of row dicts, timestamps given as epoch milliseconds.

    Keys missing from every row become null columns, `source` fills the source
    column; an empty list gives the empty table.
    """
    if not rows:
        return empty(kind)
    spec = empty(kind).schema
    cols: dict[str, pa.Array] = {}
    for column in spec.names:
        values = [r.get(column) for r in rows]
        if column == "source" or all(v is None for v in values):
            continue
        if pa.types.is_timestamp(spec.field(column).type):
            cols[column] = pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        else:
            cols[column] = pa.array(values, spec.field(column).type)
    cols["source"] = pa.array([source] * len(rows), pa.string())
    return conform(pa.table(cols), kind)


def tables_of(batches: Iterable[tuple[str, pa.Table]], main: str) -> dict[str, pa.Table]:
    """The batches of a `read_batches`, joined per table; an empty `main` table when none came."""
    parts: dict[str, list[pa.Table]] = {}
    for kind, table in batches:
        parts.setdefault(kind, []).append(table)
    if not parts.get(main):
        from capacity.schema import empty

        return {main: empty(main)}
    return {kind: pa.concat_tables(tables, promote_options="permissive") for kind, tables in parts.items()}

