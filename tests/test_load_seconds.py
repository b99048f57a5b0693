"""The `load` table a JTL (CSV or XML) gives: users, requests and errors per generator and second, from its samples.

Checked against the samples themselves (DuckDB over the stored `requests`), across batch
boundaries (a second recurs in a later batch), and equal on the fast and plain paths.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from benchmarks.generate import jtl_csv
from capacity.analysis.align import users_per_second
from capacity.store import Store
from collectors import jmeter_jtl
from collectors.load_seconds import LoadSeconds

DATA = Path(__file__).resolve().parent / "data" / "jmeter_jtl"
XML_SAMPLE = Path(__file__).resolve().parent / "data" / "jmeter_xml" / "xml-subresults-assertions.jtl"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return jtl_csv(tmp_path_factory.mktemp("load") / "steps-5x.jtl", 60_000, layout="5.x")


def load_of(path: Path, engine: str) -> pa.Table:
    tables = [t for kind, t in jmeter_jtl.read_batches(path, engine=engine) if kind == "load"]
    assert len(tables) == 1, "one load table, after the requests"
    return tables[0]


def test_fast_and_plain_paths_give_the_same_load(generated, monkeypatch):
    plain = load_of(generated, "plain")
    monkeypatch.setattr(jmeter_jtl, "FAST_BATCH_ROWS", 7000)  # many batches: seconds recur across them
    assert load_of(generated, "fast").equals(plain)
    assert plain.num_rows > 100


@pytest.mark.parametrize("name", ["steps-5x.jtl", "two-generators-gen1.jtl", "xml"])
def test_load_agrees_with_the_samples(generated, tmp_path, name):
    path = {"steps-5x.jtl": generated, "xml": XML_SAMPLE}.get(name, DATA / name)
    store = Store.open(tmp_path / "store", create=True)
    store.ingest(path, "r")
    con = store.connect(["r"])
    try:
        expected = con.execute(
            "SELECT coalesce(generator, source) AS g, CAST(floor(epoch(ts)) AS BIGINT) AS s, count(*) AS n, "
            "count(*) FILTER (WHERE NOT success) AS e, max(epoch_ms(ts)) AS last_ms FROM requests "
            "WHERE row_kind = 'sample' AND active_users IS NOT NULL GROUP BY 1, 2 ORDER BY 2, 1"
        ).fetchall()
        got = con.execute(
            "SELECT generator, CAST(floor(epoch(ts)) AS BIGINT), rps, errors_per_s, active_users FROM load ORDER BY 2, 1"
        ).fetchall()
        # The users of a second are those of its latest sample (several at that ms: the largest).
        users = dict(con.execute(
            "SELECT coalesce(generator, source) || '@' || CAST(floor(epoch(ts)) AS BIGINT), max(active_users) FROM requests r "
            "WHERE row_kind = 'sample' AND active_users IS NOT NULL AND epoch_ms(ts) = (SELECT max(epoch_ms(ts)) FROM requests q "
            "WHERE q.row_kind = 'sample' AND q.active_users IS NOT NULL AND coalesce(q.generator, q.source) = coalesce(r.generator, r.source) "
            "AND CAST(floor(epoch(q.ts)) AS BIGINT) = CAST(floor(epoch(r.ts)) AS BIGINT)) GROUP BY 1"
        ).fetchall())
        curve = users_per_second(con, "r")
    finally:
        con.close()
    assert [(g, s, float(n), float(e)) for g, s, n, e, _ in expected] == [(g, s, rps, err) for g, s, rps, err, _ in got]
    assert all(u == users[f"{g}@{s}"] for g, s, _, _, u in got)
    assert sum(n for *_, n, _, _ in expected) > 0
    assert curve.max() == pytest.approx(max(u for *_, u in got))


def test_a_file_without_user_counts_gives_no_load(tmp_path):
    path = tmp_path / "no-threads.jtl"
    path.write_text("timeStamp,elapsed,label,success\n1700000000000,12,a,true\n1700000001000,15,a,false\n", encoding="utf-8")
    kinds = [kind for kind, _ in jmeter_jtl.read_batches(path)]
    assert kinds == ["requests"]


def _requests(rows: list[tuple[int, str | None, int, bool]]) -> pa.Table:
    """A `requests` batch of (epoch ms, generator, active users, success) sample rows."""
    return pa.table({
        "ts": pa.array([r[0] for r in rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "generator": pa.array([r[1] for r in rows], pa.string()),
        "active_users": pa.array([r[2] for r in rows], pa.int64()),
        "success": pa.array([r[3] for r in rows]),
        "row_kind": pa.array(["sample"] * len(rows)),
    })


def _expected(rows: list[tuple[int, str | None, int, bool]]) -> list[tuple]:
    """The `load` rows by their definition: per (generator, second), the latest sample's users (the larger on a tie)."""
    groups: dict[tuple, list] = {}
    for ts, generator, users, ok in rows:
        g = groups.setdefault((generator, ts // 1000), [(-1, -1), 0, 0])
        g[0] = max(g[0], (ts, users))
        g[1] += 1
        g[2] += not ok
    return sorted(((k[1], k[0] or ""), latest[0], float(latest[1]), float(n), float(err)) for k, (latest, n, err) in groups.items())


def _rows_of(load: pa.Table) -> list[tuple]:
    ts = pc.cast(load["ts"], pa.int64()).to_pylist()
    return sorted(((t // 1000, g or ""), t, u, r, e) for t, g, u, r, e in zip(
        ts, load["generator"].to_pylist(), load["active_users"].to_pylist(), load["rps"].to_pylist(), load["errors_per_s"].to_pylist(), strict=True))


@pytest.mark.parametrize("case", ["one generator", "two generators interleaved", "null generator", "clock jump"])
def test_batches_reduce_to_their_definition(case):
    # Each case takes a different way through `LoadSeconds.add` (counted per second, or hashed).
    rng = random.Random(case)
    base = 1_700_000_000_000
    rows = []
    for i in range(5000):
        ts = base + i * 3 + rng.randrange(0, 2000)
        generator = {"one generator": "gen1", "two generators interleaved": rng.choice(["gen1", "gen2"]),
                     "null generator": None if i % 7 == 0 else "gen1", "clock jump": "gen1"}[case]
        if case == "clock jump" and i % 2:
            ts += 86_400_000 * 30  # more seconds than an array would be sized for
        rows.append((ts, generator, rng.randrange(0, 50), rng.random() > 0.1))
    load = LoadSeconds("test")
    for start in range(0, len(rows), 1234):  # batch boundaries inside seconds
        load.add(_requests(rows[start:start + 1234]))
    assert _rows_of(load.table()) == _expected(rows)
