"""`redis-cli INFO` snapshots (one, or a series) into `host_metrics`.

A series is several INFO outputs one after another, optionally framed by
`# ts=<epoch seconds>` lines (the framing the poll scripts in this project
write; `# ts=<epoch> error=...` marks a failed poll and is skipped). Lines end
in CRLF when redis-cli writes to a pipe; both endings are read.

Time of a snapshot: `server_time_usec` (Redis >= 6.2), else the `# ts=` frame,
else the `ts` option, else the file's modification time with a `warn`.

Gauges are kept as they are; counters become rates between consecutive
snapshots (a single snapshot gives averages since the server started, with a
`warn`; the first snapshot of a series gives gauges only). A restart (new
`run_id`, or uptime going down) gives no rates for that interval. The
saturation signals are stored beside the raw values: `redis.clients_used_pct`
(connected clients of `maxclients`) and `redis.memory_used_pct` (used memory of
`maxmemory`, only when a limit is set: `maxmemory:0` means none, and then no
`redis.maxmemory_bytes` row is written either).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, first_lines, option_time, read_text

name = "redis_info"

Warn = Callable[[str], None] | None

GAUGES: dict[str, str] = {
    "connected_clients": "redis.connected_clients",
    "blocked_clients": "redis.blocked_clients",
    "maxclients": "redis.maxclients",
    "used_memory": "redis.used_memory_bytes",
    "used_memory_rss": "redis.used_memory_rss_bytes",
    "used_memory_peak": "redis.used_memory_peak_bytes",
    "mem_fragmentation_ratio": "redis.mem_fragmentation_ratio",
    "uptime_in_seconds": "redis.uptime_s",
    "instantaneous_ops_per_sec": "redis.instantaneous_ops_per_s",
    "connected_slaves": "redis.connected_replicas",
}
RATES: dict[str, str] = {
    "total_commands_processed": "redis.ops_per_s",
    "keyspace_hits": "redis.keyspace_hits_per_s",
    "keyspace_misses": "redis.keyspace_misses_per_s",
    "evicted_keys": "redis.evicted_keys_per_s",
    "expired_keys": "redis.expired_keys_per_s",
    "rejected_connections": "redis.rejected_connections_per_s",
    "total_connections_received": "redis.connections_per_s",
    "total_net_input_bytes": "redis.net_input_bytes_per_s",
    "total_net_output_bytes": "redis.net_output_bytes_per_s",
}
FRAME = re.compile(r"^# ts=(\d+(?:\.\d+)?)(?:\s+error=(\S*))?\s*$")
SECTION = re.compile(r"^# [A-Z][A-Za-z]*$")
FIELD = re.compile(r"^([a-z_][a-z0-9_]*):(.*)$")
KEYSPACE = re.compile(r"^db\d+$")


class Snapshot:
    """One INFO output: its fields as text, the line each starts on, and its time."""

    def __init__(self, line: int, frame_ts: float | None) -> None:
        self.line = line
        self.frame_ts = frame_ts
        self.fields: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.ts: datetime | None = None

    def number(self, path: Path, key: str) -> float | None:
        """The field as a number (None when absent); CollectorError when it is not one."""
        if key not in self.fields:
            return None
        try:
            return float(self.fields[key])
        except ValueError:
            raise CollectorError(path, f"{key}:{self.fields[key][:40]!r}: expected a number", line=self.lines[key]) from None


def detect(path: Path) -> bool:
    """`# Server` followed by `redis_version:` at the start (after an optional `# ts=` frame)."""
    lines = [ln.rstrip("\r") for ln in first_lines(path, 4)]
    if lines and FRAME.match(lines[0]):
        lines = lines[1:]
    return len(lines) >= 2 and lines[0] == "# Server" and lines[1].startswith("redis_version:")


def parse(path: Path, text: str) -> list[Snapshot]:
    """The INFO snapshots of a file, in order; failed-poll frames are dropped."""
    snaps: list[Snapshot] = []
    current: Snapshot | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        frame = FRAME.match(line)
        if frame:
            current = None if frame.group(2) is not None else Snapshot(number, float(frame.group(1)))
            if current is not None:
                snaps.append(current)
            continue
        if SECTION.match(line):
            # A new `# Server` opens the next INFO output unless a frame just opened one.
            if line == "# Server" and (current is None or current.fields):
                current = Snapshot(number, None)
                snaps.append(current)
            continue
        m = FIELD.match(line)
        if not m or current is None:
            what = "a `key:value` field" if current is not None else "`# Server` (the start of an INFO output) or a `# ts=` frame"
            raise CollectorError(path, f"expected {what}, found {line[:80]!r}", line=number)
        current.fields[m.group(1)] = m.group(2)
        current.lines[m.group(1)] = number
    snaps = [s for s in snaps if s.fields]
    if not snaps:
        raise CollectorError(path, "no INFO fields: expected the output of redis-cli INFO")
    return snaps


def _stamp(path: Path, snap: Snapshot, fallback: datetime | None) -> datetime:
    usec = snap.number(path, "server_time_usec")
    if usec is not None:
        return datetime.fromtimestamp(usec / 1e6, UTC)
    if snap.frame_ts is not None:
        return datetime.fromtimestamp(snap.frame_ts, UTC)
    if fallback is None:
        raise CollectorError(path, "no server_time_usec, `# ts=` frame or `ts` option: cannot date the snapshot", line=snap.line)
    return fallback


def to_rows(path: Path, snaps: list[Snapshot], host: str, lifetime_if_alone: bool = True) -> dict[str, list]:
    """Rows of `host_metrics` (column lists) from consecutive dated snapshots.

    A lone snapshot gives rates averaged since the server started, unless
    `lifetime_if_alone` is False (a live poller's first sample: gauges only).
    """
    rows: dict[str, list] = {k: [] for k in ("ts", "host", "metric", "device", "value")}

    def add(ts: datetime, metric: str, value: float, device: str | None = None) -> None:
        rows["ts"].append(ts)
        rows["host"].append(host)
        rows["metric"].append(metric)
        rows["device"].append(device)
        rows["value"].append(float(value))

    alone = len(snaps) == 1 and lifetime_if_alone
    for i, snap in enumerate(snaps):
        ts = snap.ts
        assert ts is not None
        num = {k: snap.number(path, k) for k in (*GAUGES, *RATES, "maxmemory", "used_cpu_sys", "used_cpu_user")}
        for key, metric in GAUGES.items():
            if num[key] is not None:
                add(ts, metric, num[key])
        if num["maxmemory"]:
            add(ts, "redis.maxmemory_bytes", num["maxmemory"])
            if num["used_memory"] is not None:
                add(ts, "redis.memory_used_pct", 100.0 * num["used_memory"] / num["maxmemory"])
        if num["maxclients"] and num["connected_clients"] is not None:
            add(ts, "redis.clients_used_pct", 100.0 * num["connected_clients"] / num["maxclients"])
        for key, value in snap.fields.items():
            if KEYSPACE.match(key):
                keys = re.search(r"(?:^|,)keys=(\d+)", value)
                if keys:
                    add(ts, "redis.keys", float(keys.group(1)), key)
        if alone:
            before: dict[str, float | None] = {k: 0.0 for k in num}
            seconds = num["uptime_in_seconds"] or 0.0
        else:
            prev = snaps[i - 1] if i else None
            restarted = prev is None or prev.fields.get("run_id") != snap.fields.get("run_id") or (
                (prev.number(path, "uptime_in_seconds") or 0.0) > (num["uptime_in_seconds"] or 0.0))
            if restarted:
                continue
            before = {k: prev.number(path, k) for k in num}
            seconds = (ts - prev.ts).total_seconds()
        if seconds <= 0:
            continue

        def delta(key: str, now: dict[str, float | None] = num, old: dict[str, float | None] = before) -> float | None:
            if now[key] is None or old[key] is None or now[key] < old[key]:
                return None
            return now[key] - old[key]

        for key, metric in RATES.items():
            d = delta(key)
            if d is not None:
                add(ts, metric, d / seconds)
        hits, misses = delta("keyspace_hits"), delta("keyspace_misses")
        if hits is not None and misses is not None and hits + misses > 0:
            add(ts, "redis.keyspace_hit_ratio_pct", 100.0 * hits / (hits + misses))
        cpu = [delta(k) for k in ("used_cpu_sys", "used_cpu_user")]
        if None not in cpu:
            add(ts, "redis.cpu_pct", 100.0 * sum(cpu) / seconds)  # type: ignore[arg-type]
    return rows


def to_table(path: Path | str, snaps: list[Snapshot], host: str, lifetime_if_alone: bool = True) -> pa.Table:
    """A conformed `host_metrics` table from dated snapshots (reused by the live poller)."""
    rows = to_rows(Path(path), snaps, host, lifetime_if_alone)
    n = len(rows["ts"])
    table = pa.table({**rows, "ts": pa.array(rows["ts"], pa.timestamp("ms", tz="UTC")), "source": pa.array([name] * n, pa.string())})
    return conform(table, "host_metrics")


def read(path: Path, host: str | None = None, ts: datetime | float | None = None, warn: Warn = None, **_: object) -> dict[str, pa.Table]:
    """Read redis-cli INFO snapshots into `host_metrics` (host: the `host` option, else `redis`)."""
    path = Path(path)
    text = read_text(path, "redis-cli INFO output")
    snaps = parse(path, text)
    fallback = option_time(path, ts)
    if fallback is None and len(snaps) == 1 and "server_time_usec" not in snaps[0].fields and snaps[0].frame_ts is None:
        fallback = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if warn:
            warn(f"{path}: no server_time_usec, frame or `ts` option: dated by the file's modification time {fallback.isoformat()}")
    for snap in snaps:
        snap.ts = _stamp(path, snap, fallback)
    if len(snaps) == 1 and warn:
        warn(f"{path}: a single snapshot: rates are averages since the server started")
    return {"host_metrics": to_table(path, snaps, host or "redis")}
