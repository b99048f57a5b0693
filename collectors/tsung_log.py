"""Tsung `tsung.log` (text stats backend) into `request_stats`, `load` and `host_metrics`.

Grammar (FORMATS.md L4.1, `ts_mon.erl`/`ts_stats_mon.erl`): blocks start with
`# stats: dump at <epoch s>`, then `stats: <key> <numbers...>` lines, and the
file ends with `EndMonitor:{Mega,Sec,Micro}`.

- 7 numbers: a sample `count mean stddev max min meanfb countfb`. count, mean
  and stddev cover the interval only; max/min are since start and meanfb/countfb
  cover every interval before this one. So window rows carry no min/max (the
  since-start extremes are not the window's), and the whole-run row (null
  window) pools the intervals and takes min/max from the last dump.
- 2 numbers: a counter `<interval> <total>`; for `connected` the second number
  is the current value; `users <current> <max>` is the user gauge.
- Erlang-term keys (`{cpu,"node@host"}`) are os_mon samples: `host_metrics`.

Label kinds: `request` is every request (Tsung has no per-URL stats) so its
rows are `total`; `tr_*`, `page` and `session` group requests (`transaction`);
the rest (`connect`, `async_*`) are `sample`. Errors of the `request` rows and
`load.errors_per_s` count HTTP statuses >= 400 plus `error_*` counters, like
the other load tools count a 4xx/5xx as a failure. Counters with no canonical
home (`match`, `nomatch`, `newphase`, protocol counters) are not kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from collectors.base import CollectorError, first_lines, read_text, rows_table

name = "tsung_log"

DUMP_RE = re.compile(r"^# stats: dump at (\d+)\s*$")
STATS_RE = re.compile(r"^stats: (\{[^}]*\}|\S+)\s+(\S.*)$")
OSMON_RE = re.compile(r'^\{(\w+),"([^"]*)"\}$')
END_RE = re.compile(r"^EndMonitor:\{\d+,\d+,\d+\}\s*$")
DEFAULT_INTERVAL_S = 10.0  # dumpstats_interval default in tsung_controller.app

# os_mon sample -> (metric of the vocabulary, device, factor to its unit).
OSMON_METRICS = {
    "cpu": ("cpu.busy_pct", "all", 1.0),
    "freemem": ("mem.free_bytes", None, 1024.0 * 1024.0),  # os_mon reports MB
    "load": ("load.1m", None, 1.0),
}
TRANSACTION_NAMES = ("page", "session")


@dataclass
class Block:
    """One stats dump: its epoch, its line, and its values by kind."""

    ts: int
    line: int
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict)
    counters: dict[str, tuple[float, float]] = field(default_factory=dict)
    osmon: list[tuple[str, str, float, float]] = field(default_factory=list)
    users: float | None = None


def detect(path: Path) -> bool:
    """A text file whose first line is `# stats: dump at <epoch>`."""
    lines = first_lines(path, 1)
    return bool(lines) and DUMP_RE.match(lines[0]) is not None


def _numbers(path: Path, text: str, lineno: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError as exc:
        raise CollectorError(path, f"expected numbers after the key, got {text[:60]!r}", line=lineno) from exc
    # Erlang floats are never nan or inf, so Tsung cannot have printed them (and a count of nan has no int).
    if not all(map(math.isfinite, values)):
        raise CollectorError(path, f"expected finite numbers after the key, got {text[:60]!r}", line=lineno)
    return values


def _parse(path: Path, warn: Callable[[str], None] | None) -> list[Block]:
    text = read_text(path, "a Tsung tsung.log")
    lines = text.split("\n")
    truncated = not text.endswith("\n")
    blocks: list[Block] = []
    ended = False
    for index, line in enumerate(lines):
        lineno = index + 1
        line = line.rstrip("\r")
        if not line.strip():
            continue
        is_last = index == len(lines) - 1
        try:
            _parse_line(path, line, lineno, blocks)
        except CollectorError:
            if is_last and truncated:
                if warn:
                    warn(f"{path}:{lineno}: truncated last line skipped ({line[:60]!r})")
                continue
            raise
        if END_RE.match(line):
            ended = True
    if not blocks:
        raise CollectorError(path, "no `# stats: dump at <epoch>` line: expected a Tsung tsung.log", line=1)
    if not ended and warn:
        warn(f"{path}: no EndMonitor line; the run was interrupted or the file is incomplete")
    return blocks


def _parse_line(path: Path, line: str, lineno: int, blocks: list[Block]) -> None:
    dump = DUMP_RE.match(line)
    if dump:
        blocks.append(Block(int(dump.group(1)), lineno))
        return
    if END_RE.match(line):
        return
    stats = STATS_RE.match(line)
    if not stats:
        raise CollectorError(path, f"expected `# stats: dump at <epoch>`, `stats: <key> <values>` or `EndMonitor:{{...}}`, got {line[:80]!r}", line=lineno)
    if not blocks:
        raise CollectorError(path, "`stats:` line before the first `# stats: dump at` line", line=lineno)
    block = blocks[-1]
    key, values = stats.group(1), _numbers(path, stats.group(2), lineno)
    osmon = OSMON_RE.match(key)
    if key == "users" and len(values) == 2:
        block.users = values[0]
    elif len(values) == 7:
        if osmon:
            if values[0] > 0:
                block.osmon.append((osmon.group(1), _host(osmon.group(2)), values[0], values[1]))
        else:
            block.samples[key] = values
    elif len(values) == 2 and not osmon:
        # A key can be printed twice in a block (two `match` counters): sum the intervals.
        old = block.counters.get(key)
        block.counters[key] = (values[0] + old[0], values[1] + old[1]) if old else values
    else:
        raise CollectorError(path, f"`{key}` has {len(values)} values: expected 7 (sample) or 2 (counter)", line=lineno)


def _row_kind(label: str) -> str:
    if label == "request":
        return "total"
    if label.startswith("tr_") or label in TRANSACTION_NAMES:
        return "transaction"
    return "sample"


def _errors(block: Block) -> int:
    total = 0.0
    for key, (interval, _) in block.counters.items():
        if key.startswith("error") or (key.isdigit() and int(key) >= 400):
            total += interval
    return int(total)


def _windows(blocks: list[Block], start: int | None = None) -> list[tuple[int, int]]:
    """(start, end) epoch seconds per block; unless known, the first starts one interval before its dump."""
    if start is None:
        # The last dump comes when the run stops, so its gap says nothing of the interval.
        gaps = sorted(b.ts - a.ts for a, b in zip(blocks[:-2], blocks[1:-1], strict=True))
        start = blocks[0].ts - int(gaps[len(gaps) // 2] if gaps else DEFAULT_INTERVAL_S)
    starts = [start] + [b.ts for b in blocks[:-1]]
    return list(zip(starts, [b.ts for b in blocks], strict=True))


def _host(node: str) -> str:
    return node.rsplit("@", 1)[-1] if "@" in node else node


def read(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read a tsung.log into windowed and whole-run `request_stats`, `load` and os_mon `host_metrics`.

    Column-wise (`tsung_log_fast`) when the file is plainly well-formed, else line by line
    (which names a bad line); both give the same tables.
    """
    from collectors import tsung_log_fast  # imports this module: loaded on first use

    try:
        return tsung_log_fast.read_tables(Path(path), warn)
    except tsung_log_fast.Unsupported:
        return tables_from_blocks(_parse(Path(path), warn), name)


def read_batches(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> Iterator[tuple[str, pa.Table]]:
    """`read`, in slices for the store: a month of dumps never holds its empty canonical columns at once."""
    from collectors import tsung_log_fast

    try:
        slices = tsung_log_fast.read_batches(Path(path), warn)
        first = next(slices, None)  # `Unsupported` comes before the first slice or not at all
    except tsung_log_fast.Unsupported:
        yield from tables_from_blocks(_parse(Path(path), warn), name).items()
        return
    if first is not None:
        yield first
        yield from slices


def tables_from_blocks(blocks: list[Block], source: str, start: int | None = None) -> dict[str, pa.Table]:
    """The canonical tables of parsed dumps (shared with the JSON backend reader).

    `start` is the epoch the first window starts at, when the file records it.
    """
    windows = _windows(blocks, start)
    stats: list[dict[str, object]] = []
    load: list[dict[str, object]] = []
    hosts: list[dict[str, object]] = []
    pooled: dict[str, list[float]] = {}  # label -> [count, sum, sum of squares, max, min, errors]
    connected: float | None = None
    for block, (start, end) in zip(blocks, windows, strict=True):
        span = float(end - start) or 1.0
        errors = _errors(block)
        for label, (count, mean, std, vmax, vmin, _mfb, _cfb) in block.samples.items():
            is_request = label == "request"
            row: dict[str, object] = {
                "label": label,
                "row_kind": _row_kind(label),
                "window_start": start * 1000,
                "window_end": end * 1000,
                "count": int(count),
                "mean_ms": mean if count else None,
                "std_ms": std if count else None,
                "throughput_rps": count / span,
                "errors": errors if is_request else None,
            }
            if is_request:
                rcv = block.counters.get("size_rcv", (0.0, 0.0))[0]
                sent = block.counters.get("size_sent", (0.0, 0.0))[0]
                row.update(received_bytes_per_s=rcv / span, sent_bytes_per_s=sent / span, avg_bytes=rcv / count if count else None)
            stats.append(row)
            acc = pooled.setdefault(label, [0.0, 0.0, 0.0, vmax, vmin, 0.0])
            # Interval stddev is the population one (sqrt(M2/n)): n*(sd^2+mean^2) is the sum of squares.
            acc[0] += count
            acc[1] += count * mean
            acc[2] += count * (std * std + mean * mean)
            acc[3], acc[4] = vmax, vmin
            acc[5] += errors if is_request else 0
        if "connected" in block.counters:
            connected = block.counters["connected"][1]
        request_count = block.samples.get("request", (0.0,))[0]
        load.append({
            "ts": end * 1000,
            "active_users": block.users,
            "connected": connected,
            "arrivals_per_s": block.counters.get("users_count", (0.0, 0.0))[0] / span,
            "rps": request_count / span,
            "errors_per_s": errors / span,
        })
        for metric, node, _count, mean in block.osmon:
            canonical, device, factor = OSMON_METRICS.get(metric, (f"tsung.{metric}", None, 1.0))
            hosts.append({"ts": end * 1000, "host": node, "metric": canonical, "device": device, "value": mean * factor})
    run_start, run_end = windows[0][0], windows[-1][1]
    for label, (count, total, squares, vmax, vmin, errors) in pooled.items():
        mean = total / count if count else None
        std = math.sqrt(max(squares / count - mean * mean, 0.0)) if count and mean is not None else None
        stats.append({
            "label": label,
            "row_kind": _row_kind(label),
            "count": int(count),
            "errors": int(errors) if label == "request" else None,
            "mean_ms": mean,
            "std_ms": std,
            "max_ms": vmax if count else None,
            "min_ms": vmin if count else None,
            "throughput_rps": count / float(run_end - run_start or 1),
        })
    return {
        "request_stats": rows_table(stats, "request_stats", source),
        "load": rows_table(load, "load", source),
        "host_metrics": rows_table(hosts, "host_metrics", source),
    }

