"""The collector contract and its one error type.

A collector is a module with:

- `name: str`, the name used by `--collector` and recorded in the catalog;
- `detect(path) -> bool`, a cheap sniff of the file name and first bytes;
- `read(path, **options) -> dict[str, pyarrow.Table]`, canonical tables keyed
  by table name (see `capacity.schema.TABLES`).

A collector whose input can be large may also offer
`read_batches(path, **options) -> Iterator[tuple[str, pyarrow.Table]]`, which
the store writes to Parquet as the batches come, so memory does not grow with
the file. Options every collector accepts and may ignore: `tz` (IANA zone of
timestamps written without one), `host` (host name when the file lacks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pyarrow as pa

SNIFF_BYTES = 64 * 1024


class CollectorError(Exception):
    """Bad input: carries the file, the line (1-based, when known) and the reason."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class Collector(Protocol):
    """What the registry expects of a collector module."""

    name: str

    def detect(self, path: Path) -> bool: ...

    def read(self, path: Path, **options: object) -> dict[str, pa.Table]: ...


def head_bytes(path: str | Path, size: int = SNIFF_BYTES) -> bytes:
    """The first `size` bytes of a file (empty for unreadable paths)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def head_text(path: str | Path, size: int = SNIFF_BYTES) -> str:
    """The first bytes of a file as text, without a UTF-8 BOM; empty if it is not text."""
    raw = head_bytes(path, size)
    if b"\x00" in raw:
        return ""
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def first_lines(path: str | Path, count: int = 5) -> list[str]:
    """The first `count` non-empty lines of a text file, for sniffing."""
    lines = [ln.rstrip("\r") for ln in head_text(path).split("\n")]
    return [ln for ln in lines if ln.strip()][:count]
