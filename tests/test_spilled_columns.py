"""Columns kept in a temporary file (`collectors.spilled_columns`) read back exactly, by any row range.

The `sadf -d` reader keeps every value, device and out-of-order time there while it parses, so that
its memory does not grow with the file; `tests/test_sadf_fast.py` checks the tables it gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.generate import sadf_d
from collectors import sadf_csv_blocks
from collectors.spilled_columns import Spill, SpilledColumn


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_any_row_range_reads_back_what_was_written(dtype: type) -> None:
    rng = np.random.default_rng(7)
    spill = Spill()
    try:
        # Two columns written piece by piece, interleaved, as the parser writes them.
        parts: dict[str, list[np.ndarray]] = {"a": [], "b": []}
        pieces: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
        for size in (0, 1, 17, 1000, 3, 250):
            for key in parts:
                values = (rng.normal(size=size) * 1e6).astype(dtype)
                parts[key].append(values)
                pieces[key].append(spill.put(values))
        for key in parts:
            column = SpilledColumn(spill, pieces[key], np.dtype(dtype))
            whole = np.concatenate(parts[key])
            assert len(column) == len(whole)
            for start, stop in [(0, len(whole)), (0, 0), (5, 6), (17, 18), (0, 1018), (1017, 1019), (18, 1271)] + [
                    tuple(sorted(rng.integers(0, len(whole) + 1, size=2))) for _ in range(50)]:
                got = column.rows(int(start), int(stop))
                assert got.dtype == whole.dtype
                assert np.array_equal(got, whole[start:stop])
            rows = rng.permutation(len(whole))[:100]
            assert np.array_equal(column.take(rows), whole[rows])
    finally:
        spill.close()


def test_the_sadf_reader_removes_its_spill_file(tmp_path: Path) -> None:
    day = sadf_d(tmp_path / "day.csv", 0.01)
    parsed = sadf_csv_blocks.parse(day, "UTC")
    assert parsed.spill.size > 0, "the values went to the file"
    for block in parsed.blocks:
        # In memory: a few numbers per distinct time, none per row.
        assert all(isinstance(values, SpilledColumn) for _, values in block.columns)
        assert block.device is None or isinstance(block.device, SpilledColumn)
        assert block.ordered and block.ts is None and len(block.time_rows) == len(block.times) + 1
    tables = list(sadf_csv_blocks.batches(parsed, "host", "sadf_csv", {}))
    assert sum(t.num_rows for t in tables) > 0
    assert parsed.spill.file.closed
