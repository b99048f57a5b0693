"""The attributes of the sample start tags (`<httpSample ...>`) of a JMeter XML JTL chunk, column-wise.

Part of the fast path of `collectors.jmeter_xml_fast`: the tags are split at their quotes
with numpy (attribute values hold no `"` or `<`), so each attribute becomes a column whatever
the attribute order. Anything not provably read as expat reads it raises `Unavailable`.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NAME = r"[A-Za-z_][A-Za-z0-9_.:\-]*"
REF = "&(?:amp|lt|gt|quot|apos);"
# Pieces of a sample start tag around its values: tag name and first key, a later key, the end of the tag.
_HEAD = re.compile(rf'<(?:httpSample|sample) +({NAME}) *= *"\Z')
_SEP = re.compile(rf'" +({NAME}) *= *"\Z')
_TAIL = re.compile(r'" *(/?)>[ \t\n]*\Z')


class Unavailable(Exception):
    """The fast path cannot prove it reads this file exactly like the plain reader."""


def unescape(array: pa.Array) -> pa.Array:
    """Replace the five predefined entities; any other `&` (a character reference) is refused."""
    if not pc.any(pc.match_substring(array, "&")).as_py():
        return array
    if not pc.all(pc.equal(pc.count_substring(array, "&"), pc.count_substring_regex(array, REF))).as_py():
        raise Unavailable("character reference")
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        array = pc.replace_substring(array, entity, char)
    return array


def placed(values: pa.Array, rows: np.ndarray, size: int) -> pa.Array:
    """`values` (one per entry of `rows`, rows unique) placed in a column of `size`, null elsewhere."""
    if len(rows) == size and (size < 2 or bool(np.all(rows[1:] > rows[:-1]))):
        return values
    full = np.full(size, -1, np.int64)
    full[rows] = np.arange(len(rows))
    return values.take(pa.array(full, mask=full < 0))


class SampleAttributes:
    """The attributes of a chunk's sample start tags, split at their quotes.

    `pieces` is one string array over the chunk: per tag, the head (`<httpSample t="`), the
    values and the separators between them (`" lt="`) alternately, the tail (`">` and the
    whitespace after it), then the gap to the next tag. `where[key]` gives, per attribute,
    the tags having it and the piece index of its value. In the usual chunk every tag has the
    same attributes in the same order: that is proven by comparing bytes (`_same_keys`,
    `_tails`) instead of hashing every key and tag end, the general path's way.
    """

    def __init__(self, buf: bytes, arr: np.ndarray, offsets: np.ndarray, starts: np.ndarray, is_http: np.ndarray,
                 newlines: np.ndarray, tabs: np.ndarray) -> None:
        self.arr = arr
        self.rows = m = len(starts)
        self.where: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.empty = np.zeros(m, bool)
        self.entities = False
        if not m:
            return
        begin = offsets[starts].astype(np.int64)
        end = offsets[starts + 1].astype(np.int64)
        quotes = np.flatnonzero(arr[: end[-1]] == 34)
        lo = np.searchsorted(quotes, begin)
        count = np.searchsorted(quotes, end) - lo
        if count.min() < 2 or np.any(count & 1):
            raise Unavailable("sample tag with unpaired quotes")
        last_quote = quotes[lo + count - 1]
        amps = np.flatnonzero(arr[: end[-1]] == 38)
        tag_of = np.searchsorted(begin, amps, side="right") - 1
        self.entities = bool(np.any((tag_of >= 0) & (amps < last_quote[np.maximum(tag_of, 0)])))
        # A newline or tab before the last quote: a tag spread over lines, or whitespace expat normalises.
        for where in (newlines, tabs):
            if len(where):
                nxt = np.searchsorted(where, begin)
                if np.any((nxt < len(where)) & (where[np.minimum(nxt, len(where) - 1)] < last_quote)):
                    raise Unavailable("sample tag spread over lines")
        uniform = bool(count.min() == count.max())
        if uniform:
            # All tags with as many attributes (the usual case): the piece bounds as one matrix.
            c = int(count[0])
            bounds = np.empty((m, c + 2), np.int64)
            bounds[:, 0] = begin
            if lo[-1] - lo[0] == (m - 1) * c and np.all(np.diff(lo) == c):
                # No quote between the tags (the usual case): the tags' quotes are one block of the array.
                bounds[:, 1:c + 1] = quotes[lo[0]: lo[0] + m * c].reshape(m, c)
            else:
                bounds[:, 1:c + 1] = quotes[lo[:, None] + np.arange(c)]
            bounds[:, 1:c + 1:2] += 1
            bounds[:, c + 1] = end
            cuts = bounds.ravel()
            base = np.arange(m, dtype=np.int64) * (c + 2)
        else:
            per = count + 2
            base = np.concatenate(([0], np.cumsum(per)[:-1]))
            tag = np.repeat(np.arange(m), per)
            within = np.arange(int(per.sum())) - base[tag]
            cuts = np.empty(len(tag), np.int64)
            middle = (within >= 1) & (within <= count[tag])
            j = within[middle] - 1
            cuts[middle] = quotes[lo[tag[middle]] + j] + ((j & 1) == 0)
            cuts[within == 0] = begin
            cuts[within == per[tag] - 1] = end
        self.cuts = cuts
        self.pieces = pieces = pa.StringArray.from_buffers(len(cuts) - 1, pa.py_buffer(cuts.astype(np.int32)), pa.py_buffer(buf))

        empty = self._tails(last_quote, end)
        if empty is None:
            tails = pc.dictionary_encode(pieces.take(pa.array(base + count)))
            tail_empty = []
            for text in tails.dictionary.to_pylist():
                found = _TAIL.match(text)
                if not found:
                    raise Unavailable("sample tag end")
                tail_empty.append(found.group(1) == "/")
            empty = np.array(tail_empty, bool)[tails.indices.to_numpy()]
        self.empty = empty

        if uniform and self._same_keys(buf, bounds, base, is_http):
            return
        pairs = count // 2
        value_tag = np.repeat(np.arange(m), pairs)
        value_no = np.arange(int(pairs.sum())) - np.repeat(np.concatenate(([0], np.cumsum(pairs)[:-1])), pairs)
        value_at = base[value_tag] + 1 + 2 * value_no
        keys = pc.dictionary_encode(pieces.take(pa.array(value_at - 1)))
        key_names: list[str] = []
        key_is_head = []
        for text in keys.dictionary.to_pylist():
            found = _HEAD.match(text) or _SEP.match(text)
            if not found:
                raise Unavailable("sample tag attribute")
            key_names.append(found.group(1))
            key_is_head.append(text.startswith("<"))
        distinct = list(dict.fromkeys(key_names))
        key = np.array([distinct.index(k) for k in key_names], np.int64)[keys.indices.to_numpy()]
        if np.any(np.array(key_is_head, bool)[keys.indices.to_numpy()] != (value_no == 0)):
            raise Unavailable("sample tag attribute")
        if uniform and np.all(key.reshape(m, -1) == key[: count[0] // 2]):
            # Same attributes in the same order in every tag: each attribute is one column of the matrix.
            every = np.arange(m)
            for j, k in enumerate(key[: count[0] // 2].tolist()):
                if distinct[k] in self.where:
                    raise Unavailable("duplicate attribute")
                self.where[distinct[k]] = (every, base + 1 + 2 * j)
            return
        order = np.argsort(key.astype(np.uint8) if len(distinct) < 256 else key, kind="stable")
        bounds_of = np.searchsorted(key[order], np.arange(len(distinct) + 1))
        for k, key_name in enumerate(distinct):
            hit = order[bounds_of[k]: bounds_of[k + 1]]
            owner = value_tag[hit]
            if np.any(np.diff(owner) == 0):
                raise Unavailable("duplicate attribute")
            self.where[key_name] = (owner, value_at[hit])

    def _tails(self, last_quote: np.ndarray, end: np.ndarray) -> np.ndarray | None:
        """Which tags are empty-element tags, if every tag ends in `">` or `"/>` then at most
        32 whitespace characters up to the next `<`; None to leave the check to `_TAIL`."""
        arr = self.arr
        empty = arr[last_quote + 1] == ord("/")
        rest = last_quote + 2 + empty
        length = end - rest
        if length.min() < 0 or length.max() > 32 or np.any(arr[rest - 1] != ord(">")):
            return None
        place = np.arange(int(length.max()))
        grid = arr[np.minimum(rest[:, None] + place, len(arr) - 1)]
        space = (grid == ord(" ")) | (grid == ord("\n")) | (grid == ord("\t")) | (place >= length[:, None])
        return empty if space.all() else None

    def _same_keys(self, buf: bytes, bounds: np.ndarray, base: np.ndarray, is_http: np.ndarray) -> bool:
        """Set `where` if every tag has the same attributes in the same order; False if not proven.

        Each separator (`" lt="`), and each head (`<httpSample t="`) after its tag name, is
        compared with the first tag's as 8-byte words: no key is hashed per tag.
        """
        m, c = len(bounds), bounds.shape[1] - 2
        if bounds[-1, -1] + 8 > len(buf):
            return False
        # The 8 bytes at every offset of the chunk, as a strided view (no copy).
        words = np.ndarray((len(buf) - 7,), "<u8", buf, strides=(1,))
        first = bounds[:, 0:c:2].copy()
        # The heads compared after the tag name, checked per tag by the caller.
        first[:, 0] += np.where(is_http, len("<httpSample "), len("<sample "))
        length = bounds[:, 1:c + 1:2] - first
        if np.any(length != length[0]):
            return False
        for at in range(0, int(length.max(initial=0)), 8):
            mask = np.array([(1 << (8 * min(8, max(0, int(n) - at)))) - 1 for n in length[0]], np.uint64)
            got = words[first + at] & mask
            if np.any(got != got[0]):
                return False
        keys = []
        for k in range(0, c, 2):
            found = (_SEP if k else _HEAD).match(buf[bounds[0, k]: bounds[0, k + 1]].decode())
            if not found:
                raise Unavailable("sample tag attribute")
            keys.append(found.group(1))
        if len(set(keys)) != len(keys):
            raise Unavailable("duplicate attribute")
        every = np.arange(m)
        for j, key in enumerate(keys):
            self.where[key] = (every, base + 1 + 2 * j)
        return True

    def text(self, key: str) -> pa.Array:
        """The unescaped values of attribute `key`, null where a tag lacks it."""
        rows, at = self.where[key]
        values = self.pieces.take(pa.array(at))
        return placed(unescape(values) if self.entities else values, rows, self.rows)

    def number(self, key: str, type_: pa.DataType) -> pa.Array:
        """The values of attribute `key` as numbers, exactly as Python's int() or float() reads them."""
        rows, at = self.where[key]
        text = self.pieces.take(pa.array(at))
        try:
            values = pc.cast(text, type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise Unavailable("non-numeric value") from exc
        # Arrow's parser takes a subset of what Python's takes, except hexadecimal integers (`0x10`)
        # and `nan(...)`: such values must read the same in Python.
        if pa.types.is_floating(type_):
            odd = np.flatnonzero(~pc.is_finite(values).to_numpy(zero_copy_only=False))
        else:
            first = self.cuts[at]
            last = len(self.arr) - 1
            odd = np.flatnonzero((self.arr[first] == ord("0")) & ((self.arr[np.minimum(first + 1, last)] | 0x20) == ord("x")))
        convert = float if pa.types.is_floating(type_) else int
        for i in odd.tolist():
            try:
                python = convert(text[i].as_py())
            except ValueError as exc:
                raise Unavailable("number Python does not read") from exc
            arrow = values[i].as_py()
            if python != arrow and not (python != python and arrow != arrow):  # NaN is NaN
                raise Unavailable("number read differently")
        return placed(values, rows, self.rows)
