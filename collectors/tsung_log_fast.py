"""Column-wise reading of a `tsung.log` (text backend): the tables `tsung_log` makes, without per-line Python.

Months of 10-second dumps are millions of lines. This reader takes the lines as one Arrow column,
classifies and splits them with Arrow's regular expressions, and computes the rows of every dump
with numpy, in the same order and with the same arithmetic as `tsung_log.tables_from_blocks` (sums
are accumulated in file order, so every float is the same). It only takes files it can read
without doubt: any line that is not a plain ASCII `# stats: dump at`, `stats:` or `EndMonitor`
line, a file without a final line end, or a value count other than 2 or 7 raises `Unsupported`,
and `tsung_log` then reads the file line by line, which names the bad line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from capacity.schema import conform, empty
from collectors import tsung_log as plain

DUMP_PREFIX = "# stats: dump at "
STATS_PREFIX = "stats: "
END_PREFIX = "EndMonitor:"
END = r"^EndMonitor:\{\d+,\d+,\d+\}\s*$"
OSMON = r'^\{(?P<metric>\w+),"(?P<node>[^"]*)"\}$'
# Rows per slice handed to the store.
BATCH_ROWS = 250_000
# A byte no tsung.log line holds, so each line is one CSV field.
NO_DELIMITER = "\x1f"


class Unsupported(Exception):
    """Not a file this reader takes without doubt; the line-by-line reader decides."""


def _line_batches(path: Path) -> Iterator[pa.Array]:
    """The file's lines, a block of about 8 MB at a time (read on one thread: no read-ahead to hold)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(3)
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 1))
            last = fh.read(1)
    except OSError as exc:
        raise Unsupported(str(exc)) from exc
    if head == b"\xef\xbb\xbf" or last != b"\n":
        raise Unsupported("byte order mark or no final line end")
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["line"], block_size=8 << 20, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=NO_DELIMITER, quote_char=False, escape_char=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
        for batch in reader:
            lines = batch.column(0)
            if not pc.all(pc.string_is_ascii(lines), min_count=0).as_py():
                raise Unsupported("non-ASCII text")
            yield lines
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise Unsupported(str(exc)) from exc


class _Lines:
    """What the tables need of every line, kept compact: dump epochs, and per `stats:` line its dump,
    key code, value count and values."""

    def __init__(self) -> None:
        self.epochs: list[np.ndarray] = []
        self.block: list[np.ndarray] = []
        self.code: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.flat: list[np.ndarray] = []
        self.key_id: dict[str, int] = {}
        self.blocks = 0
        self.ended = False

    def add(self, lines: pa.Array) -> None:
        # Prefix tests first: a regular expression over millions of lines costs more than the rest.
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
        block_of_line = self.blocks + np.cumsum(dump_mask) - 1
        self.blocks += int(dump_mask.sum())
        epoch_text = pc.utf8_rtrim_whitespace(pc.utf8_slice_codeunits(lines.filter(is_dump), len(DUMP_PREFIX)))
        if not pc.all(pc.ascii_is_decimal(epoch_text), min_count=0).as_py():
            raise Unsupported("a dump line without an epoch")
        self.epochs.append(pc.cast(epoch_text, pa.int64()).to_numpy())
        body = pc.utf8_rtrim_whitespace(pc.utf8_slice_codeunits(lines.filter(is_stats), len(STATS_PREFIX)))
        # `stats: <key> <values>` split on whitespace, as the line reader's pattern does unless a
        # `{...}` key holds whitespace or the key does not follow `stats: ` at once.
        braced = body.filter(pc.starts_with(body, "{"))
        if pc.any(pc.match_substring_regex(braced, r"^\{[^}]*\s"), min_count=0).as_py():
            raise Unsupported("whitespace inside a {...} key")
        fields = pc.utf8_split_whitespace(body)
        counts = pc.list_value_length(fields).to_numpy() - 1
        keys = pc.list_element(fields, 0)
        if pc.any(pc.equal(keys, ""), min_count=0).as_py() or (counts < 1).any():
            raise Unsupported("a stats line without key or values")
        flat_all = pc.list_flatten(fields)
        not_key = np.ones(len(flat_all), dtype=bool)
        not_key[np.concatenate([[0], np.cumsum(counts + 1)])[:-1]] = False
        try:
            flat = pc.cast(flat_all.filter(pa.array(not_key)), pa.float64()).to_numpy()
        except pa.ArrowInvalid as exc:
            raise Unsupported(str(exc)) from exc
        if not np.isfinite(flat).all():
            raise Unsupported("nan or inf among the values")  # kept as values by the line reader, not as missing
        # Keys repeat in every dump: codes, numbered in order of first appearance in the file.
        encoded = pc.dictionary_encode(keys)
        local = np.array([self.key_id.setdefault(k, len(self.key_id)) for k in encoded.dictionary.to_pylist()], dtype=np.int64)
        # int32 keeps the per-line columns of a month of dumps small; widened where indices are computed.
        self.code.append((local[encoded.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, dtype=np.int64)).astype(np.int32))
        self.block.append(block_of_line[is_stats.to_numpy(zero_copy_only=False)].astype(np.int32))
        self.counts.append(counts.astype(np.int32))
        self.flat.append(flat)


def _group_sum_in_order(keys: np.ndarray, values: np.ndarray, n_keys: int) -> np.ndarray:
    """Per key, the sum of `values` taken in array order (as a Python loop would add them)."""
    out = np.zeros(n_keys)
    np.add.at(out, keys, values)  # unbuffered, element by element: file order
    return out


def _column(values: object, mask: np.ndarray | None = None) -> pa.Array:
    """A numpy column (NaN = missing) or a list (None = missing) as Arrow."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            missing = np.isnan(values) if mask is None else mask | np.isnan(values)
            return pa.array(values, mask=missing)
        return pa.array(values, mask=mask)
    return pa.array(values)


def _compact(kind: str, parts: list[dict[str, pa.Array]], time_columns: tuple[str, ...]) -> pa.Table:
    """The rows of `parts` with only the columns they fill (times from epoch ms); `_conformed` completes them."""
    lengths = [len(next(iter(part.values()))) for part in parts]
    spec = empty(kind).schema
    columns: dict[str, pa.Array] = {}
    for name in spec.names:
        if name == "source" or not any(name in part for part in parts):
            continue
        pieces = [part[name].cast(pa.int64() if name in time_columns else spec.field(name).type) if name in part
                  else pa.nulls(n, pa.int64() if name in time_columns else spec.field(name).type) for part, n in zip(parts, lengths, strict=True)]
        column = pa.concat_arrays(pieces)
        columns[name] = column.cast(pa.timestamp("ms", tz="UTC")) if name in time_columns else column
    return pa.table(columns) if columns else pa.table({"source": pa.array([], pa.string())})


def _conformed(kind: str, compact: pa.Table) -> pa.Table:
    """`tsung_log._table` of the same rows: the canonical table, every other column null."""
    if compact.num_rows == 0:
        return empty(kind)
    return conform(compact.append_column("source", pa.array([plain.name] * compact.num_rows, pa.string())), kind)


def read_tables(path: Path, warn: Callable[[str], None] | None) -> dict[str, pa.Table]:
    """The `request_stats`, `load` and `host_metrics` tables of the tsung.log at `path`, as `tsung_log.read` makes them."""
    return {kind: _conformed(kind, compact) for kind, compact in compact_tables(path, warn).items()}


def read_batches(path: Path, warn: Callable[[str], None] | None, rows: int | None = None) -> Iterator[tuple[str, pa.Table]]:
    """The same tables in slices of `rows` rows, so the canonical columns a dump leaves empty
    (most of `request_stats`) never exist for the whole file at once.

    `Unsupported` can only be raised before the first slice.
    """
    rows = rows or BATCH_ROWS
    tables = compact_tables(path, warn)
    for kind, compact in tables.items():
        for start in range(0, compact.num_rows, rows):
            yield kind, _conformed(kind, compact.slice(start, rows))


def compact_tables(path: Path, warn: Callable[[str], None] | None) -> dict[str, pa.Table]:
    """Per canonical table, the rows of the tsung.log at `path` with the columns they fill."""
    host_of, row_kind_of, osmon_metrics, default_interval_s = plain._host, plain._row_kind, plain.OSMON_METRICS, plain.DEFAULT_INTERVAL_S
    read = _Lines()
    batches = _line_batches(path)
    try:
        for lines in batches:
            read.add(lines)
    finally:
        batches.close()  # release the CSV reader's threads now, also when a batch is refused
    if read.blocks == 0:
        raise Unsupported("no dump line")
    epochs = np.concatenate(read.epochs)
    block = np.concatenate(read.block).astype(np.int64)
    code = np.concatenate(read.code).astype(np.int64)
    counts = np.concatenate(read.counts).astype(np.int64)
    flat = np.concatenate(read.flat)
    del read.block, read.code, read.counts, read.flat
    offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
    names_all = list(read.key_id)
    dictionary = pa.array(names_all, pa.string())
    n_keys = len(names_all)
    key_osmon = pc.is_valid(pc.extract_regex(dictionary, OSMON)).to_numpy(zero_copy_only=False)
    is_osmon = key_osmon[code]
    key_id = {k: i for i, k in enumerate(names_all)}
    is_users = (code == key_id.get("users", -1)) & (counts == 2)
    is_sample = (counts == 7) & ~is_users
    is_counter = (counts == 2) & ~is_osmon & ~is_users
    if not np.all(is_users | is_sample | is_counter):
        raise Unsupported("a value count other than 2 or 7")

    n_blocks = len(epochs)
    if not read.ended and warn:
        warn(f"{path}: no EndMonitor line; the run was interrupted or the file is incomplete")
    gaps = np.sort(epochs[1:-1] - epochs[:-2]) if n_blocks > 2 else np.zeros(0, dtype=np.int64)
    first_start = epochs[0] - int(gaps[len(gaps) // 2] if len(gaps) else default_interval_s)
    starts = np.concatenate([[first_start], epochs[:-1]]).astype(np.int64)
    ends = epochs.astype(np.int64)
    spans = (ends - starts).astype(np.float64)
    spans[spans == 0] = 1.0

    def value(i: np.ndarray, k: int) -> np.ndarray:
        return flat[offsets[i] + k]

    # Counters, per dump and key: a key printed twice in a dump adds up (both numbers).
    c_rows = np.flatnonzero(is_counter)
    c_cell = block[c_rows] * n_keys + code[c_rows]
    counter_sum = [np.zeros(n_blocks * n_keys), np.zeros(n_blocks * n_keys)]
    np.add.at(counter_sum[0], c_cell, value(c_rows, 0))
    np.add.at(counter_sum[1], c_cell, value(c_rows, 1))
    present = np.zeros(n_blocks * n_keys, dtype=bool)
    present[c_cell] = True

    def counter(name: str, which: int) -> np.ndarray:
        """A counter's interval (0) or total (1) value per dump; NaN where the dump lacks it."""
        if name not in key_id:
            return np.full(n_blocks, np.nan)
        cells = np.arange(n_blocks) * n_keys + key_id[name]
        return np.where(present[cells], counter_sum[which][cells], np.nan)

    errors = np.zeros(n_blocks)
    for k, key in enumerate(names_all):
        if not key_osmon[k] and (key.startswith("error") or (key.isdigit() and int(key) >= 400)):
            errors += np.nan_to_num(counter(key, 0), nan=0.0)
    errors = errors.astype(np.int64)  # int() of a sum of counts

    # Samples: the last value of a key in a dump, at the place of its first appearance.
    s_all = np.flatnonzero(is_sample & ~is_osmon)
    cell = block[s_all] * n_keys + code[s_all]
    _, first = np.unique(cell, return_index=True)
    _, last_rev = np.unique(cell[::-1], return_index=True)
    order = np.argsort(first, kind="stable")
    rows = s_all[len(cell) - 1 - last_rev][order]
    s_block = block[rows]
    s_code = code[rows]
    kinds = [row_kind_of(k) for k in names_all]
    label_array = pa.DictionaryArray.from_arrays(pa.array(s_code.astype(np.int32)), dictionary).cast(pa.string())
    kind_array = pa.DictionaryArray.from_arrays(pa.array(s_code.astype(np.int32)), pa.array(kinds)).cast(pa.string())
    cnt, mean, std, vmax, vmin = (value(rows, k) for k in range(5))
    span = spans[s_block]
    is_request = s_code == key_id.get("request", -1)
    rcv = np.nan_to_num(counter("size_rcv", 0), nan=0.0)[s_block]
    sent = np.nan_to_num(counter("size_sent", 0), nan=0.0)[s_block]
    has = cnt != 0
    windowed = {
        "label": label_array,
        "row_kind": kind_array,
        "window_start": _column(starts[s_block] * 1000),
        "window_end": _column(ends[s_block] * 1000),
        "count": _column(cnt.astype(np.int64)),
        "mean_ms": _column(mean, ~has),
        "std_ms": _column(std, ~has),
        "throughput_rps": _column(cnt / span),
        "errors": _column(errors[s_block], ~is_request),
        "received_bytes_per_s": _column(rcv / span, ~is_request),
        "sent_bytes_per_s": _column(sent / span, ~is_request),
        "avg_bytes": _column(rcv / np.where(has, cnt, 1.0), ~(is_request & has)),
    }

    # Whole-run rows, one per label in order of first appearance, sums in file order.
    seen_codes, first_at = np.unique(s_code, return_index=True)
    label_codes = seen_codes[np.argsort(first_at, kind="stable")]
    names = [names_all[c] for c in label_codes]
    position = np.zeros(n_keys, dtype=np.int64)
    position[label_codes] = np.arange(len(label_codes))
    label_ix = position[s_code]
    tot_count = _group_sum_in_order(label_ix, cnt, len(names))
    tot_sum = _group_sum_in_order(label_ix, cnt * mean, len(names))
    tot_sq = _group_sum_in_order(label_ix, cnt * (std * std + mean * mean), len(names))
    tot_err = _group_sum_in_order(label_ix, np.where(is_request, errors[s_block], 0).astype(np.float64), len(names))
    last = np.full(len(names), -1, dtype=np.int64)
    np.maximum.at(last, label_ix, np.arange(len(rows)))  # the last occurrence of each label
    run_span = float(ends[-1] - starts[0] or 1)
    pooled_mean = [tot_sum[i] / tot_count[i] if tot_count[i] else None for i in range(len(names))]
    whole = {
        "label": _column(names),
        "row_kind": _column([row_kind_of(label) for label in names]),
        "count": _column(tot_count.astype(np.int64)),
        "errors": _column([int(tot_err[i]) if names[i] == "request" else None for i in range(len(names))]),
        "mean_ms": _column(pooled_mean),
        "std_ms": _column([math.sqrt(max(tot_sq[i] / tot_count[i] - m * m, 0.0)) if tot_count[i] and m is not None else None
                           for i, m in enumerate(pooled_mean)]),
        "max_ms": _column([float(vmax[last[i]]) if tot_count[i] else None for i in range(len(names))]),
        "min_ms": _column([float(vmin[last[i]]) if tot_count[i] else None for i in range(len(names))]),
        "throughput_rps": _column(tot_count / run_span),
    }

    # Load: one row per dump; `connected` is the last current value seen so far.
    users = np.full(n_blocks, np.nan)
    u_rows = np.flatnonzero(is_users)
    u_last = np.full(n_blocks, -1, dtype=np.int64)
    np.maximum.at(u_last, block[u_rows], u_rows)  # the last `users` line of each dump
    users[u_last >= 0] = value(u_last[u_last >= 0], 0)
    connected = counter("connected", 1)
    seen = np.where(~np.isnan(connected), np.arange(n_blocks), -1)
    carried = np.maximum.accumulate(seen)
    connected = np.where(carried >= 0, connected[np.maximum(carried, 0)], np.nan)
    request_count = np.zeros(n_blocks)
    request_count[s_block[is_request]] = cnt[is_request]
    load = {
        "ts": _column(ends * 1000),
        "active_users": _column(users),
        "connected": _column(connected),
        "arrivals_per_s": _column(np.nan_to_num(counter("users_count", 0), nan=0.0) / spans),
        "rps": _column(request_count / spans),
        "errors_per_s": _column(errors / spans),
    }

    # os_mon samples with a count, in file order.
    os_rows = np.flatnonzero(is_sample & is_osmon)
    os_rows = os_rows[value(os_rows, 0) > 0]
    os_codes = code[os_rows]
    parsed = pc.extract_regex(dictionary, OSMON)
    metrics = pc.struct_field(parsed, "metric").to_pylist()
    nodes = pc.struct_field(parsed, "node").to_pylist()
    mapped = [osmon_metrics.get(m, (f"tsung.{m}", None, 1.0)) if m is not None else ("", None, 1.0) for m in metrics]
    per_key = {
        "host": pa.array([host_of(n) if n is not None else None for n in nodes], pa.string()),
        "metric": pa.array([m[0] for m in mapped], pa.string()),
        "device": pa.array([m[1] for m in mapped], pa.string()),
    }
    take = pa.array(os_codes, pa.int64())
    hosts = {
        "ts": _column(ends[block[os_rows]] * 1000),
        **{k: v.take(take) for k, v in per_key.items()},
        "value": _column(value(os_rows, 1) * np.array([m[2] for m in mapped], dtype=np.float64)[os_codes]),
    }
    return {
        "request_stats": _compact("request_stats", [windowed, whole], ("window_start", "window_end")),
        "load": _compact("load", [load], ("ts",)),
        "host_metrics": _compact("host_metrics", [hosts], ("ts",)),
    }
