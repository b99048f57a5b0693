"""Column-wise reading of a `tsung.log` (text backend): the tables `tsung_log` makes, without per-line Python.

Months of 10-second dumps are millions of lines. This reader takes the file a piece of whole dumps
at a time (about 8 MB), splits its lines into tokens with Arrow, and reduces each piece at once to
what the tables need: per dump its few counters, per sample row its count, mean and stddev, per
os_mon row its value, and per label the running whole-run sums. The text, tokens and per-line
arrays of a piece are dropped before the next is read, and the per-row figures wait in an unnamed
temporary file (`spilled_columns`) until the tables are built a slice at a time: memory holds a
few numbers per dump and per key, none per row (120 days of 10-second dumps, 1.4 GB: 391 MB, where
the rows in memory took 755 MB). Sums are accumulated in file order, so every float is the one
`tsung_log.tables_from_blocks` computes. It only takes files it can read without doubt: any line
that is not a plain ASCII `# stats: dump at`, `stats:` or `EndMonitor` line, a file without a
final line end, or a value count other than 2 or 7 raises `Unsupported`, and `tsung_log` then
reads the file line by line, which names the bad line. The whole file is read before the first slice, so `Unsupported` never
comes after one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform, empty
from collectors import tsung_log as plain
from collectors.spilled_columns import Spill, SpilledColumn

DUMP_PREFIX = "# stats: dump at "
STATS_PREFIX = "stats: "
END_PREFIX = "EndMonitor:"
END = r"^EndMonitor:\{\d+,\d+,\d+\}\s*$"
# Rows per slice handed to the store (a Parquet row group): the writer holds a row group of all canonical
# columns while it encodes it, so smaller slices keep the peak low at no cost in time.
BATCH_ROWS = 100_000
# Bytes read at a time; a piece runs to the last dump that starts in them.
PIECE_BYTES = 8 << 20
# The per-row columns, spilled as they are reduced; int32 keeps dump numbers and key codes small.
SAMPLE_COLUMNS = {"block": np.int32, "code": np.int32, "count": np.float64, "mean": np.float64, "std": np.float64}
HOST_COLUMNS = {"block": np.int32, "code": np.int32, "value": np.float64}
# Non-ASCII bytes, and control bytes but tab, CR and LF: what is left up to space is whitespace
# to Python's `str.split` and `\s` alike, so splitting on bytes <= 32 cuts where the line reader does.
REFUSED_BYTES = np.ones(256, dtype=bool)
REFUSED_BYTES[32:128] = False
REFUSED_BYTES[[9, 10, 13]] = False
WHITESPACE_BYTES = np.zeros(256, dtype=bool)
WHITESPACE_BYTES[[9, 10, 13, 32]] = True


class Unsupported(Exception):
    """Not a file this reader takes without doubt; the line-by-line reader decides."""


def _pieces(path: Path) -> Iterator[memoryview]:
    """The file in pieces that end where a dump line starts (the last piece at the end of file)."""
    marker = b"\n" + DUMP_PREFIX.encode()
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - 1))
            if fh.read(1) != b"\n":
                raise Unsupported("empty, or no final line end")
            fh.seek(0)
            carry = b""
            while chunk := fh.read(PIECE_BYTES):
                data = carry + chunk if carry else chunk
                cut = data.rfind(marker) + 1
                # A dump longer than a read (no dump starts in it) waits for the next read.
                carry = data[cut:] if cut else data
                if cut:
                    yield memoryview(data)[:cut]
            if carry:
                yield memoryview(carry)
    except OSError as exc:
        raise Unsupported(str(exc)) from exc


def _lines(piece: memoryview) -> tuple[pa.StringArray, np.ndarray, np.ndarray]:
    """The piece's non-blank lines (each with its line end) over its bytes, their start offsets, and the bytes."""
    data = np.frombuffer(piece, dtype=np.uint8)
    line_ends = np.flatnonzero(data == 10)
    # Line ends are most often the only control bytes: the byte by byte test only when they are not.
    if len(data) >= 1 << 31 or data.max() >= 128 or (np.count_nonzero(data < 32) != len(line_ends) and REFUSED_BYTES[data].any()):
        raise Unsupported("non-ASCII text, a control character, or a dump of 2 GB")
    offsets = np.empty(len(line_ends) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = line_ends + 1
    lines = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(piece))
    starts = offsets[:-1]
    length = np.diff(offsets)
    blank = (length == 1) | ((length == 2) & (data[starts] == 13))
    if blank.any():
        lines, starts = lines.filter(pa.array(~blank)), starts[~blank]
    return lines, starts.astype(np.int64), data


def _parts(piece: memoryview, data: np.ndarray) -> tuple[pa.StringArray, np.ndarray]:
    """The piece's bytes as strings cut wherever whitespace starts or ends (no copy), and where each starts.

    `_lines` let no control byte but tab, CR and LF through, so whitespace is every byte up to space.
    """
    blank = data <= 32
    cuts = np.flatnonzero(blank[1:] != blank[:-1]) + 1
    offsets = np.empty(len(cuts) + 2, dtype=np.int32)
    offsets[0], offsets[-1] = 0, len(data)
    offsets[1:-1] = cuts
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(piece)), offsets[:-1]


class _Run:
    """What the tables need of the dumps read so far, kept compact."""

    def __init__(self, spill: Spill) -> None:
        self.spill = spill
        self.key_id: dict[str, int] = {}
        self.names: list[str] = []
        self.osmon: list[tuple[str, str] | None] = []  # per key: (metric, node) of an os_mon key
        self.error_key = np.zeros(0, dtype=bool)
        self.blocks = 0
        self.ended = False
        # Per dump.
        self.dumps: dict[str, list[np.ndarray]] = {k: [] for k in ("epoch", "users", "connected", "arrivals", "rcv", "sent", "errors", "requests")}
        # Per windowed sample row, and per os_mon row with a count: where each piece's values were spilled.
        self.samples: dict[str, list[tuple[int, int]]] = {k: [] for k in SAMPLE_COLUMNS}
        self.hosts: dict[str, list[tuple[int, int]]] = {k: [] for k in HOST_COLUMNS}
        # Per key: whole-run sums in file order, the last max/min, and labels in order of first sample.
        self.pooled = np.zeros((6, 0))  # count, sum, sum of squares, errors, max, min
        self.labels: list[int] = []

    def _codes(self, keys: pa.Array) -> np.ndarray:
        """Key codes, numbered in order of first appearance in the file."""
        encoded = pc.dictionary_encode(keys)
        for key in encoded.dictionary.to_pylist():
            if key in self.key_id:
                continue
            if key.startswith("{") and "}" not in key:
                raise Unsupported("whitespace inside a {...} key")
            self.key_id[key] = len(self.names)
            self.names.append(key)
            osmon = plain.OSMON_RE.match(key)
            self.osmon.append((osmon.group(1), osmon.group(2)) if osmon else None)
            self.error_key = np.append(self.error_key, not osmon and (key.startswith("error") or (key.isdigit() and int(key) >= 400)))
            self.pooled = np.concatenate([self.pooled, np.zeros((6, 1))], axis=1)
        local = np.array([self.key_id[k] for k in encoded.dictionary.to_pylist()], dtype=np.int64)
        return local[encoded.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, dtype=np.int64)

    def add(self, piece: memoryview) -> None:
        """Reduce one piece of whole dumps; the file's first piece must start with a dump line."""
        lines, starts, data = _lines(piece)
        is_dump = pc.starts_with(lines, DUMP_PREFIX)
        is_stats = pc.starts_with(lines, STATS_PREFIX)
        is_end = pc.starts_with(lines, END_PREFIX)
        if not pc.all(pc.or_(pc.or_(is_dump, is_stats), is_end), min_count=0).as_py():
            raise Unsupported("a line of another shape")
        if not pc.all(pc.match_substring_regex(lines.filter(is_end), END), min_count=0).as_py():
            raise Unsupported("a malformed EndMonitor line")
        self.ended = self.ended or bool(pc.any(is_end, min_count=0).as_py())
        dump_mask = is_dump.to_numpy(zero_copy_only=False)
        if self.blocks == 0 and (not len(dump_mask) or not dump_mask[0]):
            raise Unsupported("no dump line first")
        epoch_text = pc.ascii_rtrim_whitespace(pc.utf8_slice_codeunits(lines.filter(is_dump), len(DUMP_PREFIX)))
        if not pc.all(pc.ascii_is_decimal(epoch_text), min_count=0).as_py():
            raise Unsupported("a dump line without an epoch")
        try:
            epochs = pc.cast(epoch_text, pa.int64()).to_numpy()
        except pa.ArrowInvalid as exc:
            raise Unsupported(str(exc)) from exc

        # `stats: <key> <values>`: tokens split on whitespace, as the line reader's pattern does
        # unless a `{...}` key holds whitespace or the key does not follow `stats: ` at once.
        stats = np.flatnonzero(is_stats.to_numpy(zero_copy_only=False))
        if WHITESPACE_BYTES[data[starts[stats] + len(STATS_PREFIX)]].any():
            raise Unsupported("whitespace before a key")
        # The piece cut where whitespace starts or ends: tokens and runs of whitespace alternate, so
        # the line `stats: k v1 .. vN` is the 2N+4 parts from the one its first byte starts.
        parts, part_starts = _parts(piece, data)
        line_part = np.searchsorted(part_starts, starts)
        first = line_part[stats]
        counts = (np.append(line_part[1:], len(parts))[stats] - first) // 2 - 2
        if (counts < 1).any():
            raise Unsupported("a stats line without values")
        offset = np.cumsum(counts) - counts
        try:
            # Value k of a line is its part first + 4 + 2k; numbered across lines, value j = offset + k.
            value_parts = np.repeat(first + 4 - 2 * offset, counts) + 2 * np.arange(counts.sum())
            values = pc.cast(parts.take(pa.array(value_parts)), pa.float64()).to_numpy()
        except pa.ArrowInvalid as exc:
            raise Unsupported(str(exc)) from exc
        if not np.isfinite(values).all():
            raise Unsupported("nan or inf among the values")  # the line reader names the line
        code = self._codes(parts.take(pa.array(first + 2)))
        del parts, part_starts, lines, data
        block = (np.cumsum(dump_mask) - 1)[stats]
        n = len(epochs)
        self._reduce(epochs, block, code, counts, values, offset, n)
        self.blocks += n

    def _reduce(self, epochs: np.ndarray, block: np.ndarray, code: np.ndarray, counts: np.ndarray,
                values: np.ndarray, offset: np.ndarray, n: int) -> None:
        """The piece's per-dump, per-row and per-label figures from its `stats:` lines (`block` is the dump in the piece)."""
        key_id = self.key_id
        is_osmon = np.array([o is not None for o in self.osmon], dtype=bool)[code]
        is_users = (code == key_id.get("users", -1)) & (counts == 2)
        is_sample = counts == 7
        is_counter = (counts == 2) & ~is_osmon & ~is_users
        if not np.all(is_users | is_sample | is_counter):
            raise Unsupported("a value count other than 2 or 7")

        def value(rows: np.ndarray, k: int) -> np.ndarray:
            return values[offset[rows] + k]

        def counter(rows: np.ndarray, k: int) -> np.ndarray:
            # bincount adds in array order, from 0: a key printed twice in a dump adds up.
            return np.bincount(block[rows], weights=value(rows, k), minlength=n)

        def named(name: str) -> np.ndarray:
            return np.flatnonzero(is_counter & (code == key_id.get(name, -1)))

        errors = counter(np.flatnonzero(is_counter & self.error_key[code]), 0).astype(np.int64)  # int() of a sum of counts
        connected = named("connected")
        seen = np.bincount(block[connected], minlength=n) > 0
        users = np.full(n, np.nan)
        u_rows = np.flatnonzero(is_users)
        u_last = u_rows[_last_of_runs(block[u_rows])]  # the last `users` line of each dump
        users[block[u_last]] = value(u_last, 0)

        # Samples: the last value of a key in a dump, at the place of its first appearance.
        s_all = np.flatnonzero(is_sample & ~is_osmon)
        cell = block[s_all] * len(self.names) + code[s_all]
        _, first = np.unique(cell, return_index=True)
        _, last_rev = np.unique(cell[::-1], return_index=True)
        rows = s_all[len(cell) - 1 - last_rev][np.argsort(first, kind="stable")]
        s_block, s_code = block[rows], code[rows]
        cnt, mean, std = value(rows, 0), value(rows, 1), value(rows, 2)
        is_request = s_code == key_id.get("request", -1)
        requests = np.zeros(n)
        requests[s_block[is_request]] = cnt[is_request]
        for name, column in (("epoch", epochs), ("users", users), ("connected", np.where(seen, counter(connected, 1), np.nan)),
                             ("arrivals", counter(named("users_count"), 0)), ("rcv", counter(named("size_rcv"), 0)),
                             ("sent", counter(named("size_sent"), 0)), ("errors", errors), ("requests", requests)):
            self.dumps[name].append(column)
        for name, column in (("block", self.blocks + s_block), ("code", s_code), ("count", cnt), ("mean", mean), ("std", std)):
            self.samples[name].append(self.spill.put(column.astype(SAMPLE_COLUMNS[name], copy=False)))

        # Whole-run sums per label, continued in file order from the pieces before.
        pooled = self.pooled
        np.add.at(pooled[0], s_code, cnt)
        np.add.at(pooled[1], s_code, cnt * mean)
        # Interval stddev is the population one (sqrt(M2/n)): n*(sd^2+mean^2) is the sum of squares.
        np.add.at(pooled[2], s_code, cnt * (std * std + mean * mean))
        np.add.at(pooled[3], s_code, np.where(is_request, errors[s_block], 0).astype(np.float64))
        labels, at = np.unique(s_code[::-1], return_index=True)
        last = len(s_code) - 1 - at
        pooled[4, labels] = value(rows[last], 3)
        pooled[5, labels] = value(rows[last], 4)
        labels, at = np.unique(s_code, return_index=True)
        known = set(self.labels)
        self.labels += [int(c) for c in labels[np.argsort(at, kind="stable")] if int(c) not in known]

        # os_mon samples with a count, in file order.
        os_rows = np.flatnonzero(is_sample & is_osmon)
        os_rows = os_rows[value(os_rows, 0) > 0]
        for name, column in (("block", self.blocks + block[os_rows]), ("code", code[os_rows]), ("value", value(os_rows, 1))):
            self.hosts[name].append(self.spill.put(column.astype(HOST_COLUMNS[name], copy=False)))

    def spilled(self, columns: dict[str, list[tuple[int, int]]], dtypes: dict[str, type]) -> dict[str, SpilledColumn]:
        """`samples` or `hosts` as whole columns, read back from the spill a row range at a time."""
        return {k: SpilledColumn(self.spill, pieces, np.dtype(dtypes[k])) for k, pieces in columns.items()}


def _last_of_runs(groups: np.ndarray) -> np.ndarray:
    """Positions of the last element of each run of equal values."""
    last = np.ones(len(groups), dtype=bool)
    last[:-1] = groups[1:] != groups[:-1]
    return np.flatnonzero(last)


def _row_slices(columns: dict[str, SpilledColumn], rows: int) -> Iterator[dict[str, np.ndarray]]:
    """The rows of spilled columns in slices of at most `rows`."""
    total = len(next(iter(columns.values())))
    for start in range(0, total, rows):
        yield {k: c.rows(start, min(start + rows, total)) for k, c in columns.items()}


def _column(values: object, mask: np.ndarray | None = None) -> pa.Array:
    """A numpy column (NaN = missing) or a list (None = missing) as Arrow."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            missing = np.isnan(values) if mask is None else mask | np.isnan(values)
            return pa.array(values, mask=missing)
        return pa.array(values, mask=mask)
    return pa.array(values)


def _conformed(kind: str, columns: dict[str, pa.Array], time_columns: tuple[str, ...]) -> pa.Table:
    """`tsung_log._table` of these rows: the canonical table, every column not given null."""
    n = len(next(iter(columns.values())))
    spec = empty(kind).schema
    typed = {name: column.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC")) if name in time_columns else column.cast(spec.field(name).type)
             for name, column in columns.items()}
    return conform(pa.table({**typed, "source": pa.array([plain.name] * n, pa.string())}), kind)


def _read(path: Path, warn: Callable[[str], None] | None) -> _Run:
    """The whole file reduced; the caller closes the run's spill (`_slices` does)."""
    run = _Run(Spill())
    pieces = _pieces(path)
    try:
        for piece in pieces:
            run.add(piece)
        if run.blocks == 0:
            raise Unsupported("no dump line")
    except BaseException:
        run.spill.close()
        raise
    finally:
        pieces.close()
    if not run.ended and warn:
        warn(f"{path}: no EndMonitor line; the run was interrupted or the file is incomplete")
    return run


def _slices(run: _Run, rows: int) -> Iterator[tuple[str, pa.Table]]:
    """The canonical tables of a read run, in slices of at most `rows` rows; closes the run's spill."""
    try:
        yield from _tables(run, rows)
    finally:
        run.spill.close()


def _tables(run: _Run, rows: int) -> Iterator[tuple[str, pa.Table]]:
    dumps = {k: np.concatenate(v) for k, v in run.dumps.items()}
    run.dumps.clear()  # the pieces' arrays, joined now
    epochs = dumps["epoch"]
    n_blocks = len(epochs)
    # The last dump comes when the run stops, so its gap says nothing of the interval.
    gaps = np.sort(epochs[1:-1] - epochs[:-2]) if n_blocks > 2 else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[epochs[0] - int(gaps[len(gaps) // 2] if len(gaps) else plain.DEFAULT_INTERVAL_S)], epochs[:-1]]).astype(np.int64)
    ends = epochs.astype(np.int64)
    spans = (ends - starts).astype(np.float64)
    spans[spans == 0] = 1.0
    dictionary = pa.array(run.names, pa.string())
    kinds = pa.array([plain._row_kind(k) for k in run.names], pa.string())

    request = run.key_id.get("request", -1)
    for sample in _row_slices(run.spilled(run.samples, SAMPLE_COLUMNS), rows):
        s_block = sample["block"].astype(np.int64)
        s_code = sample["code"]
        cnt, mean, std = sample["count"], sample["mean"], sample["std"]
        span = spans[s_block]
        is_request = s_code == request
        rcv = dumps["rcv"][s_block]
        has = cnt != 0
        yield "request_stats", _conformed("request_stats", {
            "label": pa.DictionaryArray.from_arrays(pa.array(s_code), dictionary).cast(pa.string()),
            "row_kind": pa.DictionaryArray.from_arrays(pa.array(s_code), kinds).cast(pa.string()),
            "window_start": _column(starts[s_block] * 1000),
            "window_end": _column(ends[s_block] * 1000),
            "count": _column(cnt.astype(np.int64)),
            "mean_ms": _column(mean, ~has),
            "std_ms": _column(std, ~has),
            "throughput_rps": _column(cnt / span),
            "errors": _column(dumps["errors"][s_block], ~is_request),
            "received_bytes_per_s": _column(rcv / span, ~is_request),
            "sent_bytes_per_s": _column(dumps["sent"][s_block] / span, ~is_request),
            "avg_bytes": _column(rcv / np.where(has, cnt, 1.0), ~(is_request & has)),
        }, ("window_start", "window_end"))

    # Whole-run rows, one per label in order of first appearance.
    if run.labels:
        codes = np.array(run.labels, dtype=np.int64)
        tot_count, tot_sum, tot_sq, tot_err, vmax, vmin = run.pooled[:, codes]
        names = [run.names[c] for c in codes]
        run_span = float(ends[-1] - starts[0] or 1)
        pooled_mean = [tot_sum[i] / tot_count[i] if tot_count[i] else None for i in range(len(names))]
        whole = _conformed("request_stats", {
            "label": _column(names),
            "row_kind": _column([plain._row_kind(label) for label in names]),
            "count": _column(tot_count.astype(np.int64)),
            "errors": _column([int(tot_err[i]) if names[i] == "request" else None for i in range(len(names))]),
            "mean_ms": _column(pooled_mean),
            "std_ms": _column([math.sqrt(max(tot_sq[i] / tot_count[i] - m * m, 0.0)) if tot_count[i] and m is not None else None
                               for i, m in enumerate(pooled_mean)]),
            "max_ms": _column([float(vmax[i]) if tot_count[i] else None for i in range(len(names))]),
            "min_ms": _column([float(vmin[i]) if tot_count[i] else None for i in range(len(names))]),
            "throughput_rps": _column(tot_count / run_span),
        }, ())
        for at in range(0, whole.num_rows, rows):
            yield "request_stats", whole.slice(at, rows)

    # Load: one row per dump; `connected` is the last current value seen so far.
    connected = dumps["connected"]
    carried = np.maximum.accumulate(np.where(~np.isnan(connected), np.arange(n_blocks), -1))
    connected = np.where(carried >= 0, connected[np.maximum(carried, 0)], np.nan)
    for at in range(0, n_blocks, rows):
        part, span = slice(at, at + rows), spans[at:at + rows]
        yield "load", _conformed("load", {
            "ts": _column(ends[part] * 1000),
            "active_users": _column(dumps["users"][part]),
            "connected": _column(connected[part]),
            "arrivals_per_s": _column(dumps["arrivals"][part] / span),
            "rps": _column(dumps["requests"][part] / span),
            "errors_per_s": _column(dumps["errors"][part] / span),
        }, ("ts",))

    mapped = [plain.OSMON_METRICS.get(o[0], (f"tsung.{o[0]}", None, 1.0)) if o else ("", None, 1.0) for o in run.osmon]
    host_of = pa.array([plain._host(o[1]) if o else None for o in run.osmon], pa.string())
    metric = pa.array([m[0] for m in mapped], pa.string())
    device = pa.array([m[1] for m in mapped], pa.string())
    factor = np.array([m[2] for m in mapped], dtype=np.float64)
    for host in _row_slices(run.spilled(run.hosts, HOST_COLUMNS), rows):
        take = pa.array(host["code"])
        yield "host_metrics", _conformed("host_metrics", {
            "ts": _column(ends[host["block"]] * 1000),
            "host": host_of.take(take),
            "metric": metric.take(take),
            "device": device.take(take),
            "value": _column(host["value"] * factor[host["code"]]),
        }, ("ts",))


def read_tables(path: Path, warn: Callable[[str], None] | None) -> dict[str, pa.Table]:
    """The `request_stats`, `load` and `host_metrics` tables of the tsung.log at `path`, as `tsung_log.read` makes them."""
    parts: dict[str, list[pa.Table]] = {kind: [] for kind in ("request_stats", "load", "host_metrics")}
    for kind, table in _slices(_read(path, warn), BATCH_ROWS):
        parts[kind].append(table)
    return {kind: pa.concat_tables(tables).combine_chunks() if tables else empty(kind) for kind, tables in parts.items()}


def read_batches(path: Path, warn: Callable[[str], None] | None, rows: int | None = None) -> Iterator[tuple[str, pa.Table]]:
    """The same tables in slices of `rows` rows, so no canonical column exists for the whole file at once.

    The whole file is read (and `Unsupported` raised) before the first slice.
    """
    run = _read(path, warn)
    return _slices(run, rows or BATCH_ROWS)
