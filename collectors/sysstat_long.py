"""sysstat readings as the canonical `host_metrics` table, shared by every sysstat reader.

Each reader collects long arrays of (timestamp, device, metric, value) with the
mapping of `sysstat_columns` (`LongRows`, or `StructuredRows` for the objects of
`sadf -j` and the elements of `sadf -x`); `build_table` adds the derived metrics
(`DERIVED`: busy CPU, used memory, whole-host network sums) and returns the table.
`long_table` does that part on arrays of device and metric codes; `sadf_csv_blocks`
calls it per time range to stream a large file in batches.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform
from collectors.sysstat_columns import (
    DERIVED,
    DEVICE_KEYS,
    NET_ADDITIVE,
    MetricFactor,
    Section,
    cpu_device,
    is_element,
    json_column,
    usable_columns,
)


class LongRows:
    """Accumulates (ts, device, metric, value) columns in numpy/list chunks."""

    def __init__(self) -> None:
        self.ts: list[np.ndarray] = []
        self.device: list[list[str | None]] = []
        self.metric: list[list[str]] = []
        self.value: list[np.ndarray] = []

    def add_block(self, ts: np.ndarray, devices: list[str | None] | None, mapping: dict[str, MetricFactor],
                  columns: list[str], values: np.ndarray) -> None:
        """Add a rows-by-columns block: `values[:, j]` holds column `columns[j]` for every row."""
        n = len(ts)
        if n == 0:
            return
        devs = devices if devices is not None else [None] * n
        for j, col in enumerate(columns):
            if col not in mapping:
                continue
            metric, factor = mapping[col]
            self.ts.append(ts)
            self.device.append(devs)
            self.metric.append([metric] * n)
            self.value.append(values[:, j] * factor)

    def add(self, ts: int, device: str | None, metric: str, value: float) -> None:
        """Add one value (used by readers walking nested documents)."""
        self.ts.append(np.array([ts], dtype=np.int64))
        self.device.append([device])
        self.metric.append([metric])
        self.value.append(np.array([value], dtype=np.float64))

    def __len__(self) -> int:
        return sum(len(t) for t in self.ts)


@dataclass
class LongArrays:
    """Long rows as codes: `device[i]` indexes `devices` (-1 is null), `metric[i]` indexes `metrics`.

    `ts` holds UTC epoch milliseconds. Codes keep the derived-metric arithmetic in numpy and
    integer group keys; the strings are made once, for the rows of the finished table.
    """

    ts: np.ndarray
    device: np.ndarray
    metric: np.ndarray
    value: np.ndarray
    devices: list[str]
    metrics: list[str]


def _codes(values: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a string array (-1 for null) and the dictionary."""
    encoded = pc.dictionary_encode(values)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, encoded.dictionary.to_pylist()


def build_table(rows: LongRows, host: str, source: str, local_tz: str | None,
                host_info: dict[str, object] | None = None) -> pa.Table:
    """The canonical host_metrics table: derived metrics added, units already converted.

    `rows.ts` holds epoch milliseconds, UTC when `local_tz` is None, otherwise wall
    clock times in that zone (sar text).
    """
    ts_all = np.concatenate(rows.ts) if rows.ts else np.zeros(0, dtype=np.int64)
    device, devices = _codes(pa.array([d for chunk in rows.device for d in chunk], pa.string()))
    metric, metrics = _codes(pa.array([m for chunk in rows.metric for m in chunk], pa.string()))
    value = np.concatenate(rows.value).astype(np.float64, copy=False) if rows.value else np.zeros(0)
    return long_table(LongArrays(utc_ms(ts_all, local_tz), device, metric, value, devices, metrics),
                      host, source, host_info)


def utc_ms(ts: np.ndarray, local_tz: str | None) -> np.ndarray:
    """Epoch milliseconds read as wall-clock times in `local_tz` (None: already UTC) as UTC ones."""
    if local_tz is None:
        return ts
    wall = pa.array(ts, pa.timestamp("ms"))
    utc = pc.assume_timezone(wall, timezone=local_tz, ambiguous="earliest", nonexistent="earliest")
    return utc.cast(pa.int64()).to_numpy()


def long_table(rows: LongArrays, host: str, source: str, host_info: dict[str, object] | None = None) -> pa.Table:
    """The canonical host_metrics table of `rows` with the derived metrics added.

    Row order: the rows as given, then each derived metric, then the per-time network sums,
    stably sorted by time; so a caller that splits its rows by time range and calls this per
    range gets, concatenated, the same table as one call on all rows.
    """
    devices, metrics = list(rows.devices), list(rows.metrics)
    code = {m: i for i, m in enumerate(metrics)}
    dev_code = {d: i for i, d in enumerate(devices)}
    # Grouping keys fill a null device with "" (so "" and null are one device) and derived rows
    # of that device are null.
    key = rows.device if "" not in dev_code else np.where(rows.device == dev_code[""], -1, rows.device)
    parts = [(rows.ts, rows.device, rows.metric, rows.value)]
    for metric, (const, terms) in DERIVED.items():
        names = [t for t, _ in terms]
        if not any(n in code for n in names):
            continue
        signs = np.zeros(len(metrics))
        for name, sign in terms:
            if name in code:
                signs[code[name]] = sign
        sel = np.flatnonzero(np.isin(rows.metric, [code[n] for n in names if n in code]))
        if not len(sel):
            continue
        first, total, count = _group_sums(rows.ts[sel], key[sel], rows.value[sel] * signs[rows.metric[sel]])
        whole = count == len(terms)
        # Two decimals, as sar prints them, so 100 - 94.47 is 5.53 and not 5.530000000000001.
        value = pc.round(pc.add(pa.array(total[whole]), const), 2).to_numpy()
        code.setdefault(metric, len(metrics))
        if code[metric] == len(metrics):
            metrics.append(metric)
        rows_at = sel[first[whole]]
        parts.append((rows.ts[rows_at], key[rows_at], np.full(len(rows_at), code[metric], np.int32), value))
    net_codes = [code[m] for m in NET_ADDITIVE if m in code]
    if net_codes:
        net = np.isin(rows.metric, net_codes)
        if "lo" in dev_code:
            net &= rows.device != dev_code["lo"]
        sel = np.flatnonzero(net)
        if len(sel):
            first, total, _ = _group_sums(rows.ts[sel], rows.metric[sel], rows.value[sel])
            if "all" not in dev_code:
                dev_code["all"] = len(devices)
                devices.append("all")
            rows_at = sel[first]
            parts.append((rows.ts[rows_at], np.full(len(rows_at), dev_code["all"], np.int32), rows.metric[rows_at], total))
    ts, device, metric, value = (np.concatenate([p[i] for p in parts]) for i in range(4))
    kept = np.array([not m.startswith("_") for m in metrics] or [True], dtype=bool)[metric]
    # A stable sort, as Table.sort_by is: rows of one time keep the order above.
    order = np.flatnonzero(kept)
    order = order[np.argsort(ts[order], kind="stable")]
    device = device[order]
    n = len(order)
    table = pa.table({
        "ts": pa.array(ts[order], pa.timestamp("ms", tz="UTC")),
        "device": pa.array(devices, pa.string()).take(pa.array(device, pa.int32(), mask=device < 0)),
        "metric": pa.array(metrics, pa.string()).take(pa.array(metric[order], pa.int32())),
        "value": pa.array(value[order], pa.float64()),
        "host": pa.repeat(pa.scalar(host, pa.string()), n),
        "source": pa.repeat(pa.scalar(source, pa.string()), n),
    })
    table = conform(table, "host_metrics")
    if host_info is not None:
        table = table.replace_schema_metadata({b"host_info": json.dumps(host_info).encode()})
    return table


def _group_sums(ts: np.ndarray, key: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of equal (ts, key), in the order of their first row: that row, the sum and count of values.

    Each sum adds its values in row order, starting from 0.
    """
    order = np.lexsort((key, ts))
    st, sk = ts[order], key[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (st[1:] != st[:-1]) | (sk[1:] != sk[:-1])
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    first = order[starts]  # lexsort is stable: the first row of each run is the group's first row
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    group = rank[group]
    n = len(first)
    return np.sort(first), np.bincount(group, weights=value, minlength=n), np.bincount(group, minlength=n)


def parse_numbers(path: object, texts: list[list[str]], line_numbers: list[int],
                  error: Callable[[object, str, int | None], Exception]) -> np.ndarray:
    """Rows of number strings (`.` or `,` decimals) as a float matrix, or an error naming the line."""
    with contextlib.suppress(ValueError):  # the fast path; below, find the cell at fault or read comma decimals
        return np.array(texts, dtype=np.float64)
    for row, line in zip(texts, line_numbers, strict=False):
        for cell in row:
            try:
                float(cell.replace(",", "."))
            except ValueError:
                raise error(path, f"expected a number, found {cell!r}", line) from None
    try:
        return np.array([[c.replace(",", ".") for c in row] for row in texts], dtype=np.float64)
    except ValueError as exc:
        raise error(path, f"rows of unequal length in one section: {exc}", line_numbers[0] if line_numbers else None) from None


def sadf_times(path: object, stamps: list[str], line: int | None,
               error: Callable[[object, str, int | None], Exception]) -> tuple[np.ndarray, bool]:
    """sadf timestamps as epoch milliseconds, and whether they are local wall-clock times.

    `YYYY-MM-DD HH:MM:SS UTC` (the default) is UTC; `-U` gives epoch seconds;
    `-T`/`-t` append a local zone abbreviation, which is read in the `tz` option's zone.
    """
    if not stamps:
        return np.zeros(0, dtype=np.int64), False
    first = stamps[0]
    try:
        if first.isdigit():
            return np.array(stamps, dtype=np.int64) * 1000, False
        clock = np.array([s[:19] for s in stamps], dtype="datetime64[s]")
    except ValueError as exc:
        raise error(path, f"expected sadf timestamps like '2026-11-21 23:23:51 UTC', found {first!r}: {exc}", line) from None
    return clock.astype(np.int64) * 1000, not first.endswith(" UTC")


class StructuredRows(LongRows):
    """Collects the values of `sadf -j` objects and `sadf -x` elements, one object at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.unmapped: set[str] = set()
        self.cpus: set[str] = set()
        self._ts: list[int] = []
        self._device: list[str | None] = []
        self._metric: list[str] = []
        self._value: list[float] = []

    def add_item(self, element: str, ts: int, fields: dict[str, object]) -> None:
        """Add the numeric fields of one object (`element` is its JSON key or XML tag)."""
        if not is_element(element):
            return
        device = next((str(fields[k]) for k in DEVICE_KEYS if k in fields), None)
        by_section: dict[str, tuple[Section, dict[str, object]]] = {}
        for key, raw in fields.items():
            if key in DEVICE_KEYS or key in ("per", "unit") or isinstance(raw, (dict, list)):
                continue
            found = json_column(element, key)
            if found is None:
                self.unmapped.add(f"{element}.{key}")
                continue
            by_section.setdefault(found[0].name, (found[0], {}))[1][found[1]] = raw
        for sec, values in by_section.values():
            dev = None if sec.device is None else (cpu_device(device or "") if sec.device == "CPU" else device)
            if sec.device == "CPU" and dev and dev.isdigit():
                self.cpus.add(dev)
            for col, (metric, factor) in usable_columns(sec, values).items():
                raw = values[col]
                value = float(raw.replace(",", ".")) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
                self._ts.append(ts)
                self._device.append(dev)
                self._metric.append(metric)
                self._value.append(value * factor)

    def close(self) -> None:
        """Move the collected values into the long arrays `build_table` reads."""
        if self._ts:
            self.ts.append(np.array(self._ts, dtype=np.int64))
            self.device.append(self._device)
            self.metric.append(self._metric)
            self.value.append(np.array(self._value, dtype=np.float64))
        self._ts, self._device, self._metric, self._value = [], [], [], []
