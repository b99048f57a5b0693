"""Apache `mod_status` pages into `web_status`: `server-status?auto` (2.2 and 2.4) and the HTML page.

A file holds one `?auto` body, or many framed by `# ts=<epoch>` lines (a failed
poll is `# ts=<epoch> error=...` with no body), or one HTML `/server-status`
page. The parsing is split so a live poller can reuse it: `parse_snapshot`
turns one body into a dict of `web_status` columns, `to_table` orders
snapshots and turns the lifetime counters into rates between them.

Counters are lifetime totals since the last hard restart (FORMATS.md A3.2), so
a decrease of `Total Accesses`/`Total kBytes` or of the uptime marks a restart:
the row gets `restarted=True` and null rates rather than a negative one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, check_zone, head_text, option_time, read_text

name = "apache_status"

# `?auto` key -> (column, converter). Keys absent from a version stay null.
INT_KEYS = {
    "Total Accesses": "total_accesses",
    "BusyWorkers": "busy_workers",
    "IdleWorkers": "idle_workers",
    "Processes": "processes",
    "ConnsTotal": "conns_total",
    "ConnsAsyncWriting": "conns_async_writing",
    "ConnsAsyncKeepAlive": "conns_async_keepalive",
    "ConnsAsyncClosing": "conns_async_closing",
}
FLOAT_KEYS = {
    "Total Duration": "total_duration_ms",
    "CPULoad": "cpu_load_pct",
    "ReqPerSec": "req_per_s",
    "BytesPerSec": "bytes_per_s",
    "BytesPerReq": "bytes_per_req",
    "DurationPerReq": "duration_per_req_ms",
    "Load1": "load_1m",
    "Load5": "load_5m",
    "Load15": "load_15m",
    "Uptime": "uptime_s",
    "ServerUptimeSeconds": "uptime_s",
}
TEXT_KEYS = {"ServerVersion": "server_version", "ServerMPM": "mpm"}
SCOREBOARD = {
    "_": "sb_waiting",
    "S": "sb_starting",
    "R": "sb_reading",
    "W": "sb_sending",
    "K": "sb_keepalive",
    "D": "sb_dns",
    "C": "sb_closing",
    "L": "sb_logging",
    "G": "sb_graceful",
    "I": "sb_idle_cleanup",
    ".": "sb_open",
}
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
UTC_NAMES = {"UTC", "GMT", "Z", "UT"}

_COLUMNS = [
    "ts", "host", "server_version", "mpm", "uptime_s", "total_accesses", "total_bytes", "total_duration_ms",
    "cpu_load_pct", "req_per_s", "bytes_per_s", "bytes_per_req", "duration_per_req_ms", "busy_workers",
    "idle_workers", "max_workers", "processes", "conns_total", "conns_async_writing", "conns_async_keepalive",
    "conns_async_closing", "load_1m", "load_5m", "load_15m", *SCOREBOARD.values(), "restarted", "source",
]

FRAME = re.compile(r"^# ts=(\d+(?:\.\d+)?)(?:\s+error=(\S+))?\s*$")
KEY_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9 \[\]]*):[ \t]?(.*)$")
SB_LINE = re.compile(r"^Scoreboard: \S*$", re.M)
WORKERS_LINE = re.compile(r"^(BusyWorkers|IdleWorkers|Total Accesses): \d+$", re.M)
APACHE_TIME = re.compile(r"^\w+, (\d\d)-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) (\S+)$")
HTML_MARK = re.compile(r"<title>Apache Status</title>", re.I)

Warn = Callable[[str], None] | None


def detect(path: Path) -> bool:
    """A `?auto` body (or `# ts=` framed series of them) or an Apache HTML status page."""
    text = head_text(path)
    if not text:
        return False
    if HTML_MARK.search(text[:2048]) and "Apache Server Status for" in text:
        return True
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return False
    first = lines[0]
    starts_ok = bool(FRAME.match(first) or KEY_LINE.match(first) or (len(lines) > 1 and lines[1].startswith("ServerVersion: ")))
    return starts_ok and bool(SB_LINE.search(text)) and bool(WORKERS_LINE.search(text))


def _number(path: Path | None, key: str, value: str, line: int | None, cast: type) -> float | int | None:
    value = value.strip().rstrip("%")
    if value == "":
        return None
    try:
        number = float(value)
        if cast is int:
            if not abs(number) < 2**63:
                raise ValueError(value)
            return int(number)
        return number
    except ValueError:
        raise CollectorError(path or "<server-status>", f"{key}: expected a number, found {value!r}", line=line) from None


def apache_time(value: str, tz: str = "UTC") -> datetime | None:
    """Parse Apache's `Saturday, 21-Nov-2026 23:25:35 UTC`; None when the zone abbreviation is not `tz`'s.

    Apache prints only a zone abbreviation (`CEST`), which cannot be mapped back
    to an offset on its own; it is trusted when it is UTC/GMT or when it is the
    abbreviation the `tz` option's zone uses at that moment.
    """
    m = APACHE_TIME.match(value.strip())
    if not m or m.group(2) not in MONTHS:
        return None
    day, mon, year, hh, mm, ss, abbr = m.groups()
    naive = datetime(int(year), MONTHS[mon], int(day), int(hh), int(mm), int(ss))
    if abbr in UTC_NAMES:
        return naive.replace(tzinfo=UTC)
    local = naive.replace(tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC) if local.tzname() == abbr else None


def parse_snapshot(
    text: str,
    ts: datetime | float | None = None,
    host: str | None = None,
    tz: str = "UTC",
    path: Path | None = None,
    first_line: int = 1,
) -> dict[str, object]:
    """One `server-status?auto` body as a dict of `web_status` columns.

    The timestamp is `CurrentTime` when present (2.4.13+), else `ts` (a
    datetime or epoch seconds); `ts` stays None when neither is known, for
    the caller to decide. `host` overrides the bare server-name line.
    Raises `CollectorError` when a numeric field is not a number or the body
    has none of the status keys.
    """
    row: dict[str, object] = {}
    server_name = None
    current = None
    known = 0
    for offset, raw in enumerate(text.splitlines()):
        line_no = first_line + offset
        line = raw.strip()
        if not line:
            continue
        m = KEY_LINE.match(line)
        if not m:
            # The 2.4.13+ name line and mod_ssl's `TLSSessionCacheStatus` have no colon.
            if server_name is None and not row and line != "TLSSessionCacheStatus":
                server_name = line
            continue
        key, value = m.group(1), m.group(2).strip()
        if key in INT_KEYS:
            row[INT_KEYS[key]] = _number(path, key, value, line_no, int)
        elif key == "Total kBytes":
            kb = _number(path, key, value, line_no, int)
            row["total_bytes"] = None if kb is None else int(kb) * 1024
        elif key in FLOAT_KEYS:
            row[FLOAT_KEYS[key]] = _number(path, key, value, line_no, float)
        elif key in TEXT_KEYS:
            row[TEXT_KEYS[key]] = value
        elif key == "CurrentTime":
            current = value
        elif key == "RestartTime":
            row["_restart_time"] = value
        elif key == "Scoreboard":
            if not re.fullmatch(r"[_SRWKDCLGI. ]*", value):
                raise CollectorError(path or "<server-status>", f"Scoreboard: unexpected characters in {value[:40]!r}", line=line_no)
            for char, column in SCOREBOARD.items():
                row[column] = value.count(char)
            row["_scoreboard_len"] = len(value.replace(" ", ""))
        else:
            continue
        known += 1
    if not known:
        raise CollectorError(path or "<server-status>", "no server-status fields: expected `Key: value` lines such as `BusyWorkers: 3`", line=first_line)
    when = apache_time(current, tz) if current else None
    if current and when is None and ts is None:
        raise CollectorError(
            path or "<server-status>",
            f"CurrentTime {current!r}: cannot tell its UTC offset; give the server's zone as the `tz` option",
            line=first_line,
        )
    row["ts"] = when or option_time(path or "<server-status>", ts)
    row["host"] = host or server_name
    return row


def _html_snapshot(text: str, path: Path, ts: datetime | float | None, host: str | None, tz: str) -> dict[str, object]:
    """The summary block and scoreboard of the HTML `/server-status` page (values are rounded there)."""
    plain = re.sub(r"<[^>]+>", "\n", text.replace("&nbsp;", " "))
    found: dict[str, object] = {}

    def grab(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, plain, re.M)

    if m := grab(r"^Server Version: (.+)$"):
        found["server_version"] = m.group(1).strip()
    if m := grab(r"^Server MPM: (\S+)"):
        found["mpm"] = m.group(1)
    if m := grab(r"^Server load: ([\d.]+) ([\d.]+) ([\d.]+)"):
        found["load_1m"], found["load_5m"], found["load_15m"] = (float(g) for g in m.groups())
    if m := grab(r"^Total accesses: (\d+) - Total Traffic: ([\d.]+) (B|kB|MB|GB|TB)(?: - Total Duration: (\d+))?"):
        found["total_accesses"] = int(m.group(1))
        scale = 1024 ** ["B", "kB", "MB", "GB", "TB"].index(m.group(3))
        found["total_bytes"] = round(float(m.group(2)) * scale)
        if m.group(4):
            found["total_duration_ms"] = float(m.group(4))
    if m := grab(r"- ([\d.]+)% CPU load"):
        found["cpu_load_pct"] = float(m.group(1))
    if m := grab(r"^([\d.]+) requests/sec - ([\d.]+) (B|kB|MB|GB)/second(?: - ([\d.]+) (B|kB|MB)/request)?(?: - ([\d.]+) ms/request)?"):
        units = ["B", "kB", "MB", "GB"]
        found["req_per_s"] = float(m.group(1))
        found["bytes_per_s"] = float(m.group(2)) * 1024 ** units.index(m.group(3))
        if m.group(4):
            found["bytes_per_req"] = float(m.group(4)) * 1024 ** units.index(m.group(5))
        if m.group(6):
            found["duration_per_req_ms"] = float(m.group(6))
    if m := grab(r"^(\d+) requests currently being processed,(?: (\d+) workers gracefully restarting,)? (\d+) idle workers"):
        found["busy_workers"], found["idle_workers"] = int(m.group(1)), int(m.group(3))
    sb = re.search(r"<pre>([_SRWKDCLGI.\s]+)</pre>", text)
    if "busy_workers" not in found or not sb:
        raise CollectorError(path, "HTML status page without the workers line or the scoreboard <pre> block: expected mod_status output")
    board = re.sub(r"\s", "", sb.group(1))
    for char, column in SCOREBOARD.items():
        found[column] = board.count(char)
    found["_scoreboard_len"] = len(board)
    when = None
    if m := grab(r"^Current Time: (.+)$"):
        when = apache_time(m.group(1).strip(), tz)
    if m := grab(r"^Restart Time: (.+)$"):
        found["_restart_time"] = m.group(1).strip()
    server = re.search(r"Apache Server Status for ([^\s<(]+)", text)
    found["ts"] = when or option_time(path, ts)
    found["host"] = host or (server.group(1) if server else None)
    return found


def _rates(rows: list[dict[str, object]]) -> None:
    """Replace lifetime averages by per-interval rates and flag restarts, in place."""
    prev: dict[str, object] | None = None
    for row in rows:
        row["restarted"] = False
        if prev is None:
            if len(rows) > 1:
                # A lifetime average next to interval rates would read as a spike.
                row["req_per_s"] = row["bytes_per_s"] = None
            prev = row
            continue
        dt = (row["ts"] - prev["ts"]).total_seconds()  # type: ignore[operator]
        went_down = any(
            row.get(k) is not None and prev.get(k) is not None and row[k] < prev[k]  # type: ignore[operator]
            for k in ("total_accesses", "total_bytes", "total_duration_ms", "uptime_s")
        )
        new_start = row.get("_restart_time") is not None and prev.get("_restart_time") not in (None, row.get("_restart_time"))
        row["restarted"] = went_down or new_start
        for counter, rate, in (("total_accesses", "req_per_s"), ("total_bytes", "bytes_per_s")):
            now, before = row.get(counter), prev.get(counter)
            if row["restarted"] or dt <= 0 or now is None or before is None:
                row[rate] = None
            else:
                row[rate] = (now - before) / dt  # type: ignore[operator]
        prev = row


def to_table(snapshots: Iterable[dict[str, object]], max_workers: int | None = None) -> pa.Table:
    """Snapshots from `parse_snapshot` as a conformed `web_status` table, rates computed between them.

    `max_workers` is the configured MaxRequestWorkers/MaxClients; without it
    the scoreboard length (every slot the server could fill) stands in.
    """
    rows = sorted((dict(s) for s in snapshots), key=lambda r: r["ts"])  # type: ignore[arg-type, return-value]
    _rates(rows)
    for row in rows:
        row["max_workers"] = max_workers if max_workers is not None else row.get("_scoreboard_len")
        row.setdefault("source", name)
    data = {c: [r.get(c) for r in rows] for c in _COLUMNS}
    data["ts"] = pa.array(data["ts"], pa.timestamp("ms", tz="UTC"))
    return conform(pa.table(data), "web_status")


def _frames(path: Path, text: str, warn: Warn) -> list[tuple[float | None, str, int]]:
    """(frame ts, body, first line number) for each snapshot in the file."""
    lines = text.splitlines()
    if not lines or not FRAME.match(lines[0].strip()):
        return [(None, text, 1)]
    frames: list[tuple[float | None, str, int]] = []
    start, ts = 0, None
    for i, line in enumerate([*lines, "# ts=0"]):
        m = FRAME.match(line.strip())
        if not m:
            continue
        if ts is not None and i > start:
            frames.append((ts, "\n".join(lines[start:i]), start + 1))
        elif ts is not None and warn:
            warn(f"{path}:{start}: `# ts=` line with no body; no snapshot")
        if i == len(lines):
            break
        if m.group(2):
            if warn:
                warn(f"{path}:{i + 1}: poll at {m.group(1)} failed ({m.group(2)}); no snapshot")
            ts, start = None, i + 1
        else:
            ts, start = float(m.group(1)), i + 1
    return frames


def read(path: Path, ts: datetime | float | None = None, host: str | None = None, tz: str = "UTC",
         max_workers: int | None = None, warn: Warn = None, **_: object) -> dict[str, pa.Table]:
    """Read a server-status file (one snapshot, a framed series, or the HTML page) into `web_status`."""
    path = Path(path)
    check_zone(path, tz)
    text = read_text(path, "server-status output")
    if HTML_MARK.search(text[:2048]):
        snaps = [_html_snapshot(text, path, ts, host, tz)]
    else:
        frames = _frames(path, text, warn)
        if not frames:
            raise CollectorError(path, "no snapshot: every `# ts=` frame is empty or a failed poll")
        snaps = []
        for frame_ts, body, first in frames:
            if not body.strip():
                raise CollectorError(path, "empty snapshot after a `# ts=` line: expected a server-status body", line=first)
            snaps.append(parse_snapshot(body, frame_ts if frame_ts is not None else ts, host, tz, path, first))
    missing = [s for s in snaps if s["ts"] is None]
    if missing:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if warn:
            warn(f"{path}: no CurrentTime and no `ts` option; using the file's modification time {mtime.isoformat()}")
        for s in missing:
            s["ts"] = mtime
    for s in snaps:
        if not s.get("host"):
            s["host"] = path.stem
    return {"web_status": to_table(snaps, max_workers)}

