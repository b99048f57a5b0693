"""`sadf -j` output (one JSON document) into `host_metrics`.

JSON keys are sar's column names without units (`usr`, `memfree`, `rkB`,
`util-percent`); `sysstat_columns.json_column` maps them to the same metrics
as the text readers. The disk object carries both the old sector and the new
kB fields; only the kB ones are kept. Restarts are listed apart from the
statistics and need no handling, as no counter is differenced here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.base import CollectorError, check_zone, head_text, read_text

name = "sadf_json"


def detect(path: Path) -> bool:
    """A JSON document opening with `{"sysstat": {"hosts": [`."""
    return bool(re.match(r'\s*\{\s*"sysstat"\s*:\s*\{\s*"hosts"\s*:\s*\[', head_text(path, 4096)))


def timestamp_ms(path: Path, stamp: dict[str, object], where: str) -> tuple[int, bool]:
    """Epoch milliseconds of a sadf timestamp object/element, and whether it is local time."""
    try:
        clock = dt.datetime.fromisoformat(f"{stamp['date']} {stamp['time']}")
    except (KeyError, ValueError) as exc:
        raise CollectorError(path, f"{where}: expected a timestamp with date and time, found {stamp!r}") from exc
    local = str(stamp.get("utc", "1")) == "0" or str(stamp.get("tz", "UTC")) not in ("UTC", "GMT")
    return int(clock.replace(tzinfo=dt.UTC).timestamp() * 1000), local


def _walk(element: str, obj: object, ts: int, rows: sl.StructuredRows) -> None:
    if isinstance(obj, list):
        for item in obj:
            _walk(element, item, ts, rows)
    elif isinstance(obj, dict):
        rows.add_item(element, ts, obj)
        for key, child in obj.items():
            if isinstance(child, (dict, list)):
                # Nested objects such as io-reads belong to their parent's activity.
                _walk(key if sc.is_element(key) else element, child, ts, rows)


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
         **_: object) -> dict[str, pa.Table]:
    """Read `sadf -j` output into `host_metrics`."""
    path = Path(path)
    check_zone(path, tz)
    text = read_text(path, "sadf -j JSON")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CollectorError(path, f"invalid JSON ({exc.msg}, column {exc.colno}): expected sadf -j output", exc.lineno) from exc
    return {"host_metrics": document_table(path, doc, tz, host, warn, name)}


def document_table(path: Path, doc: object, tz: str, host: str | None,
                   warn: Callable[[str], None] | None, source: str) -> pa.Table:
    """The host_metrics table of a parsed sadf -j document (also used for binary sa files)."""
    try:
        hosts = doc["sysstat"]["hosts"]  # type: ignore[index]
    except (KeyError, TypeError) as exc:
        raise CollectorError(path, 'expected {"sysstat": {"hosts": [...]}} at the top level', 1) from exc
    if len(hosts) != 1:
        raise CollectorError(path, f"expected one host in sysstat.hosts, found {len(hosts)}: split the file per host")
    doc_host = hosts[0]
    rows = sl.StructuredRows()
    local = False
    for i, stats in enumerate(doc_host.get("statistics", [])):
        if stats == {}:  # sadf -j -e ends the list with an empty object
            continue
        if not isinstance(stats, dict) or "timestamp" not in stats:
            raise CollectorError(path, f"statistics[{i}]: expected an object with a timestamp")
        ts, local = timestamp_ms(path, stats["timestamp"], f"statistics[{i}]")
        for key, value in stats.items():
            if key != "timestamp":
                _walk(key, value, ts, rows)
    rows.close()
    if warn and rows.unmapped:
        warn(f"{path}: sadf -j fields not mapped to metrics, skipped: {', '.join(sorted(rows.unmapped))}")
    host_name = host or str(doc_host.get("nodename") or path.stem)
    info = {"host": host_name, "cpu_count": doc_host.get("number-of-cpus") or len(rows.cpus) or None}
    return sl.build_table(rows, host_name, source, tz if local else None, info)
