"""JMeter XML JTL files into `requests`, stream-parsed.

An expat push parser reads the file in chunks and builds no element tree,
only the rows, so memory stays flat whatever the file size; rows leave in
batches of `BATCH_ROWS`. Top-level `httpSample`/`sample`
elements are samples (or Transaction Controller parents), nested ones are
sub-results (embedded resources, redirects), except the children of a
Transaction Controller parent: those are the requests the transaction is made
of, so they stay `sample` rows (as in a CSV JTL) and the parent is reported as
a `transaction`; nothing is counted twice within a row kind.
See FORMATS.md 3.2 for the attributes.

Large files take the column-wise fast path of `collectors.jmeter_xml_fast`, which
gives the same rows or hands the file back to this expat reader (`read_batches`,
`engine`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.parsers import expat

import pyarrow as pa
import pyarrow.compute as pc

from collectors import jmeter_xml_fast, jtl_fast
from collectors.base import CollectorError, head_text, tables_of
from collectors.load_seconds import LoadSeconds

name = "jmeter_xml"

BATCH_ROWS = 50_000
ENGINES = ("auto", "fast", "plain")
# Below this size the plain reader is fast enough and the fast path's fixed costs do not pay.
FAST_MIN_BYTES = 4 << 20
TAIL_BYTES = 4096
CHUNK_BYTES = 1 << 20
SAMPLE_TAGS = {"httpSample", "sample"}
TX_PREFIX = "Number of samples in transaction"
# SampleResultConverter attribute -> (canonical column, type).
ATTRIBUTES: dict[str, tuple[str, pa.DataType]] = {
    "t": ("elapsed_ms", pa.float64()),
    "it": ("idle_ms", pa.float64()),
    "lt": ("latency_ms", pa.float64()),
    "ct": ("connect_ms", pa.float64()),
    "lb": ("label", pa.string()),
    "rc": ("status", pa.string()),
    "rs": ("status", pa.string()),  # accepted by JMeter's reader for old files
    "rm": ("message", pa.string()),
    "tn": ("thread", pa.string()),
    "dt": ("data_type", pa.string()),
    "by": ("bytes", pa.int64()),
    "sby": ("sent_bytes", pa.int64()),
    "ng": ("group_threads", pa.int64()),
    "na": ("active_users", pa.int64()),
    "hn": ("generator", pa.string()),
}
# The same, as Python converters: comparing Arrow types once per attribute and row costs more than the parse.
_CONVERT: dict[str, tuple[str, Callable[[str], object]]] = {
    key: (column, int if type_ == pa.int64() else float if type_ == pa.float64() else str) for key, (column, type_) in ATTRIBUTES.items()
}
# Standard attributes with no canonical column (encoding, sample/error counts): not sample variables.
DROPPED = {"de", "sc", "ec"}
# expat errors that only happen when the input stops early: a file cut while JMeter wrote it.
_TRUNCATION_CODES = {3, 5, 6}  # no element found, unclosed token, partial character

Warn = Callable[[str], None] | None


def detect(path: Path) -> bool:
    """An XML document whose root element is JMeter's `<testResults>`."""
    text = head_text(path, 4096).lstrip()
    text = re.sub(r"^<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"^(<!--.*?-->\s*)+", "", text, flags=re.S)
    return re.match(r"<testResults(\s|>)", text) is not None


def _table(rows: list[dict[str, object]], generator: str) -> pa.Table:
    """Rows (dicts) as one Arrow table; `ts` stays epoch ms until cast at the end."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    cols: dict[str, pa.Array] = {}
    for key in names:
        values = [row.get(key) for row in rows]
        if key == "ts":
            cols[key] = pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        else:
            cols[key] = pa.array(values, _type_of(key))
    n = len(rows)
    # A sample without `hn` gets the file's generator, whether or not others in the batch have one.
    cols["generator"] = pc.fill_null(cols["generator"], generator) if "generator" in cols else pa.array([generator] * n, pa.string())
    cols["source"] = pa.array([name] * n, pa.string())
    return pa.table(cols)


def _type_of(column: str) -> pa.DataType:
    for col, type_ in ATTRIBUTES.values():
        if col == column:
            return type_
    return {"ts": pa.timestamp("ms", tz="UTC"), "success": pa.bool_()}.get(column, pa.string())


def _row(path: Path, attrib: dict[str, str], parent_kind: str | None, line: int | None) -> dict[str, object]:
    row: dict[str, object] = {}
    try:
        row["ts"] = int(attrib["ts"])
        row["success"] = attrib["s"].lower() == "true"
        row["label"] = attrib["lb"]
        row["elapsed_ms"] = float(attrib["t"])
        for key, value in attrib.items():
            if key in ("ts", "s", "lb", "t") or key in DROPPED:
                continue
            if key in _CONVERT:
                column, convert = _CONVERT[key]
                row[column] = convert(value)
            else:
                row[f"var_{key}"] = value
    except KeyError as exc:
        raise CollectorError(path, f"sample without the {exc.args[0]!r} attribute", line=line) from exc
    except ValueError as exc:
        raise CollectorError(path, f"non-numeric attribute value: {exc}", line=line) from exc
    if parent_kind is not None and parent_kind != "transaction":
        row["row_kind"] = "subresult"
    elif str(row.get("message") or "").startswith(TX_PREFIX):
        row["row_kind"] = "transaction"
    else:
        row["row_kind"] = "sample"
    return row


class _Parser:
    """expat callbacks building rows; complete top-level samples move to `done`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.expat = expat.ParserCreate()
        self.expat.buffer_text = True
        self.expat.StartElementHandler = self.start
        self.expat.EndElementHandler = self.end
        self.expat.CharacterDataHandler = self.text
        self.root: str | None = None
        self.done: list[dict[str, object]] = []
        self.stack: list[dict[str, object]] = []
        self.open_rows: list[dict[str, object]] = []
        self.assertion: dict[str, str] = {}
        self.chars: list[str] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.chars = []
        if self.root is None:
            self.root = tag
            if tag != "testResults":
                raise CollectorError(self.path, f"root element is <{tag}>, expected <testResults>", line=self.expat.CurrentLineNumber)
        elif tag in SAMPLE_TAGS:
            parent_kind = str(self.stack[-1]["row_kind"]) if self.stack else None
            row = _row(self.path, attrib, parent_kind, self.expat.CurrentLineNumber)
            self.open_rows.append(row)
            self.stack.append(row)

    def text(self, data: str) -> None:
        self.chars.append(data)

    def end(self, tag: str) -> None:
        text = "".join(self.chars)
        self.chars = []
        if not self.stack:
            return
        if tag in SAMPLE_TAGS:
            self.stack.pop()
            if not self.stack:
                self.done.extend(self.open_rows)
                self.open_rows = []
        elif tag in ("failure", "error", "failureMessage"):
            self.assertion[tag] = text
        elif tag == "assertionResult":
            failed = self.assertion.get("failure", "").strip() == "true" or self.assertion.get("error", "").strip() == "true"
            message = self.assertion.get("failureMessage")
            if failed and message:
                current = self.stack[-1]
                current["error"] = f"{current['error']}\n{message}" if current.get("error") else message
            self.assertion = {}
        elif tag == "java.net.URL":
            self.stack[-1]["url"] = text


def read_batches(path: Path, host: str | None = None, warn: Warn = None, engine: str = "auto", **_: object) -> Iterator[tuple[str, pa.Table]]:
    """Stream an XML JTL as batches of `requests`, then its `load` per second (`load_seconds`).

    See `request_batches` for the engines.
    """
    load = LoadSeconds(name)
    for kind, table in request_batches(path, host, warn, engine):
        load.add(table)
        yield kind, table
    table = load.table()
    if table is not None:
        yield "load", table


def request_batches(path: Path, host: str | None = None, warn: Warn = None, engine: str = "auto") -> Iterator[tuple[str, pa.Table]]:
    """Stream an XML JTL as batches of the canonical `requests` table (`ts` is always epoch ms in XML).

    `engine`: `fast` parses column-wise (`collectors.jmeter_xml_fast`), `plain` with expat, one
    Python call per element; `auto` (default) takes `fast` for files of at least FAST_MIN_BYTES
    that end with `</testResults>`. Both give the same rows; whenever the fast path meets
    something it cannot prove it reads the same way, the plain reader takes over (and forgives
    a truncated end, or names the bad line).
    """
    path = Path(path)
    if engine not in ENGINES:
        raise CollectorError(path, f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    generator = host or path.stem
    if engine == "plain" or (engine == "auto" and not _worth_fast(path)):
        yield from _plain_batches(path, generator, warn)
        return
    given = 0
    try:
        # Parsed in a thread while the caller writes the previous batch.
        for table in jtl_fast.prefetched(jmeter_xml_fast.scan(path, generator)):
            given += table.num_rows
            yield "requests", table
    except jmeter_xml_fast.Unavailable:
        # The plain reader starts over; rows already given are skipped, so nothing is written twice.
        for kind, table in _plain_batches(path, generator, warn):
            if given >= table.num_rows:
                given -= table.num_rows
                continue
            yield kind, table.slice(given)
            given = 0


def _worth_fast(path: Path) -> bool:
    """Large enough for the fast path to pay, and not visibly cut short (JMeter killed mid-write)."""
    size = path.stat().st_size
    if size < FAST_MIN_BYTES:
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, size - TAIL_BYTES))
        return fh.read().rstrip().endswith(b"</testResults>")


def _plain_batches(path: Path, generator: str, warn: Warn) -> Iterator[tuple[str, pa.Table]]:
    """The expat reader: rows leave in batches of BATCH_ROWS once their top-level sample is closed."""
    parser = _Parser(path)
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            try:
                parser.expat.Parse(chunk, not chunk)
            except expat.ExpatError as exc:
                if exc.code in _TRUNCATION_CODES and parser.root is not None:
                    if warn:
                        warn(f"{path}:{exc.lineno}: file ends inside an element (JMeter stopped mid-write); the unfinished sample is skipped")
                    break
                raise CollectorError(path, f"malformed XML: {expat.ErrorString(exc.code)} (column {exc.offset})", line=exc.lineno) from exc
            while len(parser.done) >= BATCH_ROWS:
                rows, parser.done = parser.done[:BATCH_ROWS], parser.done[BATCH_ROWS:]
                yield "requests", _table(rows, generator)
            if not chunk:
                break
    if parser.root is None:
        raise CollectorError(path, "empty file: expected a JMeter XML JTL (<testResults>)")
    if parser.done:
        yield "requests", _table(parser.done, generator)


def read(path: Path, **options: object) -> dict[str, pa.Table]:
    """Read a whole XML JTL into the canonical `requests` table and its `load` per second."""
    return tables_of(read_batches(path, **options), "requests")  # type: ignore[arg-type]
