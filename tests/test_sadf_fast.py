"""The column-wise `sadf -d` reader (`sadf_csv_blocks`) against the line-by-line one it replaces.

`sadf_csv.read_lines` is the reader `sadf_csv` had before (kept for unusual files): on every
sample and on a generated day, the fast reader must give exactly its table, whichever way
the day is cut into batches, and files it does not expect must still be read, or refused
with the file and line named, as before.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks.generate import sadf_d
from capacity.store import Store
from collectors import sadf_csv
from collectors import sadf_csv_blocks as blocks
from collectors.base import CollectorError

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = sorted((DATA / "sadf_csv").glob("*.csv"))
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sar" / "sadf_d_A.csv"
STAMP = re.compile(r";(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC;")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three minutes of 1-second `sadf -d -- -A` made from the real sample's records."""
    return sadf_d(tmp_path_factory.mktemp("sadf") / "sadf-d-3min.csv", 180 / 86400)


def _fast(path: Path, tz: str = "UTC", **options: object) -> pa.Table:
    """The fast reader's table; fails if the file would go to the line reader."""
    blocks.parse(path, tz)  # raises Unusual if the fast path does not take the file
    return sadf_csv.read(path, tz=tz, **options)["host_metrics"]


def _same(fast: pa.Table, lines: pa.Table) -> None:
    assert fast.num_rows == lines.num_rows
    assert fast.schema.equals(lines.schema, check_metadata=True)
    for name in fast.column_names:
        assert fast[name].equals(lines[name]), name


def _samples() -> Iterator[Path]:
    yield from SAMPLES
    if CORPUS.exists():
        yield CORPUS


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize("path", list(_samples()), ids=lambda p: p.name)
def test_samples_give_the_line_readers_table(path: Path, tz: str) -> None:
    _same(_fast(path, tz), sadf_csv.read_lines(path, tz=tz)["host_metrics"])


@pytest.mark.parametrize("batch_rows", [1_000_000, 7_000, 997])
def test_generated_day_in_any_batches(day: Path, batch_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BATCH_ROWS", batch_rows)
    parts = [t for _, t in sadf_csv.read_batches(day)]
    assert len(parts) == 1 if batch_rows == 1_000_000 else len(parts) > 3
    for before, after in zip(parts, parts[1:], strict=False):
        assert pc.max(before["ts"]).as_py() < pc.min(after["ts"]).as_py()  # no time split over two batches
    lines = sadf_csv.read_lines(day)["host_metrics"]
    _same(pa.concat_tables(parts), lines)
    assert lines.num_rows == 180 * 236  # the seed's 236 host_metrics rows per second


@pytest.mark.parametrize(("sample", "chunk_bytes"), [("sadf-d-A-C-locale.csv", 100), ("day", 4_096), ("day", 300_000)])
def test_blocks_split_over_pieces_of_the_file(day: Path, tmp_path: Path, sample: str, chunk_bytes: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 bytes is shorter than some lines; a last line without its line end is kept.
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk_bytes)
    source = day if sample == "day" else DATA / "sadf_csv" / sample
    cut = tmp_path / "no-final-newline.csv"
    cut.write_bytes(source.read_bytes().rstrip(b"\n"))
    for path in (source, cut):
        _same(_fast(path), sadf_csv.read_lines(path)["host_metrics"])


def test_generated_day_values_are_the_raw_text(day: Path) -> None:
    table = _fast(day)
    text = day.read_text().splitlines()
    head = next(i for i, ln in enumerate(text) if ";kbmemfree;" in ln)
    cols = text[head].split(";")
    row = text[head + 101].split(";")  # the memory row of the 101st second
    at = dt.datetime.fromisoformat(row[2][:19]).replace(tzinfo=dt.UTC)
    got = table.filter(pc.and_(pc.equal(table["ts"], pa.scalar(at, pa.timestamp("ms", tz="UTC"))),
                               pc.equal(table["metric"], "mem.used_bytes")))
    assert got["value"].to_pylist() == [float(row[cols.index("kbmemused")]) * 1024]
    assert json.loads(table.schema.metadata[b"host_info"]) == {"host": "vm", "cpu_count": 2}


def _rewrite(path: Path, out: Path, change: object) -> Path:
    out.write_bytes(change(path.read_bytes()))  # type: ignore[operator]
    return out


def test_shuffled_crlf_bom_local_and_epoch_layouts(day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BATCH_ROWS", 5_000)
    lines = day.read_bytes().split(b"\n")
    # Rows out of time order within each block (headers stay first): the reader selects by mask.
    shuffled: list[bytes] = []
    rows: list[bytes] = []
    for line in [*lines, b"# hostname;interval;timestamp;end"]:
        if line.startswith(b"#"):
            shuffled += rows[::-1][: len(rows) // 2] + rows[: len(rows) - len(rows) // 2]
            shuffled.append(line)
            rows = []
        elif line:
            rows.append(line)
    variants = {
        "shuffled": b"\n".join(shuffled[:-1]) + b"\n",
        "crlf-bom": b"\xef\xbb\xbf" + day.read_bytes().replace(b"\n", b"\r\n"),
        "local": day.read_bytes().replace(b" UTC;", b" CET;"),
        "epoch": STAMP.sub(lambda m: f";{int(dt.datetime.fromisoformat(m[1]).replace(tzinfo=dt.UTC).timestamp())};",
                           day.read_text()).encode(),
        # Interval -1 rows (restart, comment) in an unmapped and a mapped block, one of them with
        # the block's own field count and numbers only.
        "restart": day.read_bytes().replace(b"\n# hostname;interval;timestamp;pswpin",
                                            b"\nvm;-1;2026-11-21 23:24:00 UTC;LINUX-RESTART\t(2 CPU)\n"
                                            b"# hostname;interval;timestamp;pswpin", 1)
                                   .replace(b"\n# hostname;interval;timestamp;INTR",
                                            b"\nvm;-1;2026-11-21 23:24:00 UTC;COM a b\nvm;-1;2026-11-21 23:24:00 UTC;1;2\n"
                                            b"# hostname;interval;timestamp;INTR", 1),
    }
    for label, content in variants.items():
        path = tmp_path / f"{label}.csv"
        path.write_bytes(content)
        for tz in ("UTC", "America/New_York"):
            _same(_fast(path, tz), sadf_csv.read_lines(path, tz=tz)["host_metrics"])
    local = _fast(tmp_path / "local.csv", "Europe/Berlin")
    utc = _fast(day)
    assert (pc.min(utc["ts"]).value - pc.min(local["ts"]).value) == 3600 * 1000  # CET is UTC+1 in November


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(("label", "old", "new", "message"), [
    ("garbage-number", ";94.47", ";x94.47", "expected a number"),
    ("short-row", "vm;1;2026-11-21 23:23:52 UTC;-1;2.53;0.00;3.03", "vm;1;2026-11-21 23:23:52 UTC;-1;2.53", "expected 10 values"),
    ("three-fields-in-unmapped", "vm;1;2026-11-21 23:23:51 UTC;25;0.00;0.00;0.00", "vm;1;2026-11-21 23:23:51 UTC", "header or a data row"),
])
def test_bad_rows_name_file_and_line(tmp_path: Path, label: str, old: str, new: str, message: str) -> None:
    sample = DATA / "sadf_csv" / "sadf-d-A-C-locale.csv"
    path = tmp_path / f"{label}.csv"
    path.write_text(sample.read_text().replace(old, new, 1))
    with pytest.raises(blocks.Unusual):
        blocks.parse(path, "UTC")
    with pytest.raises(CollectorError, match=message) as err:
        sadf_csv.read(path)
    assert err.value.path == str(path)
    assert err.value.line == _line_of(sample.read_text(), old)


def test_unusual_but_valid_files_read_line_by_line(tmp_path: Path) -> None:
    sample = DATA / "sadf_csv" / "sadf-d-A-C-locale.csv"
    text = sample.read_text()
    comma = tmp_path / "comma-decimals.csv"
    comma.write_text(re.sub(r"(?<=;)(\d+)\.(\d\d)(?=;|$)", r"\1,\2", text, flags=re.M))
    comment = tmp_path / "comment.csv"
    comment.write_text(text.replace("\n# hostname;interval;timestamp;proc/s", "\n# a comment\n# hostname;interval;timestamp;proc/s", 1))
    for path in (comma, comment):
        with pytest.raises(blocks.Unusual):
            blocks.parse(path, "UTC")
        _same(sadf_csv.read(path)["host_metrics"], sadf_csv.read(sample)["host_metrics"])
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(sample.read_bytes().replace(b"vm;1;", b"v\xe9;1;", 1))
    with pytest.raises(CollectorError, match="not UTF-8"):
        sadf_csv.read(latin)


def test_several_hosts_need_the_host_option(day: Path, tmp_path: Path) -> None:
    two = tmp_path / "two-hosts.csv"
    two.write_bytes(day.read_bytes().replace(b"\nvm;1;2026-11-21 23:23:51 UTC;", b"\nvm2;1;2026-11-21 23:23:51 UTC;", 1))
    with pytest.raises(CollectorError, match=r"several hosts in one file \(vm, vm2\)"):
        sadf_csv.read(two)
    assert set(_fast(two, host="h")["host"].to_pylist()) == {"h"}


def test_store_ingest_writes_the_batches_as_one_part(day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BATCH_ROWS", 3_000)
    store = Store.open(tmp_path / "store", create=True)
    result = store.ingest(day, "r", collector="sadf_csv")
    assert result.rows == {"host_metrics": 180 * 236}
    stored = store.root / store.catalog()["runs"]["r"]["files"][0]["parts"]["host_metrics"]
    table = pq.read_table(stored)
    lines = sadf_csv.read_lines(day)["host_metrics"]
    for name in lines.column_names:
        assert table[name].equals(lines[name]), name
    assert store.catalog()["runs"]["r"]["hosts"]["vm"]["cpu_count"] == 2
