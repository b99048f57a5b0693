"""procps `top -b` output (and top screens copied from a terminal) into `host_metrics` and `processes`.

Frames start with `top - HH:MM:SS up ...`. The summary lines (load average,
Tasks, `%Cpu(s)` and per-CPU `%CpuN`, `KiB/MiB/GiB Mem` and `Swap`) go to
`host_metrics`; the process table, whatever columns top was configured with,
to `processes`, the command (`-c` full command lines included) being the last
column. Translated labels and comma decimals (de_DE, fr_FR) are accepted.

top prints only a time of day: the date comes from the `date` option, else
from the file's modification date (with a `warn` notice); the zone from `tz`.
A frame whose time is earlier than the previous one is taken as the next day.
The first frame of a multi-frame file covers the time since boot, so it is
dropped unless `keep_first=True`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform, empty
from collectors.base import CollectorError, check_zone, first_lines, given_date, read_text

name = "top_batch"

FRAME = re.compile(r"^top - (\d{1,2}):(\d\d):(\d\d)\s+up\b")
NUM = r"\d+(?:[.,]\d+)?"
PAIR = re.compile(rf"({NUM})\s*([a-z][\w/-]*)")
LOAD = re.compile(r"(\d+[.,]\d+)")
CPU_LINE = re.compile(r"^%?Cpu(?:\(s\)|(\d+))\s*:|^%CPU(?:\(s\)|(\d+))\s*:", re.IGNORECASE)
MEM_LINE = re.compile(r"^([KMGTPE])iB\s+(\S+)\s*:")
HEADER = re.compile(r"^\s*PID\s")
SCALE = {"K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
CPU_FIELDS = {"us": "cpu.user_pct", "sy": "cpu.system_pct", "ni": "cpu.nice_pct", "id": "cpu.idle_pct",
              "wa": "cpu.iowait_pct", "hi": "cpu.irq_pct", "si": "cpu.softirq_pct", "st": "cpu.steal_pct"}
MEM_FIELDS = {"total": "total_bytes", "free": "free_bytes", "used": "used_bytes", "buff/cache": "buff_cache_bytes",
              "buffers": "buffers_bytes", "cached": "cached_bytes", "avail": "available_bytes"}
TASK_FIELDS = {"total": "tasks.total", "running": "tasks.running", "sleeping": "tasks.sleeping",
               "sleep": "tasks.sleeping", "d-sleep": "tasks.sleeping", "stopped": "tasks.stopped",
               "zombie": "tasks.zombie"}
# Process-table header (English, de_DE, fr_FR) -> canonical column.
COLUMNS = {"PID": "pid", "USER": "user", "PR": "priority", "NI": "nice", "VIRT": "vsz_bytes", "RES": "rss_bytes",
           "SHR": "shr_bytes", "S": "state", "%CPU": "cpu_pct", "%MEM": "mem_pct", "TIME+": "cpu_time_s",
           "TIME": "cpu_time_s", "ZEIT+": "cpu_time_s", "ZEIT": "cpu_time_s", "TEMPS+": "cpu_time_s",
           "COMMAND": "command", "BEFEHL": "command", "COMMANDE": "command", "%PROC": "cpu_pct"}
INT_COLS = {"pid", "priority", "nice", "vsz_bytes", "rss_bytes", "shr_bytes"}


def detect(path: Path) -> bool:
    """A file whose first line is a procps `top - HH:MM:SS up ...` summary line."""
    lines = first_lines(path, 1)
    return bool(lines) and bool(FRAME.match(lines[0]))


def _num(text: str) -> float:
    return float(text.replace(",", "."))


def _kib(path: Path, text: str, line: int) -> int | None:
    """A top memory column (KiB, or scaled with a m/g/t/p/e suffix) in bytes."""
    m = re.fullmatch(rf"({NUM})([kmgtpe]?)\+?", text.lower())
    if not m:
        raise CollectorError(path, f"expected a memory amount like 7140 or 158.1m, found {text!r}", line)
    power = {"": 1, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}[m[2]]
    return round(_num(m[1]) * 1024**power)


def _seconds(text: str) -> float | None:
    if m := re.fullmatch(r"(\d+):(\d+)[.,](\d+)", text):  # TIME+ minutes:seconds.hundredths
        return int(m[1]) * 60 + int(m[2]) + int(m[3]) / 100
    if m := re.fullmatch(r"(\d+):(\d+):(\d+)", text):  # TIME hours:minutes:seconds
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    if m := re.fullmatch(r"(\d+):(\d+)", text):
        return int(m[1]) * 60 + int(m[2])
    if m := re.fullmatch(r"(\d+),(\d+)", text):  # scaled TIME+ hours,minutes
        return int(m[1]) * 3600 + int(m[2]) * 60
    return None


def _process(path: Path, names: list[str | None], line: str, number: int) -> dict[str, object]:
    parts = line.split(None, len(names) - 1) if names and names[-1] == "command" else line.split()
    if len(parts) < len(names) - (1 if names[-1] == "command" else 0) or (names[-1] != "command" and len(parts) != len(names)):
        raise CollectorError(path, f"expected {len(names)} process columns, found {len(parts)}", number)
    row: dict[str, object] = {}
    for key, value in zip(names, parts, strict=False):
        if key is None:
            continue
        try:
            if key in ("vsz_bytes", "rss_bytes", "shr_bytes"):
                row[key] = _kib(path, value, number)
            elif key in ("pid", "nice"):
                row[key] = int(value)
            elif key == "priority":
                row[key] = None if value == "rt" else int(value)
            elif key in ("cpu_pct", "mem_pct"):
                row[key] = _num(value)
            elif key == "cpu_time_s":
                row[key] = _seconds(value)
            else:
                row[key] = value
        except ValueError as exc:
            raise CollectorError(path, f"column {key}: unexpected value {value!r}", number) from exc
    return row


def read(path: Path, tz: str = "UTC", date: object = None, host: str | None = None,
         warn: Callable[[str], None] | None = None, keep_first: bool = False, **_: object) -> dict[str, pa.Table]:
    """Read top batch output or a copied top screen into `host_metrics` and `processes`."""
    path = Path(path)
    check_zone(path, tz)
    lines = read_text(path, "top -b output").splitlines()
    base = given_date(path, date, warn, "top prints no date")
    host_name = host or path.stem
    metrics: dict[str, list] = {"frame": [], "ts": [], "metric": [], "device": [], "value": []}
    procs: list[dict[str, object]] = []
    frame, day, last, names = -1, 0, -1, None
    ts = dt.datetime.combine(base, dt.time())
    cpus: set[str] = set()

    def put(metric: str, device: str | None, value: float) -> None:
        for key, val in (("frame", frame), ("ts", ts), ("metric", metric), ("device", device), ("value", value)):
            metrics[key].append(val)

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        head = FRAME.match(line)
        if head:
            t = int(head[1]) * 3600 + int(head[2]) * 60 + int(head[3])
            day += 1 if 0 <= t < last else 0
            last, frame, names = t, frame + 1, None
            ts = dt.datetime.combine(base + dt.timedelta(days=day), dt.time()) + dt.timedelta(seconds=t)
            loads = LOAD.findall(line.split("average:", 1)[-1]) if "average" in line else []
            for metric, value in zip(("load.1m", "load.5m", "load.15m"), loads, strict=False):
                put(metric, None, _num(value))
            continue
        if frame < 0:
            raise CollectorError(path, f"expected a `top - HH:MM:SS up ...` line first, found {line[:60]!r}", number)
        if names is not None:
            procs.append({"frame": frame, "ts": ts, **_process(path, names, line.strip(), number)})
        elif HEADER.match(line):
            names = [COLUMNS.get(c) for c in line.split()]
            if "pid" not in names:
                raise CollectorError(path, "process table header without a PID column", number)
        elif cpu := CPU_LINE.match(line):
            device = cpu[1] or cpu[2] or "all"
            if device != "all":
                cpus.add(device)
            found = {label: _num(v) for v, label in PAIR.findall(line[cpu.end():])}
            for label, metric in CPU_FIELDS.items():
                if label in found:
                    put(metric, device, found[label])
            if "id" in found:
                put("cpu.busy_pct", device, round(100.0 - found["id"] - found.get("wa", 0.0), 2))
        elif mem := MEM_LINE.match(line):
            family = "swap" if mem[2].lower().startswith("swap") else "mem"
            scale = 1024 ** SCALE[mem[1]]
            for value, label in PAIR.findall(line[mem.end():]):
                if label in ("avail", "cached"):  # "avail Mem" / old "cached Mem" end the swap line
                    put(f"mem.{MEM_FIELDS[label]}", None, _num(value) * scale)
                elif label in MEM_FIELDS and (family == "mem" or label in ("total", "free", "used")):
                    put(f"{family}.{MEM_FIELDS[label]}", None, _num(value) * scale)
        elif re.match(r"^\w+:\s+\d", line) and "total" in line:
            if not line.startswith("Threads"):  # -H counts threads, not tasks
                for value, label in PAIR.findall(line.split(":", 1)[1]):
                    if label in TASK_FIELDS:
                        put(TASK_FIELDS[label], None, _num(value))
        else:
            raise CollectorError(path, f"expected a top summary line (Tasks, %Cpu, Mem, Swap) or the PID header, found {line[:60]!r}", number)
    if frame < 0:
        raise CollectorError(path, "no `top - ` line: expected top batch output")
    skip = 0 if keep_first or frame == 0 else 1
    return {"host_metrics": _host_table(metrics, skip, tz, host_name, cpus),
            "processes": _process_table(procs, skip, tz, host_name)}


def _utc(values: list[dt.datetime], tz: str) -> pa.Array:
    naive = pa.array(values, pa.timestamp("ms"))
    return pc.cast(pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest"),
                   pa.timestamp("ms", tz="UTC"))


def _host_table(metrics: dict[str, list], skip: int, tz: str, host: str, cpus: set[str]) -> pa.Table:
    keep = [i for i, f in enumerate(metrics["frame"]) if f >= skip]
    cols = {k: [metrics[k][i] for i in keep] for k in ("ts", "metric", "device", "value")}
    n = len(keep)
    table = pa.table({
        "ts": _utc(cols["ts"], tz), "host": [host] * n, "metric": cols["metric"],
        "device": pa.array(cols["device"], pa.string()), "value": pa.array(cols["value"], pa.float64()),
        "source": [name] * n,
    })
    table = conform(table, "host_metrics")
    info = json.dumps({"host": host, "cpu_count": len(cpus) or None})
    return table.replace_schema_metadata({b"host_info": info.encode()})


def _process_table(procs: list[dict[str, object]], skip: int, tz: str, host: str) -> pa.Table:
    rows = [p for p in procs if p["frame"] >= skip]  # type: ignore[operator]
    if not rows:  # cut before the first process row: the summary lines still count
        return empty("processes")
    keys = [c for c in dict.fromkeys(k for p in rows for k in p) if c not in ("frame", "ts")]
    data: dict[str, object] = {"ts": _utc([p["ts"] for p in rows], tz), "host": [host] * len(rows)}  # type: ignore[misc]
    for key in keys:
        values = [p.get(key) for p in rows]
        data[key] = pa.array(values, pa.int64() if key in INT_COLS else None)
    data["source"] = [name] * len(rows)
    return conform(pa.table(data), "processes")
