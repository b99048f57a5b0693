"""The fast path of the CSV JTL reader (DuckDB) gives exactly the plain path's table, errors and statistics.

Inputs are 100k-row JTLs generated from real JMeter files by `benchmarks.generate.jtl_csv`: the
step-load run written with JMeter 5.x's default columns (quoted assertion messages, Transaction
Controller rows), and the 5.x sub-result file repeated (sub-result rows to mark).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from benchmarks.generate import jtl_csv
from benchmarks.generate import tsung_log as tsung_log_generated
from capacity.analysis.stats import label_stats
from capacity.store import Store
from collectors import jmeter_jtl, jtl_fast, jtl_layout, tsung_log, tsung_log_fast
from collectors.base import CollectorError

DATA = Path(__file__).resolve().parent / "data" / "jmeter_jtl"
ROWS = 100_000


@pytest.fixture(scope="module")
def steps_5x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return jtl_csv(tmp_path_factory.mktemp("fast") / "steps-5x.jtl", ROWS, layout="5.x")


@pytest.fixture(scope="module")
def subresults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return jtl_csv(tmp_path_factory.mktemp("fast") / "subresults.jtl", ROWS, seed=DATA / "subresults-5x-from-xml.jtl")


def read(path: Path, engine: str, **options) -> tuple[pa.Table, list[str]]:
    notes: list[str] = []
    parts = [t for kind, t in jmeter_jtl.read_batches(path, engine=engine, warn=notes.append, **options) if kind == "requests"]
    return pa.concat_tables(parts, promote_options="permissive"), notes


def raw_fields(path: Path, line: int) -> list[str]:
    """Fields of 1-based `line` of an unquoted row of the raw file."""
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if number == line:
                return text.rstrip("\n").split(",")
    raise AssertionError(f"no line {line}")


def raw_columns(path: Path) -> list[str]:
    return raw_fields(path, 1)


def test_the_engine_really_reads_the_generated_files(steps_5x, subresults):
    for path in (steps_5x, subresults):
        delimiter, names, skip, ts_format = jtl_layout.read_options(path, None, None, None)
        types = {n: pa.int64() if n in jmeter_jtl.INT_COLUMNS or n == "timeStamp" else pa.string() for n in names}
        assert sum(b.num_rows for b in jtl_fast.scan(path, names, types, delimiter, skip == 1, 30_000)) == ROWS


@pytest.mark.parametrize("batch_rows", [jmeter_jtl.FAST_BATCH_ROWS, 7_000])
def test_same_table_as_plain_path(steps_5x, subresults, monkeypatch, batch_rows):
    monkeypatch.setattr(jmeter_jtl, "FAST_BATCH_ROWS", batch_rows)
    for path in (steps_5x, subresults):
        plain, plain_notes = read(path, "plain")
        fast, fast_notes = read(path, "fast")
        assert plain.num_rows == fast.num_rows == ROWS
        assert fast.schema == plain.schema
        assert fast.equals(plain), path.name
        assert fast_notes == plain_notes == []
    kinds = {k["values"]: k["counts"] for k in read(subresults, "fast")[0]["row_kind"].value_counts().to_pylist()}
    assert kinds["subresult"] > 10_000 and kinds["transaction"] > 1_000


def test_values_match_the_raw_text(steps_5x):
    table, _ = read(steps_5x, "fast")
    names = raw_columns(steps_5x)
    for line in (2, 50_001, ROWS + 1):
        fields = raw_fields(steps_5x, line)
        if len(fields) != len(names):  # a quoted message holds a comma: pick the next plain row
            line += 1
            fields = raw_fields(steps_5x, line)
        raw = dict(zip(names, fields, strict=True))
        row = table.slice(line - 2, 1).to_pylist()[0]
        assert int(row["ts"].timestamp() * 1000) == int(raw["timeStamp"])
        assert row["elapsed_ms"] == float(raw["elapsed"]) and row["label"] == raw["label"]
        assert row["url"] == raw["URL"] and row["sent_bytes"] == int(raw["sentBytes"])
        assert row["success"] == (raw["success"] == "true")
    failed = table.filter(pa.compute.is_valid(table["error"]))
    assert failed.num_rows > 0 and set(failed["error"].to_pylist()) == {'Test failed: text expected to contain /"status":"ok"/'}


def _broken(src: Path, dst: Path, line: int, text: str) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = text
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


@pytest.mark.parametrize(
    ("line", "text", "words"),
    [
        (70_001, "1795304202567,46,01 Home,200,OK\n", "malformed row"),
        (80_000, "1795304202567,4x6,01 Home,200,OK,Learners 1-1,text,true,,8380,464,1,2,https://mooc.example.org/01-home,47,0,35\n", "4x6"),
        (90_000, "1795304202567,46,01 Home,200,OK,Learners 1-1,text,true,,8380,464,1,2,https://mooc.example.org/01-home,47,0,\"35\n", "malformed"),
    ],
)
def test_same_error_and_line_on_bad_input(steps_5x, tmp_path, monkeypatch, line, text, words):
    monkeypatch.setattr(jmeter_jtl, "FAST_BATCH_ROWS", 10_000)  # batches are given before the damage is met
    bad = _broken(steps_5x, tmp_path / "bad.jtl", line, text)
    errors = []
    for engine in ("plain", "fast"):
        with pytest.raises(CollectorError) as err:
            read(bad, engine)
        errors.append((err.value.line, str(err.value)))
    assert errors[0] == errors[1] and errors[0][0] == line and words in errors[0][1]


def test_rejected_last_line_falls_back_without_duplicates(steps_5x, tmp_path, monkeypatch):
    """A short last row with a quote: the engine rejects it after giving most rows, the plain reader forgives it."""
    monkeypatch.setattr(jmeter_jtl, "FAST_BATCH_ROWS", 10_000)
    path = tmp_path / "cut.jtl"
    path.write_text(steps_5x.read_text(encoding="utf-8") + '1795304202567,46,"01 Home",200\n', encoding="utf-8")
    assert jmeter_jtl._worth_fast(path, ",", 17) or jmeter_jtl.FAST_MIN_BYTES > path.stat().st_size
    plain, plain_notes = read(path, "plain")
    fast, fast_notes = read(path, "fast")
    assert fast.num_rows == ROWS and fast.equals(plain)
    assert fast_notes == plain_notes and f":{ROWS + 2}: truncated last line" in fast_notes[0]


def test_auto_takes_the_fast_path_only_when_worth_it(steps_5x, monkeypatch):
    monkeypatch.setattr(jmeter_jtl, "FAST_MIN_BYTES", 1 << 20)
    assert jmeter_jtl._worth_fast(steps_5x, ",", 17)
    assert not jmeter_jtl._worth_fast(DATA / "truncated-last-line.jtl", ",", 12)  # small, and cut
    monkeypatch.setattr(jmeter_jtl, "FAST_MIN_BYTES", 0)
    assert not jmeter_jtl._worth_fast(DATA / "truncated-last-line.jtl", ",", 12)  # no line end: plain reader
    calls = []
    real = jtl_fast.scan
    monkeypatch.setattr(jtl_fast, "scan", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    table, _ = read(steps_5x, "auto")
    assert calls == [steps_5x] and table.num_rows == ROWS


def _moments_apart(stats: dict) -> dict:
    """`stats` without the standard deviations, which are compared to 1e-12 relative.

    DuckDB sums in floating point per Parquet row group, and the two paths hand the store batches
    of different sizes, so a deviation can differ in its last bit; every other figure
    (counts, errors, mean, min, max, every percentile, throughput) must be identical.
    """
    return {**stats, "labels": [{k: v for k, v in s.items() if k != "std_ms"} for s in stats["labels"]],
            "overall": {k: v for k, v in stats["overall"].items() if k != "std_ms"}}


def test_same_capacity_stats_from_both_paths(steps_5x, subresults, tmp_path):
    store = Store.open(tmp_path / "store", create=True)
    for path in (steps_5x, subresults):
        store.ingest(path, f"plain-{path.stem}", options={"engine": "plain"})
        store.ingest(path, f"fast-{path.stem}", options={"engine": "fast"})
    con = store.connect()
    try:
        for path in (steps_5x, subresults):
            plain = label_stats(con, f"plain-{path.stem}")
            fast = label_stats(con, f"fast-{path.stem}")
            assert plain.pop("run") != fast.pop("run")
            assert _moments_apart(fast) == _moments_apart(plain)
            for mine, theirs in zip([*fast["labels"], fast["overall"]], [*plain["labels"], plain["overall"]], strict=True):
                assert mine["std_ms"] == pytest.approx(theirs["std_ms"], rel=1e-12, abs=1e-12)
            assert plain["overall"]["count"] > 50_000 and plain["overall"]["p95_ms"] > 0 and len(plain["labels"]) > 5
    finally:
        con.close()


def test_prefetch_hands_over_errors_and_stops_when_closed():
    def items():
        yield 1
        yield 2
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for item in jtl_fast.prefetched(items()):
            got.append(item)
    assert got == [1, 2]
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    stream = jtl_fast.prefetched(endless(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert len(produced) <= 5


def test_portable_sql_of_the_scale_page_gives_capacity_stats(steps_5x, tmp_path):
    page = (Path(__file__).resolve().parent.parent / "docs" / "scale.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 3, "docs/scale.md: expected the histogram, the PERCENTILE_CONT and the span SQL blocks"
    store = Store.open(tmp_path / "store", create=True)
    store.ingest(steps_5x, "bench")
    con = store.connect()
    try:
        ours = label_stats(con, "bench")
        histogram = con.execute(blocks[0]).df()
        ordered_set = con.execute(blocks[1]).df()
        span = con.execute(blocks[2]).fetchone()[0]
    finally:
        con.close()
    keys = ("count", "errors", "mean_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
    for portable, exact in ((histogram, True), (ordered_set, False)):
        assert len(portable) == len(ours["labels"])
        for row, theirs in zip(portable.to_dict("records"), ours["labels"], strict=True):
            assert (row["label"], row["row_kind"]) == (theirs["label"], theirs["kind"])
            for key in keys:
                assert row[key] == (theirs[key] if exact else pytest.approx(theirs[key], rel=1e-12)), key
            assert row["std_ms"] == pytest.approx(theirs["std_ms"], rel=1e-12)
    assert span == pytest.approx(ours["span_s"], abs=1e-9)


@pytest.fixture(scope="module")
def tsung_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tsung_log_generated(tmp_path_factory.mktemp("tsung") / "tsung.log", 0.5)


@pytest.mark.parametrize("sample", ["duplicate-match-key-late-404-osmon.log", "error-timeout-500-503-short-last-dump.log", "generated"])
def test_tsung_log_column_reader_gives_the_line_readers_tables(sample, tsung_days):
    path = tsung_days if sample == "generated" else DATA.parent / "tsung_log" / sample
    line_notes: list[str] = []
    by_line = tsung_log.tables_from_blocks(tsung_log._parse(path, line_notes.append), tsung_log.name)
    column_notes: list[str] = []
    by_column = tsung_log_fast.read_tables(path, column_notes.append)
    assert column_notes == line_notes
    for kind, table in by_line.items():
        assert by_column[kind].equals(table), kind
    assert by_column["request_stats"].num_rows > 0 and by_column["load"].num_rows > 0


def test_tsung_log_without_end_monitor_warns_like_the_line_reader(tmp_path):
    src = DATA.parent / "tsung_log" / "duplicate-match-key-late-404-osmon.log"
    path = tmp_path / "tsung.log"
    path.write_text("".join(line for line in src.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("EndMonitor")))
    notes: list[str] = []
    tables = tsung_log_fast.read_tables(path, notes.append)
    assert len(notes) == 1 and "no EndMonitor line" in notes[0]
    assert tables["request_stats"].equals(tsung_log.tables_from_blocks(tsung_log._parse(path, None), tsung_log.name)["request_stats"])


@pytest.mark.parametrize("file", ["non-numeric-value.log", "truncated-mid-line-no-endmonitor.log"])
def test_tsung_log_column_reader_leaves_damaged_files_to_the_line_reader(file):
    with pytest.raises(tsung_log_fast.Unsupported):
        tsung_log_fast.read_tables(DATA.parent / "tsung_log" / "bad" / file, None)


def test_tsung_log_slices_for_the_store_add_up_to_the_tables(tsung_days, monkeypatch):
    monkeypatch.setattr(tsung_log_fast, "BATCH_ROWS", 5_000)
    whole = tsung_log.read(tsung_days)
    slices: dict[str, list[pa.Table]] = {}
    for kind, table in tsung_log.read_batches(tsung_days):
        assert table.num_rows <= 5_000
        slices.setdefault(kind, []).append(table)
    assert len(slices["request_stats"]) > 3
    for kind, table in whole.items():
        assert pa.concat_tables(slices[kind]).equals(table), kind
