"""A realistic run with server-side data: the step-load JMeter JTL plus sar, top, Apache, AWStats and beancounter files.

The load side is `data/samples/jmeter-steps/results.jtl` (4 steps: 7, 12, 22 and 42
users, 2026-11-21 23:36:42-23:38:42 UTC), ingested as it is.

The server side comes from the real files in `tests/data/` recorded on host `vm`
during the corpus load run of 2026-11-21 23:23:50-23:26:34 UTC (four phases of
~30 s at concurrency 1, 5, 20 and 50, see `tests/data/apache_status/README.md`).
Those phases line up with the JTL's four steps when every server timestamp is
moved by the same `SHIFT_S` = 768 s (phase 2 starts at 23:24:25, the JTL's
12-user step at 23:37:13). So the server files are read with their own
collectors, every `ts` is shifted by `SHIFT_S`, the host is set to `HOST`
(sar, top and Apache all ran on `vm`), and each file's tables are conformed
with `capacity.schema.conform` and written with `Store.write_batches` inside
`with store.locked():`, one catalog entry per file (its real path and sha256,
plus `shifted_s`). Values are never changed; only the time axis moves.

The Apache series is read with the collector's `max_workers` option set to
`MAX_WORKERS` = 27, the busiest snapshot of the file (as if MaxRequestWorkers
were 27): the scoreboard is full at the 42-user step, so the run has a workers
limit to find. AWStats (monthly aggregates) and the Moodle beancounters (no
timestamps; `tcpsndbuf` failcnt 417,584,502) carry no time series and are
ingested unchanged with `Store.ingest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from capacity.schema import conform
from capacity.store import Store, sha256_of
from collectors import registry

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
SAMPLES = TESTS.parent / "data" / "samples"
RUN = "server-steps"
HOST = "vm"
SHIFT_S = 768
MAX_WORKERS = 27
JTL = SAMPLES / "jmeter-steps" / "results.jtl"
SAR_FULL = DATA / "sar_text" / "sar-A-12.6-C-locale.txt"
SAR_CPU = DATA / "sar_text" / "sar-u-12h-ampm.txt"
SAR_MIDNIGHT = DATA / "sar_text" / "sar-midnight-rollover-utc+0035.txt"
TOP_PROCS = DATA / "top_batch" / "top-b-c-w512-full-command-lines.txt"
TOP_DE = DATA / "top_batch" / "top-b-de_DE-comma-decimal-translated.txt"
TOP_THREADS = DATA / "top_batch" / "top-b-H-threads.txt"
APACHE = DATA / "apache_status" / "2.4.71-poll-1s-ts-framed-graceful-restart.txt"
AWSTATS = DATA / "awstats_data" / "awstats112026.site1.txt"
BEANCOUNTERS = DATA / "openvz_beancounters" / "moodle-ct10035-tcpsndbuf-failcnt.txt"
CORPUS_DATE = "2026-11-21"


@dataclass(frozen=True)
class Shifted:
    """One server file moved onto the JTL's clock: its options and the tables kept."""

    path: Path
    options: dict[str, object]
    tables: tuple[str, ...] = ("host_metrics", "processes", "web_status")


SHIFTED = (
    Shifted(SAR_FULL, {}),
    Shifted(SAR_CPU, {}),
    # the file shows times in a zone 35 minutes east of UTC (its README)
    Shifted(SAR_MIDNIGHT, {"tz": "+00:35"}),
    Shifted(TOP_PROCS, {"date": CORPUS_DATE}),
    # only the summary lines of these two: the process table of the threads view lists threads, not processes
    Shifted(TOP_DE, {"date": CORPUS_DATE}, ("host_metrics",)),
    Shifted(TOP_THREADS, {"date": CORPUS_DATE}, ("host_metrics",)),
    Shifted(APACHE, {"max_workers": MAX_WORKERS}),
)


def _shift(table: pa.Table, kind: str) -> pa.Table:
    """`ts` moved by `SHIFT_S`, every row on `HOST`, conformed to the canonical schema (host metadata renamed too)."""
    ts = table.column("ts").cast(pa.timestamp("ms", tz="UTC"))
    moved = pc.add(ts, pa.scalar(SHIFT_S * 1000, pa.duration("ms")))
    table = table.set_column(table.schema.get_field_index("ts"), "ts", moved)
    table = table.set_column(table.schema.get_field_index("host"), "host", pa.array([HOST] * table.num_rows, pa.string()))
    meta = dict(table.schema.metadata or {})
    if b"host_info" in meta:
        info = json.loads(meta[b"host_info"])
        info["host"] = HOST
        meta[b"host_info"] = json.dumps(info).encode()
    out = conform(table, kind)
    return out.replace_schema_metadata({**(out.schema.metadata or {}), **meta})


def shifted_tables(spec: Shifted) -> dict[str, pa.Table]:
    """The tables of one server file as the fixture stores them (what a test compares against)."""
    module = registry.detect(spec.path)
    opts: dict[str, object] = {"tz": "UTC", "host": HOST, "warn": None, **spec.options}
    read = module.read(spec.path, **opts)
    return {kind: _shift(t, kind) for kind, t in read.items() if kind in spec.tables and t.num_rows}


def build_server_run(store_dir: Path) -> Store:
    """Create `store_dir` holding run `RUN` (see the module docstring); return the open store."""
    store = Store.open(store_dir, create=True)
    store.ingest(JTL, RUN, tags={"platform": "moodle", "deployment": "apache-event"})
    for spec in SHIFTED:
        tables = shifted_tables(spec)
        module = registry.detect(spec.path)
        provenance = {"path": str(spec.path), "name": spec.path.name, "sha256": sha256_of(spec.path), "collector": module.name,
                      "tz": str(spec.options.get("tz", "UTC")), "host": HOST, "shifted_s": SHIFT_S,
                      "options": {k: v for k, v in spec.options.items() if k != "tz"}}
        with store.locked():
            store.write_batches(RUN, list(tables.items()), provenance, host=HOST)
    store.ingest(AWSTATS, RUN)
    store.ingest(BEANCOUNTERS, RUN, host=HOST)
    return store


def apache_snapshots(path: Path = APACHE) -> list[tuple[int, int]]:
    """(epoch seconds shifted by `SHIFT_S`, BusyWorkers) of every `# ts=` framed snapshot, read from the raw text."""
    out: list[tuple[int, int]] = []
    ts = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ts="):
            ts = int(line[5:].split()[0]) + SHIFT_S
        elif line.startswith("BusyWorkers:") and ts is not None:
            out.append((ts, int(line.split(":", 1)[1])))
    return out


@pytest.fixture(scope="session")
def server_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store folder holding run `RUN`, built once per test session."""
    store_dir = tmp_path_factory.mktemp("server-run") / "store"
    build_server_run(store_dir)
    return store_dir
