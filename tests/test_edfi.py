"""Ed-Fi load tester exports (made by the seeded generator in tests/data/edfi_events) into `requests`."""

from __future__ import annotations

import csv
import importlib.util
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.compute as pc
import pytest

from collectors import edfi_events, registry
from collectors.base import CollectorError

DATA = Path(__file__).parent / "data" / "edfi_events"
EVENTS = DATA / "events-thread-column-quoted-json-errors.csv"


def _generator():
    spec = importlib.util.spec_from_file_location("make_edfi_export", DATA / "make_edfi_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_committed_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    events, _ = _generator().make(tmp_path, seed=7, events=600, threads=4)
    assert events.read_bytes() == EVENTS.read_bytes()


def test_rows_against_raw_text() -> None:
    assert registry.detect(EVENTS) is edfi_events
    table = edfi_events.read(EVENTS, tz="America/Chicago")["requests"]
    raw = _raw(EVENTS)
    assert table.num_rows == len(raw) == 600
    row, source = table.slice(2, 1).to_pylist()[0], raw[2]
    assert row["label"] == "Update Grade" and row["success"] is False and row["status"] == "409"
    assert row["error"].startswith('{"message": "The value supplied')
    assert row["thread"] == source["ThreadId"]
    local = datetime.strptime(source["StartDateTime"][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=ZoneInfo("America/Chicago"))
    assert row["ts"].timestamp() * 1000 == pytest.approx(np.floor(local.timestamp() * 1000), abs=0.5)
    # Elapsed from the raw text, per row, to the microsecond.
    def micros(text: str) -> int:
        moment = datetime.strptime(text[:26], "%Y-%m-%d %H:%M:%S.%f")
        return int(moment.timestamp()) * 1_000_000 + moment.microsecond
    expected = np.array([(micros(r["EndDateTime"]) - micros(r["StartDateTime"])) / 1000 for r in raw])
    assert np.allclose(table["elapsed_ms"].to_numpy(), expected, atol=1e-9)
    failed = sum(r["EventDisposition"] == "2" for r in raw)
    assert pc.sum(pc.invert(table["success"])).as_py() == failed > 0
    labels = {f"{op} {r['SdkModelType']}" for r in raw for op in [("Create", "Read", "Update", "Delete")[int(r["EventType"])]]}
    assert set(table["label"].to_pylist()) == labels
    assert len(set(table["thread"].to_pylist())) == 4


def test_no_thread_column() -> None:
    table = edfi_events.read(DATA / "events-no-thread-column.csv")["requests"]
    assert table.num_rows == 200 and table["thread"].null_count == 200


def test_run_tags_from_sibling_runinfoes(tmp_path: Path) -> None:
    events, runs = _generator().make(tmp_path, seed=7, events=600, threads=4)
    assert edfi_events.detect(runs)
    table = edfi_events.read(events)["requests"]
    tags = json.loads(table.schema.metadata[b"run_tags"])
    assert tags["threads"] == 4 and tags["crud_ratio"] == "20/60/15/5" and tags["edfi_run_id"] == 3
    assert (tags["CreateRatio"], tags["ReadRatio"], tags["UpdateRatio"], tags["DeleteRatio"]) == (20, 60, 15, 5)
    # The CRUD mix of the events is close to the configured ratios.
    reads = pc.sum(pc.cast(pc.starts_with(table["label"], "Read "), "int64")).as_py()
    assert abs(reads / table.num_rows - 0.60) < 0.06
    alone = edfi_events.read(runs)["requests"]
    assert alone.num_rows == 0 and json.loads(alone.schema.metadata[b"run_tags"])["edfi_run_id"] == 3


def test_bad_date_names_the_line() -> None:
    with pytest.raises(CollectorError) as info:
        edfi_events.read(DATA / "bad" / "bad-date-line-6.csv")
    assert info.value.line == 6 and "not-a-date" in info.value.reason


def test_wrong_format_and_zone(tmp_path: Path) -> None:
    other = tmp_path / "x.csv"
    other.write_text("Id,Name\n1,a\n")
    assert not edfi_events.detect(other)
    with pytest.raises(CollectorError):
        edfi_events.read(other)
    with pytest.raises(CollectorError):
        edfi_events.read(EVENTS, tz="Mars/Olympus")
