"""Broken inputs derived from the real samples of every collector, and the harness that runs them.

`cases(collector, rng)` turns each sample in `tests/data/<collector>/` into a list of
mutated copies (truncation, wrong format, garbage, encodings, CRLF, long lines, shuffled
or duplicated records, locale numbers, NaN and negative values). `run_case` reads one of
them under a time limit and classifies the outcome; the tests decide what is allowed.

The only outcomes a collector may produce are a table that conforms to the canonical
schema or a `CollectorError` naming the file (and the line, for line-local damage).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from capacity.schema import conform
from collectors import registry
from collectors.base import CollectorError

DATA = Path(__file__).resolve().parent / "data"
NOT_SAMPLES = {"README.md"}
TORTURE = os.environ.get("CAPACITY_TORTURE") == "1"
TIME_LIMIT_S = 10.0

# Collectors whose input is binary: text mutations (encodings, line ends) do not apply.
BINARY = {"sa_binary"}
# Collectors where one line is one independent record, so reordering the lines after the
# header is a valid input that must give the same rows. Value: lines before the records.
RECORD_LINES = {"jmeter_jtl": 1, "access_log": 0, "tsung_dump": 1, "edfi_events": 1}
# Mutations that leave a valid file: the collector must read it and give the same tables.
SAME = {"crlf", "utf8-bom", "shuffled-records"}
# Mutations confined to one known line: a CollectorError must name that line.
LINE_LOCAL = {"garbage-line", "megabyte-line", "locale-number", "nan-value", "negative-value", "latin1-label"}
WORD = re.compile(rb"[\s,;|\t\"]([A-Za-z]{3})")
NUMBER = re.compile(rb"(?<![\w.:/-])(\d+)\.(\d+)(?![\w.:/-])|(?<![\w.:/,-])(\d{4,})(?![\w.:/,-])")


@dataclass(frozen=True)
class Case:
    """One broken input: the bytes to write under the sample's own file name."""

    collector: str
    sample: Path
    mutation: str
    data: bytes
    line: int | None = None  # 1-based line the damage is on, for LINE_LOCAL mutations
    record_line: int | None = None  # line where the (multi-line, quoted) record holding `line` starts
    document: bool = False  # JSON or XML: a value error may name the line where its element starts

    @property
    def id(self) -> str:
        return f"{self.collector}/{self.sample.name}/{self.mutation}"


@dataclass
class Outcome:
    """What a collector did with one case."""

    kind: str  # "ok", "error" (CollectorError) or "failure" (anything else, or too slow)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    error: BaseException | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


class TimeLimit(Exception):
    """A case ran past its time limit (raised by SIGALRM, so it is not a CollectorError)."""


def samples(collector: str) -> list[Path]:
    """The real samples of a collector (not `bad/`, not README or generator scripts), smallest first."""
    folder = DATA / collector
    assert folder.is_dir(), f"missing sample folder {folder}"
    found = [p for p in folder.iterdir() if p.is_file() and p.name not in NOT_SAMPLES and p.suffix != ".py"]
    return sorted(found, key=lambda p: (p.stat().st_size, p.name))


def all_samples() -> list[tuple[str, Path]]:
    """(collector, sample) for every registered collector."""
    return [(name, p) for name in registry.names() for p in samples(name)]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines)


def _middle_line(lines: list[bytes], rng: random.Random, pattern: re.Pattern[bytes] | None = None) -> int | None:
    """Index of a non-empty line in the middle half of the file (matching `pattern` if given)."""
    n = len(lines)
    lo, hi = n // 4, max(n // 4 + 1, (3 * n) // 4)
    pool = [i for i in range(lo, min(hi, n)) if lines[i].strip() and (pattern is None or pattern.search(lines[i]))]
    if not pool:
        pool = [i for i in range(1, n) if lines[i].strip() and (pattern is None or pattern.search(lines[i]))]
    return rng.choice(pool) if pool else None


def _has_multiline_records(data: bytes) -> bool:
    return any(line.count(b'"') % 2 for line in _lines(data))


def _record_start(data: bytes, line: int) -> int:
    """Line where the CSV record holding `line` starts (quotes may span lines)."""
    start, quoted = 1, False
    for number, text in enumerate(_lines(data)[:line], 1):
        if not quoted:
            start = number
        quoted ^= text.count(b'"') % 2 == 1
    return start


def _foreign(collector: str, rng: random.Random) -> Path:
    """A sample of another collector, to feed as the wrong format."""
    others = [(n, p) for n, p in all_samples() if n != collector and p.stat().st_size < 300_000]
    return rng.choice(others)[1]


def cases(collector: str, rng: random.Random, sample_limit: int | None = None) -> Iterator[Case]:
    """Every broken input derived from the collector's samples (the smallest `sample_limit` ones)."""
    chosen = samples(collector)[:sample_limit] if sample_limit else samples(collector)
    for sample in chosen:
        data = sample.read_bytes()
        yield from _mutations(collector, sample, data, rng)


def _mutations(collector: str, sample: Path, data: bytes, rng: random.Random) -> Iterator[Case]:
    def case(mutation: str, body: bytes, line: int | None = None) -> Case:
        return Case(collector, sample, mutation, body, line, _record_start(body, line) if line else None, document)

    document = data.lstrip()[:1] in (b"{", b"[", b"<")

    yield case("empty", b"")
    yield case("binary-garbage", rng.randbytes(4096))
    foreign = _foreign(collector, rng)
    yield case(f"wrong-format-{foreign.parent.name}", foreign.read_bytes())
    for _ in range(3 if not TORTURE else 8):
        cut = rng.randrange(1, max(2, len(data)))
        yield case(f"truncated-at-{cut}", data[:cut])
    if collector in BINARY:
        for i in range(3 if not TORTURE else 8):
            body = bytearray(data)
            for _ in range(8):
                pos = rng.randrange(len(body))
                body[pos] = rng.randrange(256)
            yield case(f"flipped-bytes-{i}", bytes(body))
        return
    lines = _lines(data)
    yield case("header-only", lines[0] + b"\n")
    yield case("crlf", data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    yield case("utf8-bom", b"\xef\xbb\xbf" + data)
    try:
        yield case("utf16", data.decode("utf-8").encode("utf-16"))
    except UnicodeDecodeError:
        pass
    i = _middle_line(lines, rng)
    if i is not None:
        yield case("garbage-line", _join(lines[:i] + [b"@@ this is not a record \x01\x02 @@"] + lines[i:]), i + 1)
        yield case("megabyte-line", _join(lines[:i] + [b"x" * (1 << 20)] + lines[i:]), i + 1)
        yield case("duplicated-line", _join(lines[: i + 1] + [lines[i]] + lines[i + 1:]))
    i = _middle_line(lines, rng, WORD)
    if i is not None:
        word = WORD.search(lines[i])
        assert word
        # A label written by a Latin-1 tool: `é` as the single byte 0xE9, invalid UTF-8. It goes
        # into a word after a separator, so the line's keyword (structure) stays intact.
        damaged = lines[i][: word.start(1)] + b"Pr\xe9" + lines[i][word.start(1):]
        yield case("latin1-label", _join(lines[:i] + [damaged] + lines[i + 1:]), i + 1)
    i = _middle_line(lines, rng, NUMBER)
    if i is not None:
        m = NUMBER.search(lines[i])
        assert m
        if m.group(1):
            localised = m.group(1) + b"," + m.group(2)
        else:
            digits = m.group(3)
            localised = digits[:-3] + b"." + digits[-3:]
        for mutation, value in (("locale-number", localised), ("nan-value", b"NaN"), ("negative-value", b"-" + m.group(0))):
            damaged = lines[i][: m.start()] + value + lines[i][m.end():]
            yield case(mutation, _join(lines[:i] + [damaged] + lines[i + 1:]), i + 1)
    skip = RECORD_LINES.get(collector)
    if skip is not None and not _has_multiline_records(data):
        head, records = lines[:skip], [ln for ln in lines[skip:] if ln.strip()]
        # A last line cut mid-record stays last: moved up it would be a broken line mid-file.
        tail = [] if data.endswith(b"\n") else records[-1:]
        body = records[: len(records) - len(tail)]
        rng.shuffle(body)
        yield case("shuffled-records", _join(head + body + tail) + (b"\n" if not tail else b""))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimit in the main thread after `seconds` (SIGALRM; Unix, main thread only)."""

    def _expired(signum: int, frame: object) -> None:
        raise TimeLimit(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write_case(case: Case, folder: Path) -> Path:
    """Write the case under the sample's own name (collectors read meaning into names).

    The modification time is the sample's too: collectors fall back on it for a
    timestamp the file lacks, and a valid mutation must give the same rows. The
    sample's neighbours are linked in beside it, for collectors that read a sibling
    file (Locust's `_requests.csv` takes percentiles from `_distribution.csv`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for neighbour in case.sample.parent.iterdir():
        if neighbour.is_file() and neighbour.name != case.sample.name and not (folder / neighbour.name).exists():
            (folder / neighbour.name).symlink_to(neighbour)
    path = folder / case.sample.name
    path.write_bytes(case.data)
    stat = case.sample.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return path


def read_data(collector: ModuleType | type, path: Path, data: bytes) -> Outcome:
    """Write `data` to `path` and read it like `read_path`."""
    path.write_bytes(data)
    return read_path(collector, path)


def read_path(collector: ModuleType | type, path: Path) -> Outcome:
    """Read `path` with the collector under the time limit and classify the outcome."""
    notices: list[str] = []
    started = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT_S):
            tables = collector.read(path, tz="UTC", host="h", warn=notices.append)
            # Streaming collectors may be lazy: the check covers what the store would consume.
            tables = {kind: conform(table, kind) for kind, table in tables.items()}
    except CollectorError as exc:
        return Outcome("error", error=exc, seconds=time.perf_counter() - started, warnings=notices)
    except Exception as exc:  # noqa: BLE001 - any other exception type is the failure being looked for
        return Outcome("failure", error=exc, seconds=time.perf_counter() - started, warnings=notices)
    return Outcome("ok", tables=tables, seconds=time.perf_counter() - started, warnings=notices)


def detect_is_bool(collector: ModuleType, path: Path) -> str | None:
    """None if `detect` returns a bool quickly; otherwise what went wrong."""
    try:
        with time_limit(TIME_LIMIT_S):
            answer = collector.detect(path)
    except Exception as exc:  # noqa: BLE001 - detect must never raise, whatever the exception
        return f"detect raised {type(exc).__name__}: {exc}"
    if not isinstance(answer, bool):
        return f"detect returned {answer!r}, not a bool"
    return None


def _normalised_rows(table: pa.Table) -> list[tuple[object, ...]]:
    """Rows in a canonical order, with CRLF inside text values folded to LF.

    Floats are compared to 12 significant digits: multithreaded Arrow aggregations
    sum in no fixed order, so two reads of the same file may differ in the last bit.
    """

    def norm(v: object) -> object:
        if isinstance(v, str):
            return v.replace("\r\n", "\n")
        if isinstance(v, float):
            return "NaN" if v != v else float(f"{v:.12g}")
        return v

    rows = [tuple(norm(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(rows, key=repr)


def same_tables(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> str | None:
    """None if both reads hold the same rows per table (in any order); else the first difference."""
    kinds = {k for k, t in a.items() if t.num_rows} | {k for k, t in b.items() if t.num_rows}
    for kind in sorted(kinds):
        if kind not in a or kind not in b:
            return f"table {kind} only in one read"
        if a[kind].column_names != b[kind].column_names:
            return f"{kind}: columns differ: {a[kind].column_names} vs {b[kind].column_names}"
        ra, rb = _normalised_rows(a[kind]), _normalised_rows(b[kind])
        if len(ra) != len(rb):
            return f"{kind}: {len(ra)} rows vs {len(rb)}"
        for x, y in zip(ra, rb, strict=True):
            if x != y:
                return f"{kind}: first differing row {x} vs {y}"
    return None


def judge(case: Case, outcome: Outcome, path: Path, original: Outcome | None) -> str | None:
    """None if the outcome is allowed for the case; else why not."""
    if outcome.kind == "failure":
        err = outcome.error
        return f"{type(err).__name__}: {err}" if err else "failure"
    if outcome.kind == "error":
        err = outcome.error
        assert isinstance(err, CollectorError)
        if err.path != str(path):
            return f"CollectorError names {err.path!r}, not the file {str(path)!r}"
        if not err.reason.strip():
            return "CollectorError with an empty reason"
        if case.mutation in SAME:
            return f"a valid input ({case.mutation}) was refused: {err}"
        in_element = case.document and case.mutation not in ("garbage-line", "megabyte-line") and err.line is not None and case.line is not None and err.line <= case.line
        if case.mutation in LINE_LOCAL and err.line is not None and err.line not in (case.line, case.record_line) and not in_element:
            return f"damage is on line {case.line}, CollectorError names line {err.line}: {err}"
        if case.mutation in ("garbage-line", "megabyte-line") and err.line is None:
            return f"damage is on line {case.line}, CollectorError names no line: {err}"
        return None
    if case.mutation in ("empty", "binary-garbage") or case.mutation.startswith("wrong-format"):
        return f"{case.mutation} read as {outcome.rows} rows without an error"
    if case.mutation in SAME and original is not None and original.kind == "ok":
        return same_tables(original.tables, outcome.tables)
    if case.mutation == "duplicated-line" and case.collector in RECORD_LINES and original is not None and outcome.rows != original.rows + 1:
        return f"one record line repeated: expected {original.rows + 1} rows, read {outcome.rows}"
    return None


def tally(outcomes: dict[str, int], kind: str) -> None:
    """Count one outcome."""
    outcomes[kind] = outcomes.get(kind, 0) + 1


def summary(collector: str, counts: dict[str, int], seconds: float) -> str:
    """The one-line summary printed per collector."""
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{collector}: {sum(v for k, v in counts.items() if k in ('ok', 'error', 'failure'))} cases ({parts}) in {seconds:.1f} s"


