"""Broken inputs for every collector: a conforming table or a CollectorError, nothing else.

Every sample in `tests/data/<collector>/` is mutated by `tests/badinput.py` (truncation at
random offsets, wrong format, binary garbage, empty file, header only, Latin-1 bytes, UTF-8
BOM, UTF-16, CRLF, a 1 MB line, a garbage line, shuffled and duplicated records, locale
numbers, NaN and negative values). Each case is read in-process under a 10 s SIGALRM limit.
Valid mutations (CRLF, BOM, reordered records) must give the same rows as the original;
damage on a known line must be named by that line. Some failing cases are also ingested
into a store to show nothing stored changes. `pytest -s` prints one summary line per
collector; CAPACITY_TORTURE=1 raises the case counts.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import pytest

from capacity.store import Store
from collectors import registry
from collectors.base import CollectorError
from tests import badinput as bi

ROUNDS = 3 if bi.TORTURE else 1  # each round draws new offsets, lines and foreign files
INGESTS_PER_COLLECTOR = 50 if bi.TORTURE else 4
STORE_SEED = bi.DATA / "jmeter_jtl" / "header-2.13-default.jtl"


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under the store (but the lock) with its sha256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A store already holding one good run, so a broken ingest has something to damage."""
    s = Store.open(tmp_path / "store", create=True)
    s.ingest(STORE_SEED, "good", collector="jmeter_jtl")
    return s


@pytest.mark.parametrize("collector_name", registry.names())
def test_broken_inputs_give_a_table_or_a_collector_error(collector_name: str, tmp_path: Path, store: Store) -> None:
    collector = registry.get(collector_name)
    counts: dict[str, int] = {}
    problems: list[str] = []
    originals = {}
    for sample in bi.samples(collector_name):
        original = bi.read_path(collector, sample)
        assert original.kind == "ok", f"{sample.name}: the unmutated sample does not read: {original.error}"
        originals[sample] = original
    before = _snapshot(store.root)
    ingested = 0
    started = time.perf_counter()
    for round_ in range(ROUNDS):
        rng = random.Random(f"{collector_name}/{round_}")
        for n, case in enumerate(bi.cases(collector_name, rng)):
            path = bi.write_case(case, tmp_path / f"r{round_}" / f"{n}-{case.mutation}"[:80])
            outcome = bi.read_path(collector, path)
            bi.tally(counts, outcome.kind)
            if outcome.kind == "ok" and case.mutation in bi.SAME:
                bi.tally(counts, "same as original")
            why = bi.judge(case, outcome, path, originals[case.sample])
            if why:
                problems.append(f"{case.id} (line {case.line}): {why}")
            detect_problem = bi.detect_is_bool(collector, path)
            if detect_problem:
                problems.append(f"{case.id}: {detect_problem}")
            if outcome.kind == "error" and ingested < INGESTS_PER_COLLECTOR and n % 3 == 0:
                # The store must refuse the same input as a whole, whichever run it targets.
                for run in ("good", "fresh"):
                    try:
                        store.ingest(path, run, collector=collector_name)
                        problems.append(f"{case.id}: read raised CollectorError but ingest into {run!r} succeeded")
                    except CollectorError:
                        pass
                    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is reported
                        problems.append(f"{case.id}: ingest raised {type(exc).__name__}: {exc}")
                ingested += 1
                bi.tally(counts, "refused ingests")
    after = _snapshot(store.root)
    print(f"\nbad-input {bi.summary(collector_name, counts, time.perf_counter() - started)}")
    assert before == after, f"a refused ingest changed the store: {sorted(set(before.items()) ^ set(after.items()))[:5]}"
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:25])


def test_harness_sees_a_collector_that_raises_the_wrong_exception(tmp_path: Path) -> None:
    """The judge is not blind: a ValueError, a hang and a mis-named line are all failures."""

    class Broken:
        name = "broken"

        @staticmethod
        def read(path: Path, **_: object) -> dict:
            text = Path(path).read_text()
            if "hang" in text:
                time.sleep(60)
            if "line" in text:
                raise CollectorError(path, "bad row", line=2)
            raise ValueError("oops")

    sample = bi.DATA / "vzlist" / "moodle-laverage-kmemsize-l-commented-command.txt"
    path = tmp_path / "x.txt"
    case = bi.Case("broken", sample, "garbage-line", b"line\n", line=3)
    assert bi.judge(case, bi.read_data(Broken, path, b"boom"), path, None).startswith("ValueError")
    assert "names line 2" in (bi.judge(case, bi.read_data(Broken, path, b"line"), path, None) or "")
    old = bi.TIME_LIMIT_S
    bi.TIME_LIMIT_S = 0.5
    try:
        outcome = bi.read_data(Broken, path, b"hang")
    finally:
        bi.TIME_LIMIT_S = old
    assert outcome.kind == "failure" and isinstance(outcome.error, bi.TimeLimit)
    assert outcome.seconds < 5


def test_valid_mutations_are_compared_by_value() -> None:
    """`same_tables` tells a changed value from a reordering."""
    collector = registry.get("jmeter_jtl")
    a = bi.read_path(collector, bi.DATA / "jmeter_jtl" / "two-generators-gen1.jtl")
    b = bi.read_path(collector, bi.DATA / "jmeter_jtl" / "two-generators-gen2.jtl")
    assert a.kind == b.kind == "ok"
    assert bi.same_tables(a.tables, a.tables) is None
    reversed_ = {k: t.take(list(range(t.num_rows - 1, -1, -1))) for k, t in a.tables.items()}
    assert bi.same_tables(a.tables, reversed_) is None
    assert bi.same_tables(a.tables, b.tables) is not None
