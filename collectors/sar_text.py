"""`sar` text output (any section of `sar -A`, live or from a file) into `host_metrics`.

Accepts what users paste: 24-hour or 12-hour (`11:23:50 PM`) times, `.` or `,`
decimals (de_DE, fr_FR), translated `Average:`/`Summary:` labels (skipped),
`LINUX RESTART` lines, days rolling over midnight and several reports (days)
stitched into one file. Sections are recognised by their header row, never
by position (file mode prints activity after activity, live mode interval
after interval). Times carry no zone: they are read in the `tz` option's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.base import CollectorError, check_zone, first_lines, given_date, head_text, read_text

name = "sar_text"

HEADER = re.compile(r"^(\S+) (\S+) \((.+?)\)\s+(\S+)\s+_(\S+)_\s+\((\d+) CPU\)\s*$")
TIME = re.compile(r"^(\d{1,2}):(\d\d):(\d\d)(?:\s+([AP]M))?(?:\s+|$)")
LABEL = re.compile(r"^[^\d\s][^:]{0,30}:")  # Average:, Summary:, Durchschn.:, Moyenne :
NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")
RESTART = re.compile(r"LINUX RESTART\s*(?:\((\d+) CPU\))?")
HALF_DAY = 43200


def _looks_like_body(line: str) -> bool:
    m = TIME.match(line)
    if not m:
        return False
    tokens = line[m.end():].split()
    return bool(tokens) and (tokens[0] in sc.DEVICE_COLUMNS or sc.section_for(tokens[0], None) is not None)


def detect(path: Path) -> bool:
    """The sar report header (`Linux <release> (<host>) <date> _<arch>_ (N CPU)`), or a pasted section."""
    lines = first_lines(path, 2)
    if not lines:
        return False
    return bool(HEADER.match(lines[0])) or _looks_like_body(lines[0])


def _zone(path: Path, tz: str) -> str:
    if re.fullmatch(r"[+-]\d\d:\d\d", tz):  # a fixed UTC offset, e.g. "+05:30"
        return tz
    check_zone(path, tz)
    return tz


def _parse_date(path: Path, text: str, day_first: bool, line: int) -> dt.date:
    m = re.fullmatch(r"(\d{4})[-/](\d\d)[-/](\d\d)", text) or re.fullmatch(r"(\d{4})\D(\d\d)\D(\d\d)\D", text)
    if m:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    m = re.fullmatch(r"(\d\d)([./])(\d\d)\2(\d\d(?:\d\d)?)", text)
    if not m:
        raise CollectorError(path, f"unrecognised report date {text!r}: expected MM/DD/YY, DD.MM.YYYY or YYYY-MM-DD (or give date=)", line)
    a, b, year = int(m[1]), int(m[3]), int(m[4])
    year += 2000 if year < 100 else 0
    # A dot is always day-first (de_DE); a slash is ambiguous, so decide by range, then by locale hints.
    if m[2] == "." or a > 12 or (day_first and b <= 12):
        a, b = b, a
    try:
        return dt.date(year, a, b)
    except ValueError as exc:
        raise CollectorError(path, f"invalid report date {text!r}: {exc}", line) from exc


class _Block:
    """Rows of one section under one header, flushed as a whole to `LongRows`."""

    def __init__(self, section: sc.Section, columns: list[str], device_at: int | None) -> None:
        self.section = section
        self.columns = columns
        self.device_at = device_at
        self.mapping = sc.usable_columns(section, columns)
        self.ts: list[int] = []
        self.devices: list[str | None] = []
        self.values: list[list[str]] = []
        self.lines: list[int] = []

    def add(self, path: Path, ts: int, tokens: list[str], line: int) -> None:
        n = len(self.columns)
        if self.device_at is None:
            device, values = None, tokens
        elif self.device_at == 0:
            device, values = tokens[0], tokens[1:]
        else:  # -F puts the filesystem name last, and names can hold spaces.
            device, values = " ".join(tokens[n:]), tokens[:n]
        if len(values) != n or (self.device_at is not None and not device):
            raise CollectorError(path, f"expected {n} values for columns {' '.join(self.columns[:4])} ..., found {len(tokens)} fields", line)
        if self.section.device == "CPU" and device is not None:
            device = sc.cpu_device(device)
        self.ts.append(ts)
        self.devices.append(device)
        self.values.append(values)
        self.lines.append(line)

    def flush(self, path: Path, rows: sl.LongRows) -> None:
        if not self.ts:
            return
        values = sl.parse_numbers(path, self.values, self.lines, CollectorError)
        devices = self.devices if self.device_at is not None else None
        rows.add_block(np.array(self.ts, dtype=np.int64), devices, self.mapping, self.columns, values)
        self.ts, self.devices, self.values, self.lines = [], [], [], []


def read(path: Path, tz: str = "UTC", date: object = None, warn: Callable[[str], None] | None = None,
         host: str | None = None, **_: object) -> dict[str, pa.Table]:
    """Read a sar text report into `host_metrics` (host and CPU count in the schema metadata)."""
    path = Path(path)
    tz = _zone(path, tz)
    text = read_text(path, "sar text output")
    day_first = bool(re.search(r"\s\d+,\d\d(\s|$)", head_text(path)))
    rows = sl.LongRows()
    info: dict[str, object] = {"host": host, "cpu_count": None}
    base: dt.date | None = None
    day = 0
    last_abs = -1
    seg_start: tuple[int, int] | None = None
    block: _Block | None = None
    unmapped: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        head = HEADER.match(line)
        if head:
            if block:
                block.flush(path, rows)
            block = None
            if info["host"] is not None and info["host"] != head[3] and host is None:
                raise CollectorError(path, f"a second report header names host {head[3]!r}, the first named {info['host']!r}: split the file per host", number)
            info["host"] = host or head[3]
            info["cpu_count"] = info["cpu_count"] or int(head[6])
            base = dt.date.fromisoformat(str(date)) if date else _parse_date(path, head[4], day_first, number)
            day, last_abs, seg_start = 0, -1, None
            continue
        m = TIME.match(line)
        if not m:
            if LABEL.match(line):
                continue
            raise CollectorError(path, f"expected a sar line starting with a time, an Average/Summary line or the report header, found {line[:60]!r}", number)
        if base is None:
            base = given_date(path, date, warn, "no sar header line")
        hour = int(m[1])
        if m[4]:
            hour = hour % 12 + (12 if m[4] == "PM" else 0)
        t = hour * 3600 + int(m[2]) * 60 + int(m[3])
        tokens = line[m.end():].split()
        is_header = len(tokens) >= 2 and not NUMBER.match(tokens[0]) and not NUMBER.match(tokens[1]) and tokens[0] != "COM"
        if is_header and seg_start is not None and t == seg_start[1]:
            # File mode starts every activity again at the segment's first record.
            day = seg_start[0]
        elif last_abs >= 0 and day * 86400 + t < last_abs - HALF_DAY:
            day += 1
        last_abs = day * 86400 + t
        restart = RESTART.match(" ".join(tokens))
        if restart:
            if block:
                block.flush(path, rows)
            block, seg_start = None, None
            if restart[1] and info["cpu_count"] is None:
                info["cpu_count"] = int(restart[1])
            continue
        if not tokens or tokens[0] == "COM":
            continue
        if is_header:
            if block:
                block.flush(path, rows)
            block = _header_block(tokens, unmapped)
            if seg_start is None:
                seg_start = (day, t)
            continue
        if block is None:
            raise CollectorError(path, f"data row before any section header: {line[:60]!r}", number)
        ts_ms = ((base - dt.date(1970, 1, 1)).days * 86400 + last_abs) * 1000
        block.add(path, ts_ms, tokens, number)
    if block:
        block.flush(path, rows)
    if len(rows) == 0 and base is None:
        raise CollectorError(path, "no sar header line and no data rows: expected sar text output")
    if warn and unmapped - {"<skip>"}:
        warn(f"{path}: sar sections not mapped to metrics, skipped: {', '.join(sorted(unmapped - {'<skip>'}))}")
    host_name = str(info["host"] or path.stem)
    table = sl.build_table(rows, host_name, name, tz, {"host": host_name, "cpu_count": info["cpu_count"]})
    return {"host_metrics": table}


def _header_block(tokens: list[str], unmapped: set[str]) -> _Block:
    if tokens[0] in sc.DEVICE_COLUMNS:
        device, at, columns = tokens[0], 0, tokens[1:]
    elif tokens[-1] == "FILESYSTEM":
        device, at, columns = "FILESYSTEM", -1, tokens[:-1]
    else:
        device, at, columns = None, None, tokens
    section = sc.section_for(columns[0], device) if columns else None
    if section is None:
        unmapped.add("<skip>" if (not columns or sc.is_skipped(columns[0]) or device in ("INTR", "TTY"))
                     else f"{device or ''} {columns[0]}".strip())
        return _SKIP
    return _Block(section, columns, at)


class _Skip(_Block):
    """A known section we do not keep: rows are accepted and dropped."""

    def __init__(self) -> None:
        super().__init__(sc.SECTIONS[0], [], None)

    def add(self, path: Path, ts: int, tokens: list[str], line: int) -> None:
        return None


_SKIP = _Skip()
