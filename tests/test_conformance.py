"""One test over every (collector, sample) pair.

Samples live in `tests/data/<collector name>/`; deliberately broken inputs in a
`bad/` subfolder are for the collector's own tests and are skipped here. Each
collector must claim its own samples and refuse everyone else's, and every
table it returns must match the canonical schema with UTC timestamps.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from capacity.schema import TABLES, conform
from collectors import registry
from tests.conftest import DATA

NOT_SAMPLES = {"README.md"}
# Folders of test data that belong to no single collector.
SHARED_FOLDERS = {"store", "hostile", "fuzz"}


def _samples() -> list[tuple[str, Path]]:
    out = []
    for folder in sorted(p for p in DATA.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and path.name not in NOT_SAMPLES and path.suffix != ".py" and rel.parts[0] != "bad":
                out.append((folder.name, path))
    return out


SAMPLES = _samples()


def test_every_data_folder_belongs_to_a_collector() -> None:
    names = set(registry.names())
    for folder in DATA.iterdir():
        if folder.is_dir() and folder.name not in SHARED_FOLDERS and not folder.name.startswith(("_", ".")):
            assert folder.name in names, f"tests/data/{folder.name} is not named after a registered collector"
            assert (folder / "README.md").is_file(), f"tests/data/{folder.name} has no README.md saying how its files were made"


def test_every_collector_has_samples() -> None:
    owners = {owner for owner, _ in SAMPLES}
    missing = [n for n in registry.names() if n not in owners]
    assert not missing, f"collectors without a sample in tests/data/: {missing}"


def test_collector_names_are_unique() -> None:
    assert len(registry.names()) == len(set(registry.names()))


@pytest.mark.parametrize(("owner", "path"), SAMPLES, ids=[f"{o}/{p.name}" for o, p in SAMPLES])
def test_only_the_owner_detects_its_sample(owner: str, path: Path) -> None:
    if owner in SHARED_FOLDERS:
        pytest.skip("shared test data")
    claimed = [c.name for c in registry.candidates(path)]
    assert claimed == [owner]


@pytest.mark.parametrize(("owner", "path"), SAMPLES, ids=[f"{o}/{p.name}" for o, p in SAMPLES])
def test_read_returns_conforming_tables(owner: str, path: Path) -> None:
    if owner in SHARED_FOLDERS:
        pytest.skip("shared test data")
    collector = registry.get(owner)
    notices: list[str] = []
    tables = collector.read(path, tz="UTC", host="testhost", warn=notices.append)
    assert tables, "read returned no table"
    assert sum(t.num_rows for t in tables.values()) > 0, "read returned only empty tables"
    for kind, table in tables.items():
        assert kind in TABLES, kind
        conformed = conform(table, kind)
        assert conformed.num_rows == table.num_rows
        assert set(conformed.column("source").to_pylist()) == {owner}
        for field in conformed.schema:
            if pa.types.is_timestamp(field.type):
                assert field.type.tz == "UTC"
