"""`vzlist -o <fields>` table output into `limits` (and `host_metrics` for the load average).

The header names the fields (FORMATS.md A5.2): UBC abbreviations such as
`PRIVVMP`, `TCPSNDB`, with `.M/.B/.L/.F` for maxheld, barrier, limit and
failcnt; the bare name is `held`. Each container row gives one `limits` row
per resource. `LAVERAGE` (`0.15/0.21/0.18`) goes to `host_metrics` as
`load.1m/5m/15m`. Other columns (status, IP, ...) are not measurements and
are left out. `-` (stopped container) reads as null.

The host of a row is the `host` option, else the container's `HOSTNAME`
column, else the file stem: measurements taken inside the container (top,
sar) carry that host name too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, first_lines, option_time, read_text
from collectors.openvz_beancounters import reading, table_of

name = "vzlist"

# vzlist.c header abbreviation -> beancounter resource name.
UBC_HEADERS = {
    "KMEMSIZE": "kmemsize", "LOCKEDP": "lockedpages", "PRIVVMP": "privvmpages", "SHMP": "shmpages",
    "NPROC": "numproc", "PHYSP": "physpages", "VMGUARP": "vmguarpages", "OOMGUARP": "oomguarpages",
    "NTCPSOCK": "numtcpsock", "NFLOCK": "numflock", "NPTY": "numpty", "NSIGINFO": "numsiginfo",
    "TCPSNDB": "tcpsndbuf", "TCPRCVB": "tcprcvbuf", "OTHSOCKB": "othersockbuf", "DGRAMRB": "dgramrcvbuf",
    "NOTHSOCK": "numothersock", "DCACHESZ": "dcachesize", "NFILE": "numfile", "NIPTENT": "numiptent",
    "SWAPP": "swappages",
}
SUFFIXES = {"": "held", "M": "maxheld", "B": "barrier", "L": "limit", "F": "failcnt"}
ID_HEADERS = ("CTID", "VEID", "NAME")


def _header(line: str) -> list[str] | None:
    fields = line.split()
    if not fields or fields[0] not in ID_HEADERS:
        return None
    known = [f for f in fields if f.split(".")[0] in UBC_HEADERS or f in ("LAVERAGE", "HOSTNAME", "STATUS", "IP_ADDR", "NPROC")]
    return fields if len(known) >= 1 and len(fields) >= 2 else None


def _lines(path: Path) -> list[str]:
    return [ln for ln in first_lines(path, 3) if not ln.lstrip().startswith("#")]


def detect(path: Path) -> bool:
    """A header starting `CTID` (or `VEID`/`NAME`) with vzlist field names, then rows starting with an id."""
    lines = _lines(path)
    if len(lines) < 2 or _header(lines[0]) is None:
        return False
    return re.match(r"^\s*\S+\s", lines[1]) is not None and len(lines[1].split()) == len(lines[0].split())


def _int(path: Path, text: str, line: int, column: str) -> int | None:
    if text == "-":
        return None
    try:
        return int(text)
    except ValueError:
        raise CollectorError(path, f"column {column}: expected an integer or `-`, found {text!r}", line=line) from None


def read(path: Path, host: str | None = None, ts: datetime | float | None = None, page_size: int = 4096,
         warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read a `vzlist -o` table into `limits` and, when it has LAVERAGE, `host_metrics`."""
    path = Path(path)
    text = read_text(path, "vzlist output")
    when = option_time(path, ts)
    header: list[str] | None = None
    limits: list[dict[str, object]] = []
    metrics: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if header is None:
            header = _header(line)
            if header is None:
                raise CollectorError(path, f"expected a vzlist header starting CTID, found {line.strip()[:80]!r}", line=number)
            continue
        cells = line.split()
        if len(cells) != len(header):
            raise CollectorError(path, f"{len(cells)} fields but the header has {len(header)} ({' '.join(header)}); use `vzlist -t` for untrimmed fields", line=number)
        row = dict(zip(header, cells, strict=True))
        container = row[header[0]]
        row_host = host or (row.get("HOSTNAME") if row.get("HOSTNAME") not in (None, "-") else None) or path.stem
        per_resource: dict[str, dict[str, int | None]] = {}
        for column, cell in row.items():
            base, _, suffix = column.partition(".")
            if base in UBC_HEADERS and suffix.upper() in SUFFIXES:
                per_resource.setdefault(UBC_HEADERS[base], {})[SUFFIXES[suffix.upper()]] = _int(path, cell, number, column)
        for resource, values in per_resource.items():
            try:
                limits.append(dict(reading(row_host, container, resource, when, values, page_size), source=name))
            except OverflowError as exc:
                raise CollectorError(path, str(exc), line=number) from None
        if "LAVERAGE" in row and row["LAVERAGE"] != "-":
            parts = row["LAVERAGE"].split("/")
            if len(parts) != 3:
                raise CollectorError(path, f"LAVERAGE: expected `1m/5m/15m`, found {row['LAVERAGE']!r}", line=number)
            for metric, part in zip(("load.1m", "load.5m", "load.15m"), parts, strict=True):
                try:
                    value = float(part)
                except ValueError:
                    raise CollectorError(path, f"LAVERAGE: {part!r} is not a number", line=number) from None
                metrics.append({"ts": when, "host": row_host, "metric": metric, "value": value,
                                "labels": json.dumps({"container": container}), "source": name})
    if header is None or (not limits and not metrics):
        raise CollectorError(path, "no container rows: expected a CTID header and one row per container")
    out = {"limits": table_of(limits)}
    if metrics:
        if when is None:
            # host_metrics needs a time; a vzlist table has none of its own.
            when_ts = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if warn:
                warn(f"{path}: no `ts` option; the load averages take the file's modification time {when_ts.isoformat()}")
            for m in metrics:
                m["ts"] = when_ts
        data = {c: [m[c] for m in metrics] for c in ("ts", "host", "metric", "value", "labels", "source")}
        data["ts"] = pa.array(data["ts"], pa.timestamp("ms", tz="UTC"))  # type: ignore[assignment]
        out["host_metrics"] = conform(pa.table(data), "host_metrics")
    return out
