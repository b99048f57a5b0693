"""Fast path of the JMeter XML JTL reader: the file parsed column-wise, no Python per element.

The file is cut into chunks just before a top-level sample (a line starting `<httpSample `
or `<sample `, as JMeter's pretty printer writes them) and the chunks are parsed in
parallel threads. In a chunk, every `<` starts one markup token (a tag plus the text
after it), so the tokens are a zero-copy Arrow string array over the bytes. Sample start
tags are split at their quotes into attribute columns by `collectors.jmeter_xml_attributes`.
Every other token repeats a lot and is checked once per distinct token (only those are
hashed) against an XML tag grammar. Nesting is numpy arithmetic: a running depth, end tags
matched to start tags level by level, the enclosing sample of an element by a running
maximum per level.

`scan` gives exactly the rows of the plain (expat) reader of `collectors.jmeter_xml`,
same order and values, or raises `Unavailable` as soon as it meets anything it cannot
prove it reads the same way: a DOCTYPE, comment, processing instruction or CDATA, a
character reference, a carriage return or control character, a tag spread over lines,
malformed or truncated XML, a non-numeric number, a chunk cut that is not between
top-level samples. The caller then reads the file with the plain reader, which
forgives a truncated end or names the bad line.

This is not a collector (no `name`, not in the registry): it only parses.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.jmeter_xml_attributes import NAME, REF, SampleAttributes, Unavailable, placed, unescape

CHUNK_BYTES = 4 << 20
# No cut point in this much (no pretty printing, or one huge sample): left to the plain reader.
MAX_CHUNK_BYTES = 512 << 20
WORKERS = max(1, min(4, os.cpu_count() or 1))
TX_PREFIX = "Number of samples in transaction"
# SampleResultConverter attribute -> canonical column (as in `collectors.jmeter_xml.ATTRIBUTES`).
NUMBERS: dict[str, tuple[str, pa.DataType]] = {
    "t": ("elapsed_ms", pa.float64()), "it": ("idle_ms", pa.float64()), "lt": ("latency_ms", pa.float64()),
    "ct": ("connect_ms", pa.float64()), "by": ("bytes", pa.int64()), "sby": ("sent_bytes", pa.int64()),
    "ng": ("group_threads", pa.int64()), "na": ("active_users", pa.int64()),
}
TEXTS = {"lb": "label", "rm": "message", "tn": "thread", "dt": "data_type", "hn": "generator"}
NOT_VARIABLES = {"ts", "s", "rc", "rs", "de", "sc", "ec", *NUMBERS, *TEXTS}
KINDS = ("sample", "transaction", "subresult")  # row_kind by code; an Arrow array made at import would load pandas
HTTP, SAMPLE, ROOT = 0, 1, 2  # element name codes fixed in `_Names`

# One non-sample token: a tag, then the text up to the next `<` (RE2 syntax, no back references).
_TOKEN = (rf'^<(?P<close>/?)(?P<name>{NAME})(?P<attrs>(?:[ \t\n]+{NAME}[ \t\n]*=[ \t\n]*"(?:[^"<&]|{REF})*")*)'
          rf"[ \t\n]*(?P<empty>/?)>(?P<text>(?:[^<&]|{REF})*)$")
_ATTR_NAMES = re.compile(rf'({NAME})[ \t\n]*=[ \t\n]*"[^"]*"')
_DECL = re.compile(rb"<\?xml[ \t\n]+version=([\"'])1\.[0-9]\1([ \t\n]+encoding=([\"'])(?i:utf-8)\3)?"
                   rb"([ \t\n]+standalone=([\"'])(?:yes|no)\5)?[ \t\n]*\?>[ \t\n]*")
_CUTS = (b"\n<httpSample ", b"\n<sample ")


class _Names:
    """Element names as small integer codes, shared by the chunk threads."""

    def __init__(self) -> None:
        self.codes = {"httpSample": HTTP, "sample": SAMPLE, "testResults": ROOT}
        self.lock = threading.Lock()

    def code(self, name: str) -> int:
        with self.lock:
            return self.codes.setdefault(name, len(self.codes))


def scan(path: Path, generator: str) -> Iterator[pa.Table]:
    """Batches of the `requests` table of the XML JTL at `path`, in file order (one per chunk).

    `generator` fills the generator of samples without an `hn` attribute. Raises
    `Unavailable` (possibly after some batches were given) when the file needs the plain reader.
    """
    names = _Names()
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="jtl-xml-fast")
    running: deque[tuple[Future, bool, bool]] = deque()
    try:
        for index, (chunk, start, last) in enumerate(_chunks(path)):
            running.append((pool.submit(_parse, chunk, start, index == 0, names, generator), index == 0, last))
            while len(running) > WORKERS or (running and running[0][0].done()):
                yield from _finished(*running.popleft())
        while running:
            yield from _finished(*running.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished(future: Future, first: bool, last: bool) -> Iterator[pa.Table]:
    """The table of a parsed chunk, once its end state shows it joins its neighbours."""
    try:
        table, stack = future.result()
    except (pa.ArrowException, ValueError, IndexError, OverflowError) as exc:
        # Input the checks above did not foresee: the plain reader decides what it means.
        raise Unavailable(f"fast path failed: {exc}") from exc
    # Each chunk was parsed as if it began inside the root only; that holds if every one ends so.
    if stack != (() if last else (ROOT,)):
        raise Unavailable("chunk not cut between top-level samples")
    if table is not None:
        yield table


def _chunks(path: Path) -> Iterator[tuple[bytes, int, bool]]:
    """(bytes, offset of the root element, last?) of consecutive chunks, each cut before a top-level sample."""
    with open(path, "rb") as fh:
        buf = fh.read(CHUNK_BYTES)
        found = _DECL.match(buf)
        if found:
            start = found.end()
        elif buf.startswith(b"<?") or not buf.lstrip(b" \t\n"):
            raise Unavailable("unusual XML declaration or empty file")
        else:
            start = len(buf) - len(buf.lstrip(b" \t\n"))
        while True:
            data = fh.read(CHUNK_BYTES)
            if not data:
                yield buf, start, True
                return
            buf += data
            cut = max(buf.rfind(c, start) for c in _CUTS) + 1
            if cut > start:
                yield buf[:cut], start, False
                buf, start = buf[cut:], 0
            elif len(buf) > MAX_CHUNK_BYTES:
                raise Unavailable("no top-level sample at a line start")


def _parse(buf: bytes, start: int, first: bool, names: _Names, generator: str) -> tuple[pa.Table | None, tuple[int, ...]]:
    """The rows of one chunk, and the elements still open at its end (outermost first)."""
    arr = np.frombuffer(buf, np.uint8)
    # expat normalises CR and tabs in attributes and rejects control characters, `]]>` in text and
    # U+FFFE/U+FFFF: none is worth reproducing, so such files go to the plain reader.
    newlines = np.flatnonzero(arr == 10)
    tabs = np.flatnonzero(arr == 9)
    if np.count_nonzero(arr < 32) != len(newlines) + len(tabs):
        raise Unavailable("control character or carriage return")
    ascii_only = int(arr.max(initial=0)) < 128
    if np.count_nonzero(arr == 93) or (not ascii_only and np.count_nonzero(arr == 0xEF)):
        if b"]]>" in buf or b"\xef\xbf\xbe" in buf or b"\xef\xbf\xbf" in buf:
            raise Unavailable("']]>' or a non-character")
    lt = np.flatnonzero(arr == 60)
    lt = lt[lt >= start] if start else lt
    if not len(lt) or lt[0] != start:
        raise Unavailable("text before the root element")
    n = len(lt)
    offsets = np.empty(n + 1, np.int32)
    offsets[:n] = lt
    offsets[n] = len(buf)
    tokens = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))
    try:
        if not ascii_only:  # ASCII is UTF-8
            tokens.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise Unavailable("not UTF-8") from exc

    is_http = pc.starts_with(tokens, "<httpSample ").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(is_http | pc.starts_with(tokens, "<sample ").to_numpy(zero_copy_only=False))
    other = np.ones(n, bool)
    other[starts] = False
    kind, name, entry, texts = _other_tokens(tokens, other, names)
    attrs = SampleAttributes(buf, arr, offsets, starts, is_http[starts], newlines, tabs)
    kind[starts] = np.where(attrs.empty, 0, 1)
    name[starts] = np.where(is_http[starts], HTTP, SAMPLE)

    sdelta = np.zeros(n, np.int8)
    sdelta[starts] = kind[starts]
    sdelta[(kind == -1) & (name <= SAMPLE)] = -1
    sdepth = np.cumsum(sdelta, dtype=np.int32)
    if sdepth.min() < 0 or sdepth[-1] != 0:
        raise Unavailable("samples not closed")
    stack = _check_nesting(() if first else (ROOT,), first, kind, name, entry, texts)
    if not len(starts):
        return None, stack
    return _requests(attrs, starts, kind, name, sdepth, entry, texts, names, generator), stack


def _other_tokens(tokens: pa.StringArray, other: np.ndarray, names: _Names) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    """Kind (1 start, -1 end, 0 empty), name code and distinct-entry number of every non-sample
    token, each distinct token checked against the grammar once; and the entries' unescaped texts."""
    # Sample start tags are long and all distinct: hashing them would cost more than the rest.
    encoded = pc.dictionary_encode(tokens.filter(pa.array(other)))
    entry = np.full(len(tokens), -1, np.int64)
    entry[other] = encoded.indices.to_numpy()
    parts = pc.extract_regex(encoded.dictionary, _TOKEN)
    if parts.null_count:
        raise Unavailable("markup the fast path does not read")
    closing = pc.equal(pc.struct_field(parts, "close"), "/").to_numpy(zero_copy_only=False)
    empty = pc.equal(pc.struct_field(parts, "empty"), "/").to_numpy(zero_copy_only=False)
    attrs = pc.struct_field(parts, "attrs")
    with_attrs = pc.not_equal(attrs, "").to_numpy(zero_copy_only=False)
    if np.any(closing & (empty | with_attrs)):
        raise Unavailable("end tag with attributes")
    for text in pc.unique(attrs.filter(pa.array(with_attrs))).to_pylist():
        found = _ATTR_NAMES.findall(text)
        if len(set(found)) != len(found):
            raise Unavailable("duplicate attribute")
    encoded_names = pc.dictionary_encode(pc.struct_field(parts, "name"))
    name_codes = np.array([names.code(v) for v in encoded_names.dictionary.to_pylist()], np.int32)
    entry_name = name_codes[encoded_names.indices.to_numpy()] if len(name_codes) else np.zeros(0, np.int32)
    if np.any(~closing & (entry_name <= SAMPLE)):
        raise Unavailable("sample tag the fast path does not read")
    # Looked up per token; sample tokens (entry -1) get the zeros appended at the end.
    kind = np.append(np.where(closing, -1, np.where(empty, 0, 1)).astype(np.int8), np.int8(0))[entry]
    name = np.append(entry_name, np.int32(0))[entry]
    return kind, name, entry, unescape(pc.struct_field(parts, "text"))


def _check_nesting(stack: tuple[int, ...], first: bool, kind: np.ndarray, name: np.ndarray, entry: np.ndarray,
                   texts: pa.Array) -> tuple[int, ...]:
    """End tags match start tags, one root `<testResults>`, only whitespace after it; the elements left open."""
    carried = len(stack)
    kind = np.concatenate((np.ones(carried, np.int8), kind))
    name = np.concatenate((np.array(stack, np.int32), name))
    depth = np.cumsum(kind, dtype=np.int32)
    if depth.min() < 0:
        raise Unavailable("end tag without start tag")
    before = depth - kind
    top = np.flatnonzero((before == 0) & (kind >= 0))
    top = top[top >= carried]
    if len(top) and (not first or len(top) > 1 or name[top[0]] != ROOT):
        raise Unavailable("root element")
    for i in np.flatnonzero(depth[carried:] == 0):
        e = entry[i]
        if e < 0 or texts[int(e)].as_py().strip(" \t\n"):
            raise Unavailable("content after the root element")
    tags = np.flatnonzero(kind != 0)
    level = np.where(kind[tags] == 1, before[tags], depth[tags])
    # Within one level, start and end tags alternate; each end tag closes the start tag just before it.
    # numpy sorts 8-bit keys stably by radix sort, much faster than by merge sort.
    order = np.argsort(level.astype(np.uint8) if level.max(initial=0) < 256 else level, kind="stable")
    ordered, level = tags[order], level[order]
    new_level = np.r_[True, level[1:] != level[:-1]]
    group_start = np.maximum.accumulate(np.where(new_level, np.arange(len(level)), 0))
    opening = (np.arange(len(level)) - group_start) % 2 == 0
    if np.any(np.where(opening, 1, -1) != kind[ordered]):
        raise Unavailable("unbalanced tags")
    closes = np.flatnonzero(~opening)
    if np.any(name[ordered[closes]] != name[ordered[closes - 1]]):
        raise Unavailable("mismatched end tag")
    still_open = np.flatnonzero(opening & np.r_[new_level[1:], True])
    return tuple(int(v) for v in name[ordered[still_open]])


def _requests(attrs: SampleAttributes, starts: np.ndarray, kind: np.ndarray, name: np.ndarray, sdepth: np.ndarray,
              entry: np.ndarray, texts: pa.Array, names: _Names, generator: str) -> pa.Table:
    """The `requests` rows of one chunk, from the sample attributes and the element structure."""
    rows = len(starts)
    present = attrs.where
    for required in ("ts", "s", "lb", "t"):
        if required not in present or len(present[required][0]) != rows:
            raise Unavailable(f"sample without {required!r}")
    if "rc" in present and "rs" in present and len(np.intersect1d(present["rc"][0], present["rs"][0])):
        raise Unavailable("both rc and rs")
    cols: dict[str, pa.Array] = {"ts": attrs.number("ts", pa.int64()).cast(pa.timestamp("ms", tz="UTC"))}
    for key, (column, type_) in NUMBERS.items():
        if key in present:
            cols[column] = attrs.number(key, type_)
    at_s = present["s"][1]
    begin, end = attrs.cuts[at_s], attrs.cuts[at_s + 1]
    if attrs.entities:  # compare the unescaped text
        cols["success"] = pc.equal(pc.utf8_lower(attrs.text("s")), "true")
    else:
        # `.lower() == "true"` on the raw bytes: four ASCII letters, case folded by setting bit 0x20.
        word = np.zeros(rows, bool) | ((end - begin) == 4)
        for i, letter in enumerate(b"true"):
            word &= (attrs.arr[np.minimum(begin + i, len(attrs.arr) - 1)] | 0x20) == letter
        cols["success"] = pa.array(word)
    for key, column in TEXTS.items():
        if key in present:
            cols[column] = attrs.text(key)
    status = [attrs.text(k) for k in ("rc", "rs") if k in present]
    cols["status"] = pc.coalesce(*status) if status else pa.nulls(rows, pa.string())
    cols["generator"] = pc.fill_null(cols["generator"], generator) if "generator" in cols else pa.repeat(pa.scalar(generator), rows)
    for key in present:
        if key not in NOT_VARIABLES:
            cols[f"var_{key}"] = attrs.text(key)

    # The innermost open sample at each token, per nesting level: a running maximum of row numbers.
    row_at = np.full(len(kind), -1, np.int64)
    row_at[starts] = np.arange(rows)
    level = sdepth[starts] - (kind[starts] == 1)
    opened = (kind == 1) & (name <= SAMPLE)
    innermost = [np.maximum.accumulate(np.where(opened & (sdepth == d + 1), row_at, -1)) for d in range(int(sdepth.max()))]

    def owner(at: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """The row of the innermost sample open at tokens `at`, `depth` samples deep there."""
        found = np.full(len(at), -1, np.int64)
        for d, running in enumerate(innermost):
            hit = depth == d + 1
            found[hit] = running[at[hit]]
        return found

    message = cols.get("message")
    transaction = pc.fill_null(pc.starts_with(message, TX_PREFIX), False).to_numpy(zero_copy_only=False) if message is not None else np.zeros(rows, bool)
    row_kind = transaction.astype(np.int8)
    nested = np.flatnonzero(level > 0)
    parent = owner(starts[nested], level[nested])
    for d in range(1, int(level.max()) + 1):
        at = level[nested] == d
        # A child of a transaction is one of its requests; any other nested sample is a sub-result.
        row_kind[nested[at]] = np.where(row_kind[parent[at]] != 1, 2, row_kind[nested[at]])
    cols["row_kind"] = pa.array(KINDS, pa.string()).take(pa.array(row_kind))
    _text_children(cols, rows, kind, name, sdepth, entry, texts, names, owner)
    cols["source"] = pa.repeat(pa.scalar("jmeter_xml"), rows)
    return pa.table(cols)


def _text_children(cols: dict[str, pa.Array], rows: int, kind: np.ndarray, name: np.ndarray, sdepth: np.ndarray,
                   entry: np.ndarray, texts: pa.Array, names: _Names,
                   owner: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """`url` from `<java.net.URL>`, `error` from failed `<assertionResult>`s, set as the plain reader sets them."""
    # The plain reader acts on end tags inside a sample; the text an end tag closes is the text
    # after the previous tag, and an empty-element tag closes none ("", entry index len(texts)).
    ending = (kind <= 0) & (sdepth > 0)
    text_of = np.where(kind == 0, len(texts), np.r_[-1, entry[:-1]])
    with_empty = pa.concat_arrays([texts, pa.array([""])])

    def events(tag: str) -> np.ndarray:
        return np.flatnonzero(ending & (name == names.code(tag)))

    def text_at(at: np.ndarray) -> np.ndarray:
        got = text_of[at]
        if np.any(got < 0):
            raise Unavailable("text after a sample start tag")
        return got

    cols["url"] = cols["error"] = pa.nulls(rows, pa.string())
    url_at = events("java.net.URL")
    if len(url_at):
        owners = owner(url_at, sdepth[url_at])
        last = len(owners) - 1 - np.unique(owners[::-1], return_index=True)[1]  # the last URL of a sample wins
        cols["url"] = placed(with_empty.take(pa.array(text_at(url_at[last]))), owners[last], rows)

    found = [events(k) for k in ("failure", "error", "failureMessage", "assertionResult")]
    at = np.concatenate(found)
    if not len(at):
        return
    what = np.concatenate([np.full(len(f), c, np.int8) for c, f in enumerate(found)])
    order = np.argsort(at, kind="stable")
    at, what = at[order], what[order]
    closes = np.flatnonzero(what == 3)
    # The plain reader keeps fields seen after the last </assertionResult> for the next one: not carried here.
    if not len(closes) or closes[-1] != len(at) - 1:
        raise Unavailable("assertion fields outside an assertionResult")
    text_index = np.full(len(at), len(texts), np.int64)
    fields = what < 3
    text_index[fields] = text_at(at[fields])
    seq = np.arange(len(at))
    previous = np.r_[-1, closes[:-1]]
    says_true = np.zeros(len(texts) + 1, bool)
    for i in np.unique(text_index[what <= 1]).tolist():
        says_true[i] = with_empty[i].as_py().strip() == "true"

    def field(code: int) -> tuple[np.ndarray, np.ndarray]:
        latest = np.maximum.accumulate(np.where(what == code, seq, -1))[closes]
        return latest > previous, text_index[np.maximum(latest, 0)]

    (failure_set, failure), (error_set, error), (message_set, message) = field(0), field(1), field(2)
    failed = (failure_set & says_true[failure]) | (error_set & says_true[error])
    lengths = pc.binary_length(with_empty).to_numpy()
    hit = np.flatnonzero(failed & message_set & (lengths[message] > 0))
    if not len(hit):
        return
    owners = owner(at[closes[hit]], sdepth[at[closes[hit]]])
    index = message[hit]
    if len(np.unique(owners)) == len(owners):
        cols["error"] = placed(with_empty.take(pa.array(index)), owners, rows)
        return
    # Several failed assertions in one sample: joined by newlines in document order (rare, so in Python).
    joined: dict[int, str] = {}
    for row, i in zip(owners.tolist(), index.tolist(), strict=True):
        value = with_empty[i].as_py()
        joined[row] = f"{joined[row]}\n{value}" if row in joined else value
    full: list[str | None] = [None] * rows
    for row, value in joined.items():
        full[row] = value
    cols["error"] = pa.array(full, pa.string())
