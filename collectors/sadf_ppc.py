"""`sadf -p` output (tab-separated, one value per line) into `host_metrics`.

Fields are `host, interval, timestamp, device|-, column, value`; CPUs are named
`all`, `cpu0`, `cpu1`. Read with pyarrow's CSV reader. A column name alone can
belong to two activities (`retrans/s` is NFS and TCP), so each row's activity
is the one opened by the last activity-opening column, as sadf prints them in
header order. Restart rows (interval -1, five fields) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.base import CollectorError, check_zone, first_lines

name = "sadf_ppc"

LINE = re.compile(r"^[^\t]+\t-?\d+\t(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( \S+)?|\d{9,})\t[^\t]+\t[^\t]+\t")
FIELDS = ["host", "interval", "timestamp", "device", "column", "value"]


def detect(path: Path) -> bool:
    """Tab-separated lines `host, interval, timestamp, device, column, value`."""
    lines = first_lines(path, 1)
    return bool(lines) and bool(LINE.match(lines[0])) and lines[0].count("\t") == 5


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
         **_: object) -> dict[str, pa.Table]:
    """Read `sadf -p` output into `host_metrics`."""
    path = Path(path)
    check_zone(path, tz)
    bad: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # Single-threaded, so the invalid-row handler gets the row's number for the error.
            read_options=pacsv.ReadOptions(column_names=FIELDS, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={f: pa.string() for f in FIELDS}),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise CollectorError(path, f"not sadf -p output: {exc}") from exc
    for number, text in bad:
        # Restart rows carry `LINUX-RESTART<TAB>(N CPU)` in place of column and value.
        if "\t-1\t" not in text:
            raise CollectorError(path, f"expected 6 tab-separated fields, found {text[:60]!r}", number)
    table = table.filter(pc.not_equal(table["interval"], "-1"))
    columns = table["column"].to_pylist()
    devices = table["device"].to_pylist()
    metrics: list[str | None] = []
    factors: list[float] = []
    section: sc.Section | None = None
    unmapped: set[str] = set()
    skipping = False
    for col, dev in zip(columns, devices, strict=True):
        has_device = dev != "-"
        if section is None or col not in section.columns or (section.device is not None) != has_device:
            section = sc.section_for(col, "?" if has_device else None)
            if section is not None or sc.is_skipped(col):
                skipping = section is None
            elif not skipping:
                unmapped.add(col)
        mapping = section.columns.get(col) if section else None
        metrics.append(mapping[0] if mapping else None)
        factors.append(mapping[1] if mapping else 0.0)
    keep = pa.array([m is not None for m in metrics])
    table = table.filter(keep)
    kept_metrics = [m for m in metrics if m is not None]
    kept_factors = np.array([f for f, m in zip(factors, metrics, strict=True) if m is not None])
    value_text = pc.replace_substring(table["value"], ",", ".")
    try:
        values = pc.cast(value_text, pa.float64()).to_numpy(zero_copy_only=False) * kept_factors
    except pa.ArrowInvalid as exc:
        raise CollectorError(path, f"expected numeric values in the sixth field: {exc}") from exc
    stamps = table["timestamp"].to_pylist()
    ts, is_local = sl.sadf_times(path, stamps, None, CollectorError)
    cpu_like = {m for s in sc.SECTIONS if s.device == "CPU" for m, _ in s.columns.values()}
    dev_out = [None if d == "-" else (sc.cpu_device(d) if m in cpu_like or m.startswith("_") else d)
               for d, m in zip(table["device"].to_pylist(), kept_metrics, strict=True)]
    rows = sl.LongRows()
    rows.ts.append(ts)
    rows.device.append(dev_out)
    rows.metric.append(kept_metrics)
    rows.value.append(values)
    hosts = set(pc.unique(table["host"]).to_pylist())
    if len(hosts) > 1 and host is None:
        raise CollectorError(path, f"several hosts in one file ({', '.join(sorted(hosts))}): split it per host")
    if warn and unmapped:
        warn(f"{path}: sadf columns not mapped to metrics, skipped: {', '.join(sorted(unmapped))}")
    host_name = host or (hosts.pop() if hosts else path.stem)
    cpus = {d for d, m in zip(dev_out, kept_metrics, strict=True) if d and d.isdigit() and m == "cpu.idle_pct"}
    info = {"host": host_name, "cpu_count": len(cpus) or None}
    return {"host_metrics": sl.build_table(rows, host_name, name, tz if is_local else None, info)}
