"""OpenVZ `/proc/user_beancounters` (one or many containers, one snapshot or a series) into `limits`.

A line holding `<uid>:` starts a container (FORMATS.md A5.1); the lines after
it belong to that container. A new `Version:` line starts a new snapshot, so
concatenated `cat /proc/user_beancounters` outputs read as a series; a
`# ts=<epoch>` line before a snapshot gives its time (else the `ts` option,
else null: the table allows an unknown time rather than a guessed one).

Page-counted resources (names ending in `pages`) are converted to bytes with
the `page_size` option (4096 on x86) and keep `unit="pages"` to say so.
Unlimited barriers and limits (2147483647, 9223372036854775807) become null.
`failcnt` is kept as written: above zero it means the limit refused
allocations (the Moodle seed's `tcpsndbuf` 417584502).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, first_lines, option_time, read_text

name = "openvz_beancounters"

UNLIMITED = {2147483647, 9223372036854775807}
INT64_MAX = 2**63 - 1
BYTE_RESOURCES = {"kmemsize", "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "dcachesize"}
HEADER = re.compile(r"^\s*uid\s+resource\s+held\s+maxheld\s+barrier\s+limit\s+failcnt\s*$")
ROW = re.compile(r"^\s*(?:(\d+):)?\s*([a-z][a-z0-9_]*)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s*$")
FRAME = re.compile(r"^# ts=(\d+(?:\.\d+)?)\s*$")
FIELDS = ("held", "maxheld", "barrier", "limit", "failcnt")
COLUMNS = ("host", "container", "resource", "ts", *FIELDS, "unit", "source")


def unit_of(resource: str) -> str:
    """`pages`, `bytes` or `items`, from the resource name (OpenVZ wiki "UBC parameter units")."""
    if resource.endswith("pages"):
        return "pages"
    if resource in BYTE_RESOURCES:
        return "bytes"
    return "items"


def reading(host: str, container: str, resource: str, ts: datetime | None, values: dict[str, int | None],
            page_size: int = 4096) -> dict[str, object]:
    """One `limits` row: unlimited -> null, pages -> bytes; shared with the vzlist collector.

    Raises OverflowError when a value (in bytes) does not fit 64 bits.
    """
    unit = unit_of(resource)
    row: dict[str, object] = {"host": host, "container": container, "resource": resource, "ts": ts, "unit": unit, "source": name}
    for field in FIELDS:
        value = values.get(field)
        if value is not None and field in ("barrier", "limit") and value in UNLIMITED:
            value = None
        if value is not None and unit == "pages" and field != "failcnt":
            value *= page_size
        if value is not None and not -INT64_MAX <= value <= INT64_MAX:
            raise OverflowError(f"{resource} {field} {value} does not fit a 64-bit integer")
        row[field] = value
    return row


def table_of(rows: list[dict[str, object]]) -> pa.Table:
    """`limits` rows as a conformed table."""
    data = {c: [r.get(c) for r in rows] for c in COLUMNS}
    data["ts"] = pa.array(data["ts"], pa.timestamp("ms", tz="UTC"))  # type: ignore[assignment]
    return conform(pa.table(data), "limits")


def detect(path: Path) -> bool:
    """`Version: N` then the `uid resource held maxheld barrier limit failcnt` header (optionally after `# ts=`)."""
    lines = [ln for ln in first_lines(path, 4) if not FRAME.match(ln)]
    return len(lines) >= 2 and lines[0].startswith("Version:") and HEADER.match(lines[1]) is not None


def read(path: Path, host: str | None = None, ts: datetime | float | None = None, page_size: int = 4096,
         **_: object) -> dict[str, pa.Table]:
    """Read every container and snapshot of a beancounters file into `limits`."""
    path = Path(path)
    text = read_text(path, "/proc/user_beancounters")
    host = host or path.stem
    option_ts = option_time(path, ts)
    frame_ts: datetime | None = None
    current_ts: datetime | None = None
    container: str | None = None
    rows: list[dict[str, object]] = []
    seen_version = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if m := FRAME.match(line.strip()):
            frame_ts = datetime.fromtimestamp(float(m.group(1)), UTC)
            continue
        if line.startswith("Version:"):
            seen_version = True
            current_ts = frame_ts or option_ts
            frame_ts, container = None, None
            continue
        if HEADER.match(line):
            continue
        m = ROW.match(line)
        if not m or not seen_version:
            expected = "a `Version:` line first" if not seen_version else "`[uid:] resource held maxheld barrier limit failcnt`"
            raise CollectorError(path, f"expected {expected}, found {line.strip()[:80]!r}", line=number)
        if m.group(1) is not None:
            container = m.group(1)
        if container is None:
            raise CollectorError(path, "resource line before any `<uid>:` container id", line=number)
        resource = m.group(2)
        if resource == "dummy":
            continue  # the kernel pads the table with "dummy" rows: always 0 / unlimited, no resource
        values = dict(zip(FIELDS, (int(g) for g in m.groups()[2:]), strict=True))
        try:
            rows.append(reading(host, container, resource, current_ts, values, page_size))
        except OverflowError as exc:
            raise CollectorError(path, str(exc), line=number) from None
    if not rows:
        raise CollectorError(path, "no beancounter rows: expected `<uid>: resource held maxheld barrier limit failcnt` lines")
    return {"limits": table_of(rows)}
