"""Property-based fuzzing (hypothesis) of every collector's parser.

For each collector, hypothesis edits the lines of one of its real samples (delete,
duplicate, swap lines; replace a field with random text or a number; insert random
unicode; cut the file) and reads the result. The only outcomes allowed: tables that
conform to the schema, or a CollectorError naming the file with a reason. `detect`
must answer a bool. Each example runs under the 10 s limit of `tests/badinput.py`.
30 examples per collector by default (derandomized, so CI is repeatable); 300 with
CAPACITY_TORTURE=1 (random). `pytest -s` prints one summary line per collector.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import registry
from tests import badinput as bi

EXAMPLES = 300 if bi.TORTURE else 30
MAX_BYTES = 64 * 1024  # larger samples are cut to their first lines, to keep each example fast
MAX_LINES = 120
SEPARATORS = (b",", b";", b"\t", b"|", b" ", b"=", b":")

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).map(lambda s: s.encode("utf-8"))
_number = st.one_of(
    st.integers(-(10**12), 10**12).map(lambda i: str(i).encode()),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
    st.sampled_from([b"1,5", b"1.234,5", b"-0", b"NaN", b"-1", b"1e309", b"", b"N/A", b"0x1F"]),
)


def _sample(collector_name: str) -> Path:
    """The largest sample under MAX_BYTES (else the smallest): most structure for the time."""
    chosen = bi.samples(collector_name)
    small = [p for p in chosen if p.stat().st_size <= MAX_BYTES]
    return small[-1] if small else chosen[0]


def _base(sample: Path, binary: bool) -> bytes:
    """The sample, or the head of a large line-oriented one (documents stay whole)."""
    data = sample.read_bytes()
    if binary or len(data) <= MAX_BYTES:
        return data
    return b"\n".join(data.split(b"\n")[:MAX_LINES])


@st.composite
def edited_lines(draw: st.DrawFn, base: bytes) -> bytes:
    """`base` with a few line-level edits."""
    lines = base.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "field", "insert", "cut"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "field":
            sep = next((s for s in SEPARATORS if s in lines[i]), b" ")
            fields = lines[i].split(sep)
            k = draw(st.integers(0, len(fields) - 1))
            fields[k] = draw(st.one_of(_number, _text))
            lines[i] = sep.join(fields)
        elif op == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(_text) + lines[i][at:]
        elif op == "cut":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    return b"\n".join(lines)


@st.composite
def edited_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    """`base` (binary) with bytes overwritten, inserted or cut."""
    body = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "insert", "cut"]))
        i = draw(st.integers(0, max(0, len(body) - 1)))
        if op == "set" and body:
            body[i] = draw(st.integers(0, 255))
        elif op == "insert":
            body[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del body[i:]
    return bytes(body)


@pytest.mark.parametrize("collector_name", registry.names())
def test_fuzzed_samples_give_a_table_or_a_collector_error(collector_name: str) -> None:
    collector = registry.get(collector_name)
    sample = _sample(collector_name)
    base = _base(sample, collector_name in bi.BINARY)
    strategy = edited_bytes(base) if collector_name in bi.BINARY else edited_lines(base)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # The file keeps the sample's name: some collectors read meaning into it.
        path = Path(tmp) / sample.name

        @settings(max_examples=EXAMPLES, deadline=10_000, derandomize=not bi.TORTURE, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(strategy)
        def check(data: bytes) -> None:
            outcome = bi.read_data(collector, path, data)
            bi.tally(counts, outcome.kind)
            if outcome.kind == "failure":
                raise AssertionError(f"{type(outcome.error).__name__}: {outcome.error}") from outcome.error
            if outcome.kind == "error":
                err = outcome.error
                assert err.path == str(path), f"CollectorError names {err.path!r}, not the file"
                assert err.reason.strip(), "CollectorError without a reason"
            problem = bi.detect_is_bool(collector, path)
            assert problem is None, problem

        check()
    print(f"\nfuzz {bi.summary(collector_name, counts, time.perf_counter() - started)}")
