"""Tsung JSON stats backend (`backend="json"`) into `request_stats`, `load` and `host_metrics`.

Tsung writes it to `tsung.log` too, as
`{"stats": [{"timestamp": N, "samples": [...]}, ...]}` (FORMATS.md L4.1, `ts_mon.erl`
`export_stats`). Samples carry the same numbers as the text backend under names:
`{"name", "value" (count), "mean", "stddev", "max", "min", "global_mean", "global_count"}`
for timings (with `"hostname"` for os_mon ones), `{"name", "value", "total"}` for
counters, `users` and `connected` with `"max"`. HTTP statuses are `http_<code>`.
The mapping to tables is the text backend's (`tsung_log.tables_from_blocks`).

A run that was killed leaves the last block unclosed: the samples written
before the cut are read, with a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collectors.base import CollectorError, head_text, read_text
from collectors.tsung_log import Block, tables_from_blocks

name = "tsung_json"

HEAD_RE = re.compile(r'^\{\s*"stats"\s*:\s*\[\s*(\{\s*"timestamp"\s*:|$)')


def detect(path: Path) -> bool:
    """A JSON document starting `{"stats": [{"timestamp":`."""
    return HEAD_RE.match(head_text(path, 256)) is not None


def _load(path: Path, warn: Callable[[str], None] | None) -> dict:
    text = read_text(path, "a Tsung JSON stats document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        doc = None
        # Close the open block after the last whole sample (or as written, when it stops between samples).
        for body in (text.rstrip(), text[: text.rfind("}") + 1]):
            try:
                doc = json.loads(body.rstrip().rstrip(",") + "]}]}")
                break
            except json.JSONDecodeError:
                continue
        if doc is None:
            raise CollectorError(path, f"invalid JSON ({first.msg}): expected a Tsung JSON stats document", line=first.lineno) from first
        if warn:
            warn(f"{path}: the last stats block was not closed (interrupted run); read what was written")
        return doc


def _number(path: Path, sample: dict, key: str, timestamp: int) -> float:
    value = sample.get(key)
    if not isinstance(value, int | float):
        raise CollectorError(path, f"sample {sample.get('name')!r} at timestamp {timestamp}: expected a number in {key!r}, got {value!r}")
    return float(value)


def _block(path: Path, entry: object, index: int) -> Block:
    if not isinstance(entry, dict) or not isinstance(entry.get("timestamp"), int) or not isinstance(entry.get("samples"), list):
        raise CollectorError(path, f"stats entry {index}: expected {{\"timestamp\": <int>, \"samples\": [...]}}")
    ts = entry["timestamp"]
    block = Block(ts, index)
    for sample in entry["samples"]:
        if not isinstance(sample, dict) or not isinstance(sample.get("name"), str):
            raise CollectorError(path, f"stats entry {index}: expected samples with a \"name\", got {str(sample)[:60]!r}")
        key = sample["name"]
        if key.startswith("http_") and key[5:].isdigit():
            key = key[5:]
        if key == "users":
            block.users = _number(path, sample, "value", ts)
        elif "mean" in sample:
            values = tuple(_number(path, sample, k, ts) for k in ("value", "mean", "stddev", "max", "min", "global_mean", "global_count"))
            if "hostname" in sample:
                if values[0] > 0:
                    block.osmon.append((key, str(sample["hostname"]), values[0], values[1]))
            else:
                block.samples[key] = values
        else:
            second = "total" if "total" in sample else "max"
            pair = (_number(path, sample, "value", ts), _number(path, sample, second, ts))
            old = block.counters.get(key)
            block.counters[key] = (pair[0] + old[0], pair[1] + old[1]) if old else pair
    return block


def read(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read a Tsung JSON stats file into windowed and whole-run `request_stats`, `load` and `host_metrics`."""
    path = Path(path)
    doc = _load(path, warn)
    stats = doc.get("stats") if isinstance(doc, dict) else None
    if not isinstance(stats, list):
        raise CollectorError(path, "expected a top-level {\"stats\": [...]} object")
    # Tsung opens the document with an empty block when the monitor starts: it
    # bounds the first window instead of being a window itself.
    blocks = [_block(path, entry, i) for i, entry in enumerate(stats)]
    started = [b for b in blocks if b.samples or b.counters or b.osmon or b.users is not None]
    if not started:
        raise CollectorError(path, "no stats block with samples: the run wrote nothing")
    start = blocks[0].ts if blocks[0] is not started[0] else None
    return tables_from_blocks(started, name, start=start)
