"""The column-wise tsung.log reader: the line reader's tables whatever the cut into pieces, the text
variants it takes, the doubtful lines it leaves to the line reader, and memory that follows the rows
kept rather than the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pyarrow as pa
import pytest

from benchmarks.generate import tsung_log as tsung_log_generated
from collectors import tsung_log, tsung_log_fast
from collectors.base import CollectorError

DATA = Path(__file__).resolve().parent / "data" / "tsung_log"
OSMON = DATA / "duplicate-match-key-late-404-osmon.log"
ERRORS = DATA / "error-timeout-500-503-short-last-dump.log"


@pytest.fixture(scope="module")
def half_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tsung_log_generated(tmp_path_factory.mktemp("tsung") / "tsung.log", 0.5)


def by_line(path: Path) -> tuple[dict[str, pa.Table], list[str]]:
    notes: list[str] = []
    return tsung_log.tables_from_blocks(tsung_log._parse(path, notes.append), tsung_log.name), notes


def assert_same_as_line_reader(path: Path) -> None:
    expected, line_notes = by_line(path)
    notes: list[str] = []
    tables = tsung_log_fast.read_tables(path, notes.append)
    assert notes == line_notes
    for kind, table in expected.items():
        assert tables[kind].equals(table), kind


@pytest.mark.parametrize("piece_bytes", [40, 700, 5_000])
@pytest.mark.parametrize("path", [OSMON, ERRORS], ids=["osmon", "errors"])
def test_any_cut_into_pieces_gives_the_line_readers_tables(path, piece_bytes, monkeypatch):
    # 40 bytes is less than one dump: dumps then span several reads.
    monkeypatch.setattr(tsung_log_fast, "PIECE_BYTES", piece_bytes)
    assert_same_as_line_reader(path)


def test_a_long_file_in_small_pieces_and_slices(half_day, monkeypatch):
    monkeypatch.setattr(tsung_log_fast, "PIECE_BYTES", 64 << 10)
    assert_same_as_line_reader(half_day)
    expected, _ = by_line(half_day)
    slices: dict[str, list[pa.Table]] = {}
    for kind, table in tsung_log_fast.read_batches(half_day, None, rows=3_000):
        assert 0 < table.num_rows <= 3_000
        slices.setdefault(kind, []).append(table)
    for kind, table in expected.items():
        assert pa.concat_tables(slices[kind]).equals(table), kind
    # The raw text: the request sample of the dump at 1795304348 counts 141 over the 10 s window.
    rows = pa.concat_tables(slices["request_stats"]).to_pylist()
    row = next(r for r in rows if r["label"] == "request" and r["window_end"] is not None and r["window_end"].timestamp() == 1795304348)
    assert (row["count"], row["throughput_rps"], row["mean_ms"]) == (141, 14.1, 17.33937588652482)


def _variant(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tsung.log"
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("change", ["crlf", "blank-lines", "tabs-and-trailing-spaces"])
def test_text_variants_are_read_column_wise(change, tmp_path, monkeypatch):
    text = OSMON.read_text(encoding="utf-8")
    if change == "crlf":
        text = text.replace("\n", "\r\n")
    elif change == "blank-lines":
        text = text.replace("\n# stats:", "\n\n# stats:").replace("\nstats: 200", "\n\r\nstats: 200")
    else:
        text = text.replace("stats: request ", "stats: request\t").replace(" 0 0\n", " 0\t 0  \n")
    path = _variant(tmp_path, text)
    monkeypatch.setattr(tsung_log_fast, "PIECE_BYTES", 900)
    tsung_log_fast.read_tables(path, None)  # no `Unsupported`
    assert_same_as_line_reader(path)


@pytest.mark.parametrize(("old", "new"), [
    ("stats: users ", "stats:  users "),                      # the key does not follow `stats: ` at once
    ('{cpu,"tsung_controller@vm"}', '{cpu, "tsung_controller@vm"}'),  # whitespace inside a {...} key
    ("stats: tr_home ", "stats: tr\x1chome "),                # whitespace to Python only
    ("stats: tr_home ", "stats: tr_hom\u00e9 "),              # not ASCII
    ("stats: connect 10 ", "stats: connect nan "),            # a value the line reader keeps
    ("stats: match 1 1\n", "stats: match 1 1 1\n"),           # neither 2 nor 7 values
    ("# stats: dump at 1795304348", "# stats: dump at  1795304348"),
    ("stats: size_sent 5280 5280\n", "stats: size_sent\n"),
])
def test_doubtful_lines_are_left_to_the_line_reader(old, new, tmp_path):
    text = OSMON.read_text(encoding="utf-8")
    assert old in text
    path = _variant(tmp_path, text.replace(old, new, 1))
    with pytest.raises(tsung_log_fast.Unsupported):
        tsung_log_fast.read_tables(path, None)
    try:
        expected, _ = by_line(path)
    except CollectorError as exc:
        with pytest.raises(CollectorError) as got:
            tsung_log.read(path)
        assert str(got.value) == str(exc)
        return
    tables = tsung_log.read(path)
    for kind, table in expected.items():
        assert tables[kind].equals(table), kind


@pytest.mark.parametrize("text", ["", "stats: users 1 2\n# stats: dump at 1795304338\n", "# stats: dump at 1795304338\nstats: users 1 2"])
def test_files_without_a_first_dump_or_a_final_line_end_are_refused(text, tmp_path):
    with pytest.raises(tsung_log_fast.Unsupported):
        tsung_log_fast.read_tables(_variant(tmp_path, text), None)


def test_reading_keeps_what_the_rows_need_not_the_text(half_day, monkeypatch):
    """Once read, the run holds a few numbers per dump (numpy, which tracemalloc sees), none per row
    (they are spilled to a temporary file) and no Arrow memory; while reading, at most a few pieces more."""
    piece = 256 << 10
    monkeypatch.setattr(tsung_log_fast, "PIECE_BYTES", piece)
    tsung_log_fast.read_tables(OSMON, None)  # lazy imports and caches out of the count
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        run = tsung_log_fast._read(half_day, None)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        rows = sum(n for _, n in run.samples["block"])
        assert rows == 7 * run.blocks  # the seed's 7 samples in every dump
        host_rows = sum(n for _, n in run.hosts["block"])
        # per sample row block and key code (4 bytes each), count, mean, stddev (8 each); per os_mon row block, code, value
        assert run.spill.size == 32 * rows + 16 * host_rows
        assert kept < 100 * run.blocks  # 8 numbers per dump
        assert kept < 12 * rows  # where the rows' own 32 bytes were kept before
        assert peak < kept + 12 * piece
        assert pa.total_allocated_bytes() - arrow_before < 1_000_000
    finally:
        run.spill.close()
