"""Where a bad CSV JTL is bad: the file and line named in `CollectorError`s of `jmeter_jtl`.

Only the error path comes here, so it may scan the file again: pyarrow and DuckDB report
rows and byte positions, users need the line their editor shows (quoted newlines counted).
The plain reader forgives one malformed row when it is the last line (JMeter killed
mid-write); `check_tail` decides that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from collectors.base import CollectorError, count_lines, ends_with_newline


class Reading(Protocol):
    """What locating an error needs of the file being read."""

    path: Path
    delimiter: str
    skip: int


def check_tail(state: Reading, invalid: list[str], warn: Callable[[str], None] | None) -> None:
    """Forgive one malformed row when it is the file's last line (JMeter killed mid-write)."""
    if not invalid:
        if not ends_with_newline(state.path) and warn:
            warn(f"{state.path}: the last line has no line end; it may be truncated")
        return
    line = _line_of_text(state.path, invalid[0])
    if len(invalid) == 1 and line is not None and line >= count_lines(state.path):
        if warn:
            warn(f"{state.path}:{line}: truncated last line skipped ({invalid[0][:60]!r})")
        return
    raise malformed(state, invalid[0], line)


def malformed(state: Reading, text: str, line: int | None = None) -> CollectorError:
    line = line if line is not None else _line_of_text(state.path, text)
    fields = len(text.split(state.delimiter))
    return CollectorError(state.path, f"malformed row: expected the JTL's fields separated by {state.delimiter!r}, got {fields} field(s) in {text[:80]!r}", line=line)


def _whole_line(data: bytes, start: int, size: int) -> bool:
    before_ok = start == 0 or data[start - 1 : start] in (b"\n", b"\r")
    return before_ok and data[start + size : start + size + 1] in (b"\n", b"\r", b"")


def _line_of_text(path: Path, text: str) -> int | None:
    """1-based line where the raw row `text` starts (error path only: scans the file)."""
    needle = text.encode("utf-8")
    if not needle:
        return None
    offset, newlines, tail = 0, 0, b""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            data = tail + chunk
            found = data.find(needle)
            # The row must be a whole line: a short row can be the prefix of a valid one.
            while found != -1 and not _whole_line(data, found, len(needle)):
                found = data.find(needle, found + 1)
            if found != -1:
                return newlines + data[:found].count(b"\n") + 1
            keep = min(len(data), len(needle))
            newlines += data[: len(data) - keep].count(b"\n")
            tail = data[len(data) - keep :]
            offset += len(chunk)
    return None


def line_of_row(state: Reading, row: int) -> int | None:
    """1-based line of data row `row` (0-based), counting quoted newlines (error path only)."""
    import csv  # only to place an error message; the data itself is read by pyarrow

    with open(state.path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=state.delimiter)
        start = 1
        for index, _ in enumerate(reader):
            if index == row + state.skip:
                return start
            start = reader.line_num + 1
    return None


def as_error(state: Reading, exc: Exception) -> CollectorError:
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "invalid UTF8" in text:
        return CollectorError(state.path, "not UTF-8 text: JMeter writes JTL files in UTF-8 (re-encode the file)", line=_first_non_utf8_line(state.path))
    found = re.search(r"column #(\d+).*invalid value '([^']*)'", text)
    if found:
        index, value = int(found.group(1)), found.group(2)
        line = _first_line_with(state, index, value)
        return CollectorError(state.path, f"expected an integer in a numeric column, got {value!r}", line=line)
    return CollectorError(state.path, f"malformed CSV: {text}")


def _first_non_utf8_line(path: Path) -> int | None:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _first_line_with(state: Reading, column: int, value: str) -> int | None:
    import csv  # error path only, see line_of_row

    with open(state.path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=state.delimiter)
        start = 1
        for index, fields in enumerate(reader):
            if index >= state.skip and len(fields) > column and fields[column] == value:
                return start
            start = reader.line_num + 1
    return None
