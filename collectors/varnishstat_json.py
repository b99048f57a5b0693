"""`varnishstat -j` snapshots (Varnish 6.0 flat form and 6.5+/7.x `counters` form) into `host_metrics`.

A file holds one snapshot, or a series: snapshots written one after another
(`while sleep 1; do varnishstat -j; done >> file`) or a JSON array of them.
Counters (flag `c`) become rates between consecutive snapshots; gauges
(flag `g`) are kept as they are. A file with a single snapshot has no
interval, so its rates are averages since the child started (counter /
`MAIN.uptime`) and a `warn` says so; in a series the first snapshot gives
gauges only, so a lifetime average never shows up as a spike. A restart
(`MAIN.uptime` going down) or a counter going down (a VCL discarded) gives no
rate for that interval, never a negative one.

`timestamp` is written by varnishstat in the machine's local time without a
zone (`strftime(... localtime())`), so it is read in the `tz` option's zone.

Backends: `VBE.<vcl>.<backend>.*` rows carry `device` = backend name and the
VCL in `labels`. `varnish.backend_healthy` reads the `happy` bitmap of the
last 64 probe results (newest in bit 0) the way Varnish decides: healthy when
at least `probe_threshold` of the newest `probe_window` probes were good
(Varnish defaults 3 of 8; pass the VCL's `.window`/`.threshold` when they
differ). A backend whose bitmap stays 0 in every snapshot has no probe:
Varnish then treats it as healthy unless fetches were refused as unhealthy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, check_zone, head_text, read_text

name = "varnishstat_json"

Warn = Callable[[str], None] | None

# counter -> (metric, device); every MAIN counter below is turned into a rate.
MAIN_RATES: dict[str, tuple[str, str | None]] = {
    "MAIN.client_req": ("varnish.client_req_per_s", None),
    "MAIN.cache_hit": ("varnish.cache_hit_per_s", None),
    "MAIN.cache_miss": ("varnish.cache_miss_per_s", None),
    "MAIN.cache_hitpass": ("varnish.cache_hitpass_per_s", None),
    "MAIN.sess_conn": ("varnish.sess_conn_per_s", None),
    "MAIN.sess_dropped": ("varnish.sess_dropped_per_s", None),
    "MAIN.sess_queued": ("varnish.sess_queued_per_s", None),
    "MAIN.threads_limited": ("varnish.threads_limited_per_s", None),
    "MAIN.s_resp_bodybytes": ("varnish.resp_body_bytes_per_s", None),
    "MAIN.backend_conn": ("varnish.backend_conn_per_s", "all"),
    "MAIN.backend_fail": ("varnish.backend_fail_per_s", "all"),
    "MAIN.backend_req": ("varnish.backend_req_per_s", "all"),
    "MAIN.backend_unhealthy": ("varnish.backend_unhealthy_per_s", "all"),
    "MAIN.backend_busy": ("varnish.backend_busy_per_s", "all"),
}
MAIN_GAUGES: dict[str, str] = {
    "MAIN.uptime": "varnish.uptime_s",
    "MAIN.threads": "varnish.threads",
    "MAIN.thread_queue_len": "varnish.thread_queue_len",
    "MAIN.n_object": "varnish.n_object",
    "MAIN.n_backend": "varnish.n_backend",
}
# per-backend field -> metric
VBE_RATES = {"req": "varnish.backend_req_per_s", "fail": "varnish.backend_fail_per_s",
             "unhealthy": "varnish.backend_unhealthy_per_s", "busy": "varnish.backend_busy_per_s"}
VBE_GAUGES = {"conn": "varnish.backend_conn"}
VBE = re.compile(r"^VBE\.(?P<vcl>[^.]+)\.(?P<backend>.+)\.(?P<field>[a-z_]+)$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
DETECT = re.compile(r'^\s*\[?\s*\{\s*"(?:version"\s*:\s*\d+\s*,\s*"timestamp|timestamp)"\s*:\s*"[0-9T:-]+"')

Snapshot = tuple[datetime, dict[str, int]]


def detect(path: Path) -> bool:
    """A JSON object starting with varnishstat's `version`/`timestamp` keys and holding `MAIN.` counters."""
    head = head_text(path, 4096)
    return bool(DETECT.match(head)) and any(f'"{prefix}.' in head for prefix in ("MGT", "MAIN", "VBE"))


def _objects(path: Path, text: str) -> list[tuple[int, object]]:
    """Every top-level JSON value with the line it starts on (a JSON array is unpacked)."""
    decoder = json.JSONDecoder()
    out: list[tuple[int, object]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = text.count("\n", 0, exc.pos) + 1
            raise CollectorError(path, f"invalid JSON ({exc.msg}): expected a varnishstat -j object (truncated file?)", line=where) from None
        if isinstance(value, list):
            out.extend((line, v) for v in value)
        else:
            out.append((line, value))
    return out


def _snapshot(path: Path, obj: object, line: int, zone: ZoneInfo) -> Snapshot:
    if not isinstance(obj, dict):
        raise CollectorError(path, f"expected a varnishstat -j object, found {type(obj).__name__}", line=line)
    stamp = obj.get("timestamp")
    if not isinstance(stamp, str) or not STAMP.match(stamp):
        raise CollectorError(path, f"timestamp {stamp!r}: expected YYYY-MM-DDTHH:MM:SS", line=line)
    # 6.5+ nests the counters; 6.0 puts them beside the timestamp.
    raw = obj["counters"] if isinstance(obj.get("counters"), dict) else {k: v for k, v in obj.items() if k not in ("timestamp", "version")}
    counters: dict[str, int] = {}
    for key, entry in raw.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise CollectorError(path, f"counter {key}: expected an object with an integer `value`, found {str(entry)[:80]}", line=line)
        counters[key] = value
    if "MAIN.uptime" not in counters:
        raise CollectorError(path, "no MAIN.uptime counter: expected the output of varnishstat -j", line=line)
    ts = datetime.fromisoformat(stamp).replace(tzinfo=zone).astimezone(UTC)
    return ts, counters


def parse(path: Path, text: str, tz: str = "UTC") -> list[Snapshot]:
    """The snapshots of a varnishstat -j file (or concatenation), in file order."""
    zone = check_zone(path, tz)
    snaps = [_snapshot(path, obj, line, zone) for line, obj in _objects(path, text)]
    if not snaps:
        raise CollectorError(path, "empty file: expected varnishstat -j output")
    return snaps


def _backends(counters: dict[str, int]) -> dict[tuple[str, str], dict[str, int]]:
    out: dict[tuple[str, str], dict[str, int]] = {}
    for key, value in counters.items():
        m = VBE.match(key)
        if m:
            out.setdefault((m["vcl"], m["backend"]), {})[m["field"]] = value
    return out


def healthy(happy: int, window: int, threshold: int) -> bool:
    """Varnish's verdict from a `happy` bitmap: at least `threshold` good probes among the newest `window`."""
    return (happy & ((1 << window) - 1)).bit_count() >= threshold


def to_rows(snaps: list[Snapshot], host: str, probe_window: int = 8, probe_threshold: int = 3) -> dict[str, list]:
    """Rows of `host_metrics` (column lists) from consecutive snapshots."""
    rows: dict[str, list] = {k: [] for k in ("ts", "host", "metric", "device", "value", "labels")}

    def add(ts: datetime, metric: str, device: str | None, value: float, labels: str | None = None) -> None:
        rows["ts"].append(ts)
        rows["host"].append(host)
        rows["metric"].append(metric)
        rows["device"].append(device)
        rows["value"].append(float(value))
        rows["labels"].append(labels)

    probed = {b for _, c in snaps for b, f in _backends(c).items() if f.get("happy")}
    alone = len(snaps) == 1
    for i, (ts, cur) in enumerate(snaps):
        prev = snaps[i - 1][1] if i else None
        uptime = cur["MAIN.uptime"]
        if alone:
            base, seconds = {}, float(uptime)
        elif prev is None or uptime < prev["MAIN.uptime"]:
            base, seconds = None, 0.0
        else:
            base, seconds = prev, (ts - snaps[i - 1][0]).total_seconds()

        def rate(key: str, now: dict[str, int] = cur, before: dict[str, int] | None = base, span: float = seconds) -> float | None:
            if before is None or span <= 0 or key not in now:
                return None
            delta = now[key] - before.get(key, 0)
            return delta / span if delta >= 0 else None

        for key, metric in MAIN_GAUGES.items():
            if key in cur:
                add(ts, metric, None, cur[key])
        for key, (metric, device) in MAIN_RATES.items():
            r = rate(key)
            if r is not None:
                add(ts, metric, device, r)
        if base is not None and seconds > 0:
            hits = cur.get("MAIN.cache_hit", 0) - base.get("MAIN.cache_hit", 0)
            misses = cur.get("MAIN.cache_miss", 0) - base.get("MAIN.cache_miss", 0)
            if hits >= 0 and misses >= 0 and hits + misses > 0:
                add(ts, "varnish.hit_ratio_pct", None, 100.0 * hits / (hits + misses))
        before_backends = _backends(base) if base else {}
        for (vcl, backend), fields in sorted(_backends(cur).items()):
            labels = json.dumps({"vcl": vcl})
            for field, metric in VBE_GAUGES.items():
                if field in fields:
                    add(ts, metric, backend, fields[field], labels)
            if "happy" in fields:
                if (vcl, backend) in probed:
                    ok = healthy(fields["happy"], probe_window, probe_threshold)
                else:
                    ok = fields.get("unhealthy", 0) == 0
                add(ts, "varnish.backend_healthy", backend, 1.0 if ok else 0.0, labels)
            if base is None or seconds <= 0:
                continue
            old = before_backends.get((vcl, backend), {})
            for field, metric in VBE_RATES.items():
                if field in fields:
                    delta = fields[field] - old.get(field, 0)
                    if delta >= 0:
                        add(ts, metric, backend, delta / seconds, labels)
    return rows


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Warn = None, probe_window: int = 8,
         probe_threshold: int = 3, **_: object) -> dict[str, pa.Table]:
    """Read varnishstat -j snapshots into `host_metrics` (host: the `host` option, else `varnish`)."""
    path = Path(path)
    text = read_text(path, "varnishstat -j JSON")
    snaps = parse(path, text, tz)
    if len(snaps) == 1 and warn:
        warn(f"{path}: a single snapshot: rates are averages since the varnishd child started ({snaps[0][1]['MAIN.uptime']} s ago)")
    if not 1 <= probe_threshold <= probe_window <= 64:
        raise CollectorError(path, f"probe_threshold {probe_threshold} / probe_window {probe_window}: expected 1 <= threshold <= window <= 64")
    rows = to_rows(snaps, host or "varnish", probe_window, probe_threshold)
    n = len(rows["ts"])
    table = pa.table({**rows, "ts": pa.array(rows["ts"], pa.timestamp("ms", tz="UTC")), "source": pa.array([name] * n, pa.string())})
    return {"host_metrics": conform(table, "host_metrics")}
