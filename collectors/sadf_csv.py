"""`sadf -d` output (semicolon-separated, one header per activity) into `host_metrics`.

Each activity starts with `# hostname;interval;timestamp;<columns>`; the CPU
`all` row is `-1`; restart and comment rows have interval `-1` and are
skipped (counters are never differenced here, so a restart needs no repair).
Timestamps are UTC (`... UTC`), epoch seconds (`-U`) or local with a zone
abbreviation (`-T`/`-t`, read in the `tz` option's zone).

Two readers give the same table. `sadf_csv_blocks` reads the file column-wise, block by
block, and yields it in batches by time range (`read_batches`): it takes every file sadf
writes, restarts included. A file it finds unusual (comment lines, text before the first
header, odd line breaks or bytes, a row with another field count or a value that is not a
plain number; see that module) is read by the line-by-line reader here, which accepts
the same files as before and names the file and line of what is wrong.

While `sadf_csv_blocks` reads, the parsed values wait in an unnamed file in the temporary
folder (`TMPDIR`, else `/tmp`): about 8 bytes per value, 160 MB for a day of `sadf -d -- -A`
at 1-second intervals, gone when the ingest ends. Memory stays near 500 MB whatever the file's
length; the line-by-line reader keeps the whole table in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from collectors import jtl_fast
from collectors import sadf_csv_blocks as blocks
from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.base import CollectorError, check_zone, first_lines, read_text

name = "sadf_csv"

PREFIX = blocks.PREFIX


def detect(path: Path) -> bool:
    """A file whose first line is a `sadf -d` activity header."""
    lines = first_lines(path, 1)
    return bool(lines) and lines[0].startswith(PREFIX)


class _Block:
    def __init__(self, header: list[str], line: int) -> None:
        head = blocks.header(header)
        self.device, self.columns, self.section, self.known = head.device, head.columns, head.section, head.known
        self.line = line
        self.stamps: list[str] = []
        self.devices: list[str | None] = []
        self.values: list[list[str]] = []
        self.lines: list[int] = []


def _flush(path: Path, block: _Block | None, rows: sl.LongRows, local: list[bool], cpus: set[str]) -> None:
    if block is None or block.section is None or not block.stamps:
        return
    values = sl.parse_numbers(path, block.values, block.lines, CollectorError)
    ts, is_local = sl.sadf_times(path, block.stamps, block.lines[0], CollectorError)
    local.append(is_local)
    devices: list[str | None] | None = None
    if block.device is not None:
        devices = block.devices
        if block.section.device == "CPU":
            devices = [sc.cpu_device(d or "") for d in devices]
            cpus.update(d for d in devices if d and d.isdigit())
    rows.add_block(ts, devices, sc.usable_columns(block.section, block.columns), block.columns, values)


def read_lines(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
               **_: object) -> dict[str, pa.Table]:
    """Read `sadf -d` output line by line: the reader of unusual files (see the module docstring)."""
    path = Path(path)
    check_zone(path, tz)
    text = read_text(path, "sadf -d output")
    rows = sl.LongRows()
    local: list[bool] = []
    cpus: set[str] = set()
    hosts: set[str] = set()
    unmapped: list[str] = []
    block: _Block | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith(PREFIX):
            _flush(path, block, rows, local, cpus)
            block = _Block(line[len(PREFIX):].split(";"), number)
            if not block.known:
                unmapped.append(";".join(block.columns[:2]))
            continue
        if line.startswith("#"):
            continue
        fields = line.split(";")
        if block is None or len(fields) < 4:
            raise CollectorError(path, f"expected a `{PREFIX}...` header or a data row, found {line[:60]!r}", number)
        if fields[1] == "-1":  # LINUX-RESTART and COM rows
            continue
        if block.section is None:
            continue
        n = len(block.columns)
        values = fields[4:] if block.device is not None else fields[3:]
        if len(values) != n:
            raise CollectorError(path, f"expected {n} values after the timestamp, found {len(values)}", number)
        hosts.add(fields[0])
        block.stamps.append(fields[2])
        block.devices.append(fields[3] if block.device is not None else None)
        block.values.append(values)
        block.lines.append(number)
    _flush(path, block, rows, local, cpus)
    if block is None:
        raise CollectorError(path, "no sadf -d header found: expected `# hostname;interval;timestamp;...`")
    if len(set(local)) > 1:
        raise CollectorError(path, "mixed UTC and local timestamps in one file")
    host_name = _host(path, hosts, host)
    _warn_unmapped(path, unmapped, warn)
    info = {"host": host_name, "cpu_count": len(cpus) or None}
    table = sl.build_table(rows, host_name, name, tz if local and local[0] else None, info)
    return {"host_metrics": table}


def _host(path: Path, hosts: set[str], host: str | None) -> str:
    if len(hosts) > 1 and host is None:
        raise CollectorError(path, f"several hosts in one file ({', '.join(sorted(hosts))}): split it per host")
    return host or (next(iter(hosts)) if hosts else path.stem)


def _warn_unmapped(path: Path, unmapped: list[str], warn: Callable[[str], None] | None) -> None:
    if warn and unmapped:
        warn(f"{path}: sadf sections not mapped to metrics, skipped: {', '.join(unmapped)}")


def read_batches(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
                 **options: object) -> Iterator[tuple[str, pa.Table]]:
    """Read `sadf -d` output into `host_metrics` batches by time range (one when the file is unusual)."""
    path = Path(path)
    check_zone(path, tz)
    try:
        parsed = blocks.parse(path, tz)
    except blocks.Unusual:
        yield from read_lines(path, tz=tz, host=host, warn=warn, **options).items()
        return
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror or exc}") from exc
    host_name = _host(path, parsed.hosts, host)
    _warn_unmapped(path, parsed.unmapped, warn)
    info = {"host": host_name, "cpu_count": len(parsed.cpus) or None}
    # Built in a thread while the caller writes the previous batch (both release the GIL).
    for table in jtl_fast.prefetched(blocks.batches(parsed, host_name, name, info)):
        yield "host_metrics", table


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
         **options: object) -> dict[str, pa.Table]:
    """Read `sadf -d` output into `host_metrics`."""
    parts = [table for _, table in read_batches(path, tz=tz, host=host, warn=warn, **options)]
    return {"host_metrics": parts[0] if len(parts) == 1 else pa.concat_tables(parts)}
