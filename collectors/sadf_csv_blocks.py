"""`sadf -d` output read column-wise, one activity block at a time, into `host_metrics` batches.

`sadf -d` prints each activity as a block: a `# hostname;interval;timestamp;...` header,
then rows that all have the header's field count. The file is read in chunks cut at line
ends; header lines are found with `bytes.find`, and each block's rows go to
`pyarrow.csv.read_csv` with explicit column types (values straight to float64). Each
distinct timestamp string is parsed once. The long rows are built per time range with
numpy and `sysstat_long.long_table`, so the rows of one range are one batch and the
batches, concatenated, are the table of the whole file. Since every activity lists the whole
file before the next, the values and devices wait in a temporary file until their range is
built (`spilled_columns`); in memory stay a few numbers per distinct time, none per row.

Anything this reader does not expect raises `Unusual`, and `sadf_csv` reads the file line
by line instead (which also names the file and line of a real error): a comment line,
text before the first header, line breaks other than LF and CRLF, bytes that are not UTF-8,
a row of a mapped activity with another field count or a value that is not a plain number,
a row of any activity with fewer than 4 fields, timestamps sadf does not write, UTC and
local timestamps in one file. Restart and comment rows (interval -1) are skipped here, as there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.spilled_columns import Spill, SpilledColumn

PREFIX = "# hostname;interval;timestamp;"
CHUNK_BYTES = 16 << 20
BATCH_ROWS = 500_000
# pyarrow parses blocks of this size in parallel; a row longer than one is left to the line reader.
CSV_BLOCK_BYTES = 2 << 20
# Characters str.splitlines() breaks lines at, which a CSV reader does not.
_ODD_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_ODD_BREAKS_TEXT = ("\x85", "\u2028", "\u2029")


class Unusual(Exception):
    """The file needs the line-by-line reader; the message says why (for debugging only)."""


@dataclass
class Header:
    """What one `# hostname;interval;timestamp;...` header says."""

    device: str | None
    columns: list[str]
    section: sc.Section | None
    known: bool


def header(fields: list[str]) -> Header:
    """The layout of a header, from its fields after `timestamp`."""
    if fields and fields[0] in sc.DEVICE_COLUMNS:
        device: str | None = fields[0]
        columns = fields[1:]
    else:
        device, columns = None, fields
    section = sc.section_for(columns[0], device) if columns else None
    known = section is not None or (bool(columns) and sc.is_skipped(columns[0])) or device in ("INTR", "TTY")
    return Header(device, columns, section, known)


@dataclass
class _Block:
    """The rows of one mapped activity block, as arrays."""

    head: Header
    mapping: dict[str, tuple[str, float]]
    stamps: list[pa.Array] = field(default_factory=list)  # distinct timestamp strings per piece
    stamp_index: list[np.ndarray] = field(default_factory=list)
    devices: list[np.ndarray] = field(default_factory=list)  # global device codes per piece
    values: list[list[tuple[int, int]]] = field(default_factory=list)  # per piece, per usable column: where spilled
    rows: int = 0
    device: SpilledColumn | None = None
    columns: list[tuple[int, SpilledColumn]] = field(default_factory=list)  # (metric code, values)
    ordered: bool = True
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # its distinct times
    # Rows in time order: the first row of each distinct time (and the row count), which places a
    # time range. Rows out of order: each row's time, spilled.
    time_rows: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    ts: SpilledColumn | None = None

    def range_rows(self, lo: int | None, hi: int | None) -> tuple[np.ndarray, slice | np.ndarray]:
        """The times of the rows in [lo, hi), and which rows they are (a slice when in order)."""
        if self.ordered:
            first = 0 if lo is None else int(np.searchsorted(self.times, lo, "left"))
            last = len(self.times) if hi is None else int(np.searchsorted(self.times, hi, "left"))
            counts = np.diff(self.time_rows[first:last + 1])
            return np.repeat(self.times[first:last], counts), slice(int(self.time_rows[first]), int(self.time_rows[last]))
        assert self.ts is not None
        ts = self.ts.rows(0, self.rows)
        inside = np.ones(len(ts), bool)
        if lo is not None:
            inside &= ts >= lo
        if hi is not None:
            inside &= ts < hi
        rows = np.flatnonzero(inside)
        return ts[rows], rows


@dataclass
class Parsed:
    """A whole `sadf -d` file, parsed: the mapped blocks and what the table needs besides."""

    blocks: list[_Block]
    metrics: list[str]
    devices: list[str]
    hosts: set[str]
    cpus: set[str]
    unmapped: list[str]
    spill: Spill  # the values of every block; `batches` closes it


_LABEL = pa.dictionary(pa.int32(), pa.string())


def _labels(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The values of a dictionary column whose chunks share one dictionary, and each row's index."""
    if column.num_chunks == 0:
        return pa.array([], pa.string()), np.zeros(0, np.int32)
    indices = [chunk.indices.to_numpy() for chunk in column.chunks]
    return column.chunk(0).dictionary, indices[0] if len(indices) == 1 else np.concatenate(indices)


def _value_offset(head: Header) -> int:
    return 4 if head.device is not None else 3


def _mapped_row(row: pacsv.InvalidRow) -> str:
    """Restart and comment rows (interval -1) and blank lines are skipped; any other odd row is unusual."""
    text = row.text
    if not text.strip():
        return "skip"
    fields = text.split(";")
    return "skip" if len(fields) >= 4 and fields[1] == "-1" else "error"


def _other_row(row: pacsv.InvalidRow) -> str:
    """Rows of unmapped activities only need the 4 fields every sadf row has."""
    text = row.text
    return "skip" if not text.strip() or len(text.split(";")) >= 4 else "error"


class _Reader:
    def __init__(self, path: Path, tz: str) -> None:
        self.path = path
        self.tz = tz
        self.blocks: list[_Block] = []
        self.metric_code: dict[str, int] = {}
        self.device_code: dict[str, int] = {}
        self.hosts: set[str] = set()
        self.cpus: set[str] = set()
        self.unmapped: list[str] = []
        self.head: Header | None = None
        self.block: _Block | None = None
        self.stamp_cache: tuple[pa.Array, np.ndarray, bool] | None = None
        self.local: set[bool] = set()
        self.spill = Spill()

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        """The file in pieces of whole lines: each piece is `data[:end]` (the last may lack its line end).

        The bytes after `end` are read again as the start of the next piece: not slicing them
        off spares a copy of every piece.
        """
        with open(self.path, "rb") as fh:
            while True:
                data = fh.read(CHUNK_BYTES)
                if not data:
                    return
                end = data.rfind(b"\n") + 1
                while end == 0:  # a line longer than a piece, or a last line without its line end
                    more = fh.read(CHUNK_BYTES)
                    if not more:
                        end = len(data)
                        break
                    data += more
                    end = data.rfind(b"\n") + 1
                if end < len(data):
                    fh.seek(end - len(data), os.SEEK_CUR)
                yield data, end

    def read(self) -> None:
        first = True
        for data, end in self.chunks():
            start = 0
            if first:
                start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
                if not data.startswith(PREFIX.encode(), start):
                    raise Unusual("the first line is not a sadf -d header")
                first = False
            self._check_text(data, start, end)
            self._split(data, start, end)
        if first:
            raise Unusual("empty file")
        self._finish_block()

    @staticmethod
    def _check_text(data: bytes, start: int, end: int) -> None:
        if not data.isascii():
            try:
                text = data[start:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Unusual("not UTF-8") from exc
            if any(c in text for c in _ODD_BREAKS_TEXT):
                raise Unusual("a Unicode line break")
        # Bytes past `end` are checked again with the next piece, so looking at them too is harmless.
        if any(c in data for c in _ODD_BREAKS):
            raise Unusual("a line break other than LF or CRLF")
        if b"\r" in data and data.count(b"\r", start, end) != data.count(b"\r\n", start, end):
            raise Unusual("a line break other than LF or CRLF")

    def _split(self, data: bytes, start: int, end: int) -> None:
        """Hand each block's rows in `data[start:end]` to its parser; start a block at each header."""
        view = memoryview(data)
        at = data.find(b"#", start, end)  # '#' is rare in data rows: a byte search, then a look behind
        while at >= 0:
            if at > start and data[at - 1] != 0x0A:
                at = data.find(b"#", at + 1, end)
                continue
            stop = data.find(b"\n", at, end)
            stop = end if stop < 0 else stop
            line = data[at:stop].removesuffix(b"\r").decode("utf-8")
            if not line.startswith(PREFIX):
                raise Unusual("a comment line")
            self._rows(view[start:at])
            self._finish_block()
            self._start_block(line[len(PREFIX):].split(";"))
            start = min(stop + 1, end)
            at = data.find(b"#", start, end)
        self._rows(view[start:end])

    def _start_block(self, fields: list[str]) -> None:
        head = header(fields)
        self.head = head
        if not head.known:
            self.unmapped.append(";".join(head.columns[:2]))
        if head.section is None:
            self.block = None
            return
        mapping = sc.usable_columns(head.section, head.columns)
        for metric, _ in mapping.values():
            self.metric_code.setdefault(metric, len(self.metric_code))
        self.block = _Block(head, mapping)

    def _rows(self, data: memoryview) -> None:
        if not data:
            return
        assert self.head is not None  # the file starts with a header
        if self.block is None:
            self._check_other(data)
        else:
            self._parse_mapped(self.block, data)

    def _check_other(self, data: memoryview) -> None:
        first = bytes(data[:4096]).split(b"\n", 1)[0]
        if first.count(b";") < 3:
            raise Unusual("a row of fewer than 4 fields, or a blank line first")
        try:
            pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=";", quote_char=False, invalid_row_handler=_other_row),
                convert_options=pacsv.ConvertOptions(include_columns=["f0"], column_types={"f0": pa.string()}),
            )
        except pa.ArrowException as exc:
            raise Unusual(f"rows of an unmapped activity: {exc}") from exc

    def _parse_mapped(self, block: _Block, data: memoryview) -> None:
        head = block.head
        offset = _value_offset(head)
        names = [f"c{i}" for i in range(offset + len(head.columns))]
        # Host, interval, time and device repeat: the CSV reader dictionary-encodes them as it parses.
        types = {n: (_LABEL if i < offset else pa.float64()) for i, n in enumerate(names)}
        try:
            table = pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(column_names=names, block_size=CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=";", quote_char=False, invalid_row_handler=_mapped_row),
                convert_options=pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                                     quoted_strings_can_be_null=False),
            ).unify_dictionaries()
        except pa.ArrowException as exc:
            raise Unusual(f"rows of {head.columns[:1]}: {exc}") from exc
        if "-1" in _labels(table["c1"])[0].to_pylist():
            # Restart and comment rows with the block's own field count: dropped, and the labels
            # encoded again so that only those of the rows kept count.
            table = table.filter(pc.invert(pc.equal(table["c1"].cast(pa.string()), "-1")))
            table = pa.table({n: (pc.dictionary_encode(table[n].cast(pa.string())) if i < offset else table[n])
                              for i, n in enumerate(names)}).unify_dictionaries()
        if table.num_rows == 0:
            return
        self.hosts.update(_labels(table["c0"])[0].to_pylist())
        stamps, stamp_index = _labels(table["c2"])
        block.stamps.append(stamps)
        block.stamp_index.append(stamp_index)
        if head.device is not None:
            found, found_index = _labels(table["c3"])
            names_found = found.to_pylist()
            if head.section is not None and head.section.device == "CPU":
                names_found = [sc.cpu_device(d) for d in names_found]
                self.cpus.update(d for d in names_found if d and d.isdigit())
            codes = np.array([self.device_code.setdefault(d, len(self.device_code)) for d in names_found], np.int32)
            block.devices.append(codes[found_index])
        values = []
        for j, col in enumerate(head.columns):
            if col in block.mapping:
                factor = block.mapping[col][1]
                values.append(self.spill.put(table[names[offset + j]].to_numpy() * factor))
        block.values.append(values)

    def _finish_block(self) -> None:
        block, self.block = self.block, None
        if block is None or not block.stamps:
            return
        if len(block.stamps) == 1:
            distinct, index = block.stamps[0], block.stamp_index[0]
        else:
            distinct, index = _labels(pa.table({"t": pa.chunked_array(
                [pa.DictionaryArray.from_arrays(i, d) for d, i in zip(block.stamps, block.stamp_index, strict=True)])})
                .unify_dictionaries()["t"])
        utc, local = self._stamps(distinct)
        self.local.add(local)
        ts = utc[index]
        block.rows = len(ts)
        block.times = utc
        # Rows in time order list their distinct times in time order too (first seen, first listed);
        # both are checked, since `range_rows` relies on them.
        block.ordered = bool(np.all(ts[1:] >= ts[:-1]) and np.all(utc[1:] >= utc[:-1]))
        if block.ordered:
            block.time_rows = np.concatenate(([0], np.cumsum(np.bincount(index, minlength=len(utc)))))
        else:
            block.ts = self.spill.column(ts)
        if block.devices:
            block.device = self.spill.column(np.concatenate(block.devices))
        for j, col in enumerate(c for c in block.head.columns if c in block.mapping):
            block.columns.append((self.metric_code[block.mapping[col][0]],
                                  SpilledColumn(self.spill, [v[j] for v in block.values], np.dtype(np.float64))))
        block.stamps, block.stamp_index, block.devices, block.values = [], [], [], []
        self.blocks.append(block)

    def _stamps(self, distinct: pa.Array) -> tuple[np.ndarray, bool]:
        """UTC epoch ms of distinct timestamp strings, and whether they were local wall-clock times.

        Local times are read in the `tz` zone. Every block of a file has the same strings, so the
        last answer is kept.
        """
        cached = self.stamp_cache
        if cached is not None and cached[0].equals(distinct):
            return cached[1], cached[2]

        def unusual(_path: object, reason: str, _line: int | None) -> Exception:
            return Unusual(reason)

        wall, local = sl.sadf_times(self.path, distinct.to_pylist(), None, unusual)
        utc = sl.utc_ms(wall, self.tz) if local else wall
        self.stamp_cache = (distinct, utc, local)
        return utc, local


def parse(path: Path, tz: str) -> Parsed:
    """Parse a `sadf -d` file into blocks of arrays, or raise `Unusual`.

    Local timestamps (`sadf -T`/`-t`) are read in the `tz` zone; the blocks' times are UTC.
    """
    reader = _Reader(path, tz)
    try:
        reader.read()
        if len(reader.local) > 1:
            raise Unusual("mixed UTC and local timestamps")
    except BaseException:
        reader.spill.close()
        raise
    devices = [""] * len(reader.device_code)
    for name, code in reader.device_code.items():
        devices[code] = name
    metrics = [""] * len(reader.metric_code)
    for name, code in reader.metric_code.items():
        metrics[code] = name
    return Parsed(reader.blocks, metrics, devices, reader.hosts, reader.cpus, reader.unmapped, reader.spill)


def batches(parsed: Parsed, host: str, source: str, host_info: dict[str, object]) -> Iterator[pa.Table]:
    """The `host_metrics` table of `parsed` in batches of about BATCH_ROWS rows, by time range.

    All rows of one time are in one batch, so each batch's stable sort by time is the whole table's.
    """
    total = sum(b.rows * len(b.columns) for b in parsed.blocks)
    distinct = {id(b.times): b.times for b in parsed.blocks}  # blocks share one array of the same times
    times = np.unique(np.concatenate(list(distinct.values()))) if distinct else np.zeros(0, np.int64)
    count = max(1, min(len(times), -(-total // BATCH_ROWS)))
    # Edges at times spread evenly: sadf rows are evenly spread over time.
    edges = [None, *(int(times[len(times) * k // count]) for k in range(1, count)), None]
    try:
        for lo, hi in zip(edges, edges[1:], strict=False):
            yield sl.long_table(_range(parsed, lo, hi), host, source, host_info)
    finally:
        parsed.spill.close()


def _pick(column: SpilledColumn, rows: slice | np.ndarray) -> np.ndarray:
    return column.rows(rows.start, rows.stop) if isinstance(rows, slice) else column.take(rows)


def _range(parsed: Parsed, lo: int | None, hi: int | None) -> sl.LongArrays:
    """The long rows of times in [lo, hi), in block, column, row order."""
    ts, device, metric, value = [], [], [], []
    for block in parsed.blocks:
        block_ts, rows = block.range_rows(lo, hi)
        n = len(block_ts)
        if n == 0:
            continue
        block_device = _pick(block.device, rows) if block.device is not None else np.full(n, -1, np.int32)
        for code, values in block.columns:
            ts.append(block_ts)
            device.append(block_device)
            metric.append(np.full(n, code, np.int32))
            value.append(_pick(values, rows))
    if not ts:
        return sl.LongArrays(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0),
                             parsed.devices, parsed.metrics)
    return sl.LongArrays(np.concatenate(ts), np.concatenate(device), np.concatenate(metric), np.concatenate(value),
                         parsed.devices, parsed.metrics)
