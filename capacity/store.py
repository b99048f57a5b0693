"""The Parquet store and its run catalog.

Layout (readable as it is by pyarrow, DuckDB, Spark, Dask)::

    STORE/catalog.json                         the run catalog, the source of truth
    STORE/<table>/run_id=<run>/<part>.parquet  one file per ingested input and table

Writes are atomic: data goes to `_tmp-*.partial` files (ignored by every engine,
no `.parquet` suffix), which are renamed into place when the input has been read
completely; the catalog is replaced last (temporary file + rename). A crash
therefore never leaves a catalog entry without its data, and opening the store
for writing removes any data file the catalog does not record.

Writers hold an exclusive `flock` on `STORE/.lock`, so two ingests into the same
store are serialised, never interleaved.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from capacity.schema import TABLES, SchemaError, conform

if TYPE_CHECKING:  # pandas is loaded by DuckDB's `.df()` when a frame is asked for, not at start-up
    import duckdb
    import pandas as pd

DEFAULT_STORE = "data/store"
CATALOG = "catalog.json"
CATALOG_VERSION = 1
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TMP_PREFIX = "_tmp-"
DUCKDB_MEMORY = "768MB"
# Time columns that bound a run's span, per table.
SPAN_COLUMNS = ("ts", "window_start", "window_end", "period_start")
# DuckDB types of the canonical tables' Arrow types (for views over tables with no data).
_SQL_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "timestamp[ms, tz=UTC]": "TIMESTAMPTZ"}
# Text no query filters on by range: min/max statistics of it cost write time and say nothing.
# Free text, and the columns holding one or a few values in every row group (the status code,
# the generator, the collector), whose statistics would never skip a row group.
NO_STATISTICS = frozenset({"message", "error", "url", "thread", "labels", "data_type", "status", "generator", "source"})


class StoreError(Exception):
    """The store cannot do what was asked (unknown run, bad run id, unreadable catalog)."""


@dataclass
class FileResult:
    """What ingesting one input file did."""

    path: str
    collector: str
    rows: dict[str, int]
    seconds: float
    sha256: str
    skipped: bool = False
    note: str = ""
    warnings: list[str] = field(default_factory=list)


def default_root() -> Path:
    """The store root: `CAPACITY_STORE`, else `data/store`."""
    return Path(os.environ.get("CAPACITY_STORE") or DEFAULT_STORE)


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_run_id(run: str) -> str:
    """Reject run ids that are not safe as a single path component."""
    if not RUN_ID.match(run or ""):
        raise StoreError(f"invalid run id {run!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return run


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _TableWriter:
    """Streams conformed batches of one table into a temporary Parquet file."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.kind = kind
        self.directory = directory
        self.tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}.partial"
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0
        self.span: list[int] = []

    def write(self, table: pa.Table) -> None:
        table = conform(table, self.kind)
        if self.writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.schema = table.schema
            # Timestamps rise nearly monotonically and rarely repeat: delta encoding stores them in about
            # a fifth less space than a dictionary, which the writer would build and then give up on.
            times = [f.name for f in self.schema if pa.types.is_timestamp(f.type)]
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd",
                                           use_dictionary=[n for n in self.schema.names if n not in times],
                                           column_encoding=dict.fromkeys(times, "DELTA_BINARY_PACKED"),
                                           write_statistics=[n for n in self.schema.names if n not in NO_STATISTICS])
        elif table.schema != self.schema:
            # Extra columns (sample variables) may appear in one batch only.
            table = table.select([n for n in self.schema.names if n in table.column_names])
            table = conform(table, self.kind).select(self.schema.names).cast(self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows
        for name in SPAN_COLUMNS:
            if name in table.column_names and table.num_rows:
                lo, hi = pc.min_max(table.column(name)).values()
                for v in (lo, hi):
                    if v.is_valid:
                        self.span.append(v.cast(pa.int64()).as_py())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
        self.tmp.unlink(missing_ok=True)


class _Hasher:
    """The sha256 of a file, computed in a thread (hashlib releases the GIL on large chunks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sha256 {path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    if self._stop.is_set():
                        return
                    digest.update(chunk)
            self._digest = digest.hexdigest()
        except BaseException as exc:  # re-raised in the caller's thread by `result`
            self._error = exc

    def result(self) -> str:
        """The hex digest, waiting for it; an error reading the file is raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._digest is None:
            raise StoreError(f"hashing {self.path} was cancelled")
        return self._digest

    def cancel(self) -> None:
        """Stop hashing (the read failed, so the digest is not needed)."""
        self._stop.set()
        self._thread.join()


class Store:
    """A capacity store: Parquet tables per run plus the run catalog.

    Open it with `capacity.open_store(path)` or `Store.open(path)`. Reading
    (`runs`, `table`, `df`, `sql`, `connect`) never takes the lock; writing
    (`ingest`, `write_tables`, `set_tags`, `set_host`) does.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- opening, locking, catalog -------------------------------------------------

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = False) -> Store:
        """Open the store at `path` (default `CAPACITY_STORE` or `data/store`).

        With `create=False` a missing store is an error; `ingest` creates it.
        """
        root = Path(path) if path else default_root()
        if not (root / CATALOG).exists():
            if not create:
                raise StoreError(f"no store at {root} (no {CATALOG}); ingest something first")
            root.mkdir(parents=True, exist_ok=True)
            store = cls(root)
            with store.locked():
                if not (root / CATALOG).exists():
                    store._write_catalog({"version": CATALOG_VERSION, "runs": {}})
            return store
        return cls(root)

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[Path]]:
        """Hold the store's writer lock; recover from any interrupted write first.

        Yields the files recovery removed. The lock is an `flock`, released by the
        kernel if the process dies, so a killed writer never blocks the next one.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                removed = self.recover() if (self.root / CATALOG).exists() else []
                yield removed
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def catalog(self) -> dict[str, Any]:
        """The catalog as a dict (read fresh from disk)."""
        try:
            with open(self.root / CATALOG, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError as exc:
            raise StoreError(f"no store at {self.root} (no {CATALOG})") from exc
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.root / CATALOG}: unreadable catalog: {exc}") from exc
        if data.get("version") != CATALOG_VERSION:
            raise StoreError(f"{self.root / CATALOG}: catalog version {data.get('version')!r}, expected {CATALOG_VERSION}")
        return data

    def _write_catalog(self, data: dict[str, Any]) -> None:
        tmp = self.root / f"{CATALOG}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / CATALOG)
        _fsync_dir(self.root)

    def recorded_parts(self) -> set[Path]:
        """Every data file the catalog records, as absolute paths."""
        parts: set[Path] = set()
        for run in self.catalog()["runs"].values():
            for entry in run["files"]:
                parts.update(self.root / p for p in entry["parts"].values())
        return parts

    def recover(self) -> list[Path]:
        """Remove temporary files and data files the catalog does not record; return them."""
        recorded = self.recorded_parts()
        removed = []
        for kind in TABLES:
            base = self.root / kind
            if not base.is_dir():
                continue
            for path in base.glob("run_id=*/*"):
                if path.is_file() and (path.name.startswith(TMP_PREFIX) or path not in recorded):
                    path.unlink()
                    removed.append(path)
            for directory in base.glob("run_id=*"):
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()
        for stale in self.root.glob(f"{CATALOG}.*.tmp"):
            stale.unlink()
            removed.append(stale)
        return removed

    # -- reading -------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every run, as the `capacity runs --json` objects."""
        out = []
        for run_id, run in sorted(self.catalog()["runs"].items()):
            out.append(
                {
                    "run": run_id,
                    "name": run.get("name", run_id),
                    "tags": run.get("tags", {}),
                    "hosts": [{"name": name, **info} for name, info in sorted(run.get("hosts", {}).items())],
                    "start": run.get("start"),
                    "end": run.get("end"),
                    "files": [
                        {"path": f["path"], "sha256": f["sha256"], "collector": f["collector"], "rows": f["rows"], "tz": f.get("tz")}
                        for f in run["files"]
                    ],
                    # Gaps a live collector recorded while its source did not answer.
                    "gaps": [dict(g, collector=f["collector"]) for f in run["files"] for g in f.get("gaps", [])],
                }
            )
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's catalog entry (as in `runs`)."""
        for r in self.runs():
            if r["run"] == run_id:
                return r
        raise StoreError(f"no run {run_id!r} in {self.root}")

    def parts(self, kind: str, runs: Iterable[str] | None = None) -> list[Path]:
        """The Parquet files of table `kind` for `runs` (all runs when None), as the catalog records them."""
        if kind not in TABLES:
            raise StoreError(f"unknown table {kind!r}; known: {', '.join(TABLES)}")
        catalog = self.catalog()["runs"]
        wanted = list(catalog) if runs is None else list(runs)
        for r in wanted:
            if r not in catalog:
                raise StoreError(f"no run {r!r} in {self.root}")
        return [self.root / f["parts"][kind] for r in wanted for f in catalog[r]["files"] if kind in f["parts"]]

    def table(self, kind: str, runs: Iterable[str] | None = None, columns: list[str] | None = None) -> pa.Table:
        """Table `kind` for `runs` as one Arrow table, with the `run_id` column."""
        files = self.parts(kind, runs)
        import pyarrow.dataset as ds  # loads pandas: only when a table is read whole

        part = ds.partitioning(pa.schema([("run_id", pa.string())]), flavor="hive")
        if not files:
            schema = TABLES[kind].arrow_schema().append(pa.field("run_id", pa.string()))
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        dataset = ds.dataset([str(f) for f in files], format="parquet", partitioning=part, partition_base_dir=str(self.root / kind))
        return dataset.to_table(columns=columns)

    def df(self, kind: str, runs: Iterable[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Table `kind` for `runs` as a pandas DataFrame."""
        return self.table(kind, runs, columns).to_pandas()

    def connect(self, runs: Iterable[str] | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per canonical table, over the recorded files of `runs`.

        DuckDB's memory is capped (`memory_limit`, else `CAPACITY_DUCKDB_MEMORY`, else 768MB) so a
        query over tens of millions of rows keeps the process under 1 GB; sorts and joins spill to
        disk, but exact percentiles hold a group's values in memory, so a very large run may need more.
        """
        import duckdb  # here: an ingest of a file DuckDB does not parse needs no query engine

        runs = None if runs is None else list(runs)
        limit = memory_limit or os.environ.get("CAPACITY_DUCKDB_MEMORY") or DUCKDB_MEMORY
        con = duckdb.connect()
        try:
            con.execute("SET memory_limit = ?", [limit])
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"invalid DuckDB memory limit {limit!r} (CAPACITY_DUCKDB_MEMORY): {exc}") from exc
        # Spill to the system's temporary folder: DuckDB's default is `.tmp` in the working directory.
        con.execute("SET temp_directory = ?", [str(Path(tempfile.gettempdir()) / "capacity-duckdb-spill")])
        con.execute("SET TimeZone = 'UTC'")
        for kind in TABLES:
            files = self.parts(kind, runs)
            if files:
                listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                con.execute(
                    f"CREATE VIEW {kind} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = true, "
                    f"hive_types = {{'run_id': VARCHAR}}, union_by_name = true)"
                )
            else:
                # Declared in SQL: registering an Arrow table would make DuckDB import pandas.
                schema = TABLES[kind].arrow_schema().append(pa.field("run_id", pa.string()))
                columns = ", ".join(f"CAST(NULL AS {_SQL_TYPES[str(f.type)]}) AS {f.name}" for f in schema)
                con.execute(f"CREATE VIEW {kind} AS SELECT {columns} WHERE false")
        return con

    def sql(self, query: str, runs: Iterable[str] | None = None, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL over the canonical tables (one view per table) and return a DataFrame."""
        con = self.connect(runs)
        try:
            return con.execute(query, params or []).df()
        finally:
            con.close()

    # -- writing -------------------------------------------------------------------

    def write_batches(
        self,
        run: str,
        batches: Iterable[tuple[str, pa.Table]],
        provenance: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        host: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Write one input's tables into `run` atomically and record them in the catalog.

        `provenance` is stored as the file's catalog entry (path, sha256, collector, ...);
        its `rows`, `parts`, `start` and `end` are filled here. `progress` is called with
        the rows written so far after each batch. Caller holds the lock.
        """
        check_run_id(run)
        writers: dict[str, _TableWriter] = {}
        metadata: dict[bytes, bytes] = {}
        try:
            for kind, table in batches:
                if kind not in TABLES:
                    raise SchemaError(f"collector returned unknown table {kind!r}")
                if table.schema.metadata:
                    metadata.update(table.schema.metadata)
                if table.num_rows == 0:
                    continue
                if kind not in writers:
                    writers[kind] = _TableWriter(self.root / kind / f"run_id={run}", kind)
                writers[kind].write(table)
                if progress:
                    progress(sum(w.rows for w in writers.values()))
            for w in writers.values():
                w.close()
        except BaseException:
            for w in writers.values():
                w.discard()
            raise
        parts, hashes = {}, {}
        # Known only now: `ingest` may hash the input while its batches are being read.
        stem = provenance.get("part_name") or provenance["sha256"][:16]
        for kind, w in writers.items():
            final = w.directory / f"{stem}.parquet"
            hashes[kind] = sha256_of(w.tmp)
            os.replace(w.tmp, final)
            _fsync_dir(w.directory)
            parts[kind] = str(final.relative_to(self.root))
        span = [v for w in writers.values() for v in w.span]
        entry = dict(provenance)
        entry.pop("part_name", None)
        entry.update(
            rows={k: w.rows for k, w in writers.items()},
            parts=parts,
            part_sha256=hashes,
            start=_iso(min(span)) if span else None,
            end=_iso(max(span)) if span else None,
        )
        catalog = self.catalog()
        record = catalog["runs"].setdefault(run, {"name": run, "tags": {}, "hosts": {}, "files": [], "created": _now()})
        record["files"].append(entry)
        record["tags"].update(tags or {})
        extra_tags = metadata.get(b"run_tags")
        if extra_tags:
            record["tags"].update({k: str(v) for k, v in json.loads(extra_tags).items()})
        host_info = json.loads(metadata[b"host_info"]) if b"host_info" in metadata else {}
        host_name = host_info.pop("host", None) or host
        if host_name:
            info = record["hosts"].setdefault(host_name, {"cpu_count": None, "memory_bytes": None, "instance_type": None})
            info.update({k: v for k, v in host_info.items() if v is not None})
        starts = [f["start"] for f in record["files"] if f.get("start")]
        ends = [f["end"] for f in record["files"] if f.get("end")]
        record["start"] = min(starts) if starts else None
        record["end"] = max(ends) if ends else None
        self._write_catalog(catalog)
        return entry["rows"]

    def ingest(
        self,
        path: str | Path,
        run: str,
        *,
        collector: str | None = None,
        tags: dict[str, str] | None = None,
        host: str | None = None,
        tz: str = "UTC",
        options: dict[str, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> FileResult:
        """Ingest one file into `run`; a file already ingested there (same sha256) is a no-op.

        `progress`, if given, is called with the number of rows written so far.
        """
        from collectors import registry

        check_run_id(run)
        path = Path(path)
        started = time.perf_counter()
        module = registry.get(collector) if collector else registry.detect(path)
        shown = str(path.resolve())
        with self.locked():
            catalog = self.catalog()
            previous = catalog["runs"].get(run, {}).get("files", [])
            size = path.stat().st_size
            hasher = _Hasher(path)
            # A file can only be one already ingested if it has the same size; only then is its hash
            # needed before reading. Otherwise it is computed while the collector reads (same bytes, in cache).
            if any(f.get("size_bytes", size) == size for f in previous):
                digest = hasher.result()
                for f in previous:
                    if f["sha256"] == digest:
                        return FileResult(shown, f["collector"], f["rows"], time.perf_counter() - started, digest, skipped=True,
                                          note="already ingested in this run (same sha256): nothing to do")
            note = ""
            if any(f["path"] == shown for f in previous):
                note = "a file of the same name was ingested before with other content: stored as a new file"
            warnings: list[str] = []
            opts = {"tz": tz, "host": host, "warn": warnings.append, **(options or {})}
            provenance = {
                "path": shown,
                "name": path.name,
                "sha256": None,
                "size_bytes": size,
                "collector": module.name,
                "tz": tz,
                "host": host,
                "options": {k: v for k, v in (options or {}).items() if isinstance(v, str | int | float | bool | list)},
                "ingested_at": _now(),
                "warnings": warnings,
            }

            def batches() -> Iterator[tuple[str, pa.Table]]:
                reader = getattr(module, "read_batches", None)
                yield from (reader(path, **opts) if reader else module.read(path, **opts).items())
                provenance["sha256"] = hasher.result()

            try:
                rows = self.write_batches(run, batches(), provenance, tags=tags, host=host, progress=progress)
            finally:
                hasher.cancel()
            digest = provenance["sha256"]
        return FileResult(shown, module.name, rows, time.perf_counter() - started, digest, note=note, warnings=warnings)

    def verify(self, run: str | None = None) -> list[str]:
        """Recompute every stored file's row count and sha256 against the catalog; return the differences.

        Also reports data files in the layout that the catalog does not record
        (left by an interrupted write; `recover` removes them). Empty means all is well.
        """
        catalog = self.catalog()["runs"]
        if run is not None and run not in catalog:
            raise StoreError(f"no run {run!r} in {self.root}")
        problems = []
        for run_id, record in sorted(catalog.items()):
            if run is not None and run_id != run:
                continue
            for entry in record["files"]:
                for kind, rel in entry["parts"].items():
                    path = self.root / rel
                    where = f"run {run_id}: {entry['path']} -> {rel}"
                    if not path.is_file():
                        problems.append(f"{where}: data file missing")
                        continue
                    try:
                        rows = pq.ParquetFile(path).metadata.num_rows
                    except (pa.ArrowException, OSError) as exc:
                        problems.append(f"{where}: unreadable Parquet ({exc})")
                        continue
                    if rows != entry["rows"].get(kind):
                        problems.append(f"{where}: {rows} rows, catalog says {entry['rows'].get(kind)}")
                    expected = entry.get("part_sha256", {}).get(kind)
                    if expected and sha256_of(path) != expected:
                        problems.append(f"{where}: sha256 differs from the catalog (file changed after ingest)")
        recorded = self.recorded_parts()
        for kind in TABLES:
            for path in sorted((self.root / kind).glob("run_id=*/*")):
                in_scope = run is None or path.parent.name == f"run_id={run}"
                if in_scope and path.is_file() and path not in recorded:
                    problems.append(f"{path.relative_to(self.root)}: not recorded in the catalog (interrupted write)")
        return problems

    def _update_run(self, run: str, change: Callable[[dict[str, Any]], None]) -> None:
        with self.locked():
            catalog = self.catalog()
            if run not in catalog["runs"]:
                raise StoreError(f"no run {run!r} in {self.root}")
            change(catalog["runs"][run])
            self._write_catalog(catalog)

    def set_tags(self, run: str, tags: dict[str, str]) -> None:
        """Add or replace tags of a run."""
        self._update_run(run, lambda r: r["tags"].update(tags))

    def set_host(self, run: str, host: str, *, cpu_count: int | None = None, memory_bytes: int | None = None,
                 instance_type: str | None = None) -> None:
        """Record or update what is known of one host of a run."""
        given = {"cpu_count": cpu_count, "memory_bytes": memory_bytes, "instance_type": instance_type}

        def change(record: dict[str, Any]) -> None:
            info = record["hosts"].setdefault(host, {"cpu_count": None, "memory_bytes": None, "instance_type": None})
            info.update({k: v for k, v in given.items() if v is not None})

        self._update_run(run, change)
