"""Columns kept in a temporary file while a whole input is parsed, read back by row range.

A `sadf -d` file lists each activity over the whole file before the next one, and its table is
written in time order, so every value is parsed before the first batch can be written. Held in
memory, the values grow with the file (8 bytes each: about 170 MB per day of `sadf -d -- -A` at
1-second intervals, past 1 GB after three days in one file), and so do the rows' devices. Written
to an unnamed temporary file as they are parsed, only the batch being built is in memory; the page
cache keeps the reads cheap.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import numpy as np


class Spill:
    """An unnamed temporary file that arrays are appended to (gone when closed or on exit)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="capacity-spill-")
        self.size = 0

    def put(self, values: np.ndarray) -> tuple[int, int]:
        """Append `values`; return where they are: (byte offset, count)."""
        values = np.ascontiguousarray(values)
        try:
            self.file.seek(self.size)
            values.tofile(self.file)
        except OSError as exc:  # the temporary folder is full: say where, not just that a write failed
            raise OSError(exc.errno, f"writing a temporary file in {tempfile.gettempdir()} (set TMPDIR): {exc.strerror}") from exc
        where = (self.size, len(values))
        self.size += values.nbytes
        return where

    def column(self, values: np.ndarray) -> SpilledColumn:
        """`values` appended as a whole column."""
        return SpilledColumn(self, [self.put(values)], values.dtype)

    def read(self, offset: int, count: int, dtype: np.dtype) -> np.ndarray:
        """`count` values of `dtype` from byte `offset`."""
        self.file.seek(offset)
        values = np.fromfile(self.file, dtype, count)
        if len(values) != count:
            raise OSError(f"spill file {self.file.name}: {len(values)} values where {count} were written")
        return values

    def close(self) -> None:
        """Delete the file."""
        self.file.close()


@dataclass
class SpilledColumn:
    """One column of `dtype`, stored as pieces (byte offset, count) of a `Spill`, in row order."""

    spill: Spill
    pieces: list[tuple[int, int]]
    dtype: np.dtype
    starts: np.ndarray = field(init=False)  # first row of each piece, then the row count

    def __post_init__(self) -> None:
        self.starts = np.concatenate(([0], np.cumsum([n for _, n in self.pieces], dtype=np.int64)))

    def __len__(self) -> int:
        return int(self.starts[-1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The values of rows `start` to `stop` (excluded)."""
        out = np.empty(max(0, stop - start), self.dtype)
        first = int(np.searchsorted(self.starts, start, "right")) - 1
        for k in range(max(first, 0), len(self.pieces)):
            lo, hi = max(start, int(self.starts[k])), min(stop, int(self.starts[k + 1]))
            if lo >= stop:
                break
            if hi > lo:
                offset, _ = self.pieces[k]
                skip = (lo - int(self.starts[k])) * self.dtype.itemsize
                out[lo - start:hi - start] = self.spill.read(offset + skip, hi - lo, self.dtype)
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The values of the rows at positions `rows`."""
        return self.rows(0, len(self))[rows]
