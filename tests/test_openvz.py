"""openvz_beancounters and vzlist into `limits` (and vzlist's load average into `host_metrics`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from collectors import openvz_beancounters, vzlist
from collectors.base import CollectorError

DATA = Path(__file__).resolve().parent / "data"
BEANS = DATA / "openvz_beancounters" / "moodle-ct10035-tcpsndbuf-failcnt.txt"
VZLIST = DATA / "vzlist" / "moodle-laverage-kmemsize-l-commented-command.txt"


def raw_row(text: str, resource: str) -> list[int]:
    m = re.search(rf"^\s*(?:\d+:)?\s*{resource}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.M)
    assert m, resource
    return [int(g) for g in m.groups()]


def by_resource(table) -> dict[str, dict]:
    return {r["resource"]: r for r in table.to_pylist()}


def test_beancounters_values_units_and_failcnt():
    assert BEANS.is_file()
    text = BEANS.read_text()
    table = openvz_beancounters.read(BEANS, host="mooc")["limits"]
    rows = by_resource(table)
    assert "dummy" not in rows
    assert table.num_rows == 20  # 24 rows minus 4 dummy placeholders
    held, maxheld, barrier, limit, failcnt = raw_row(text, "tcpsndbuf")
    tcp = rows["tcpsndbuf"]
    assert (tcp["held"], tcp["maxheld"], tcp["barrier"], tcp["limit"]) == (held, maxheld, barrier, limit)
    assert tcp["failcnt"] == failcnt == 417584502 and tcp["unit"] == "bytes"
    held, maxheld, barrier, limit, failcnt = raw_row(text, "privvmpages")
    priv = rows["privvmpages"]
    assert priv["unit"] == "pages"
    assert (priv["held"], priv["maxheld"], priv["barrier"], priv["limit"]) == (held * 4096, maxheld * 4096, barrier * 4096, limit * 4096)
    assert rows["numproc"]["unit"] == "items" and rows["numproc"]["held"] == 133
    # 9223372036854775807 means unlimited
    assert rows["kmemsize"]["barrier"] is None and rows["kmemsize"]["limit"] is None
    assert rows["physpages"]["barrier"] == 0 and rows["physpages"]["limit"] is None
    assert set(table["container"].to_pylist()) == {"10035"}
    assert set(table["host"].to_pylist()) == {"mooc"}
    assert table["ts"].null_count == table.num_rows  # no time in the file, none invented
    hit = table.filter(pc.greater(table["failcnt"], 0))
    assert hit["resource"].to_pylist() == ["tcpsndbuf"]


def test_beancounters_series_of_several_containers(tmp_path):
    header = "Version: 2.5\n       uid  resource           held    maxheld    barrier      limit    failcnt\n"

    def snapshot(numproc: int, fail: int) -> str:
        return (header
                + "       101: kmemsize         836919    1005343    2752512    2936012          0\n"
                + f"            numproc              {numproc}         26         65         65          {fail}\n"
                + "            physpages          2267       2399          0 2147483647          0\n"
                + "       0:  kmemsize         100    200    2147483647    2147483647          0\n"
                + f"            numproc              {numproc + 50}         80         2147483647         2147483647          0\n")

    path = tmp_path / "ubc-series.txt"
    path.write_text(f"# ts=1795303430\n{snapshot(20, 0)}# ts=1795303440\n{snapshot(30, 3)}")
    assert openvz_beancounters.detect(path)
    table = openvz_beancounters.read(path, page_size=4096)["limits"]
    assert table.num_rows == 10
    assert sorted(set(table["container"].to_pylist())) == ["0", "101"]
    rows = table.filter(pc.and_(pc.equal(table["container"], "101"), pc.equal(table["resource"], "numproc"))).to_pylist()
    assert [r["held"] for r in rows] == [20, 30]
    assert [r["failcnt"] for r in rows] == [0, 3]
    assert [r["ts"] for r in rows] == [datetime.fromtimestamp(1795303430, UTC), datetime.fromtimestamp(1795303440, UTC)]
    phys = table.filter(pc.equal(table["resource"], "physpages")).to_pylist()[0]
    assert phys["held"] == 2267 * 4096 and phys["limit"] is None  # 2147483647 = unlimited (32-bit)


def test_beancounters_no_space_after_colon(tmp_path):
    path = tmp_path / "ubc.txt"
    path.write_text("Version: 2.5\n       uid  resource           held    maxheld    barrier      limit    failcnt\n"
                    "       331:kmemsize         836919    1005343    2752512    2936012          7\n")
    row = openvz_beancounters.read(path)["limits"].to_pylist()[0]
    assert row["container"] == "331" and row["failcnt"] == 7


def test_beancounters_bad_input(tmp_path):
    with pytest.raises(CollectorError) as info:
        openvz_beancounters.read(DATA / "openvz_beancounters" / "bad" / "held-not-a-number.txt")
    assert info.value.line == 8
    orphan = tmp_path / "orphan.txt"
    orphan.write_text("Version: 2.5\n       uid  resource  held maxheld barrier limit failcnt\n   kmemsize 1 2 3 4 0\n")
    with pytest.raises(CollectorError, match="container"):
        openvz_beancounters.read(orphan)
    assert not openvz_beancounters.detect(VZLIST)


def test_vzlist_limits_and_load_average():
    assert VZLIST.is_file()
    lines = [ln.split() for ln in VZLIST.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    header, data = lines[0], lines[1:]
    warnings: list[str] = []
    result = vzlist.read(VZLIST, warn=warnings.append)
    limits = result["limits"]
    for cells in data:
        raw = dict(zip(header, cells, strict=True))
        rows = by_resource(limits.filter(pc.equal(limits["container"], raw["CTID"])))
        assert rows["privvmpages"]["held"] == int(raw["PRIVVMP"]) * 4096 and rows["privvmpages"]["unit"] == "pages"
        assert rows["tcpsndbuf"]["held"] == int(raw["TCPSNDB"])
        assert rows["numproc"]["held"] == int(raw["NPROC"])
        assert rows["kmemsize"]["held"] == int(raw["KMEMSIZE"])
        assert rows["kmemsize"]["limit"] is None  # KMEMSIZE.L 9223372036854775807 = unlimited
        assert {r["host"] for r in rows.values()} == {raw["HOSTNAME"]}
        assert all(r["source"] == "vzlist" for r in rows.values())
    metrics = result["host_metrics"]
    mooc = metrics.filter(pc.equal(metrics["host"], "mooc.telecom-sudparis.eu"))
    values = {r["metric"]: r["value"] for r in mooc.to_pylist()}
    assert values == {"load.1m": 0.15, "load.5m": 0.21, "load.15m": 0.18}
    assert json.loads(mooc["labels"][0].as_py()) == {"container": "100035"}
    assert any("modification time" in w for w in warnings)
    timed = vzlist.read(VZLIST, ts=1795303430)["host_metrics"]
    assert set(timed["ts"].to_pylist()) == {datetime.fromtimestamp(1795303430, UTC)}


def test_vzlist_stopped_container_and_suffixes(tmp_path):
    path = tmp_path / "vzlist.txt"
    path.write_text("      CTID      NPROC STATUS  TCPSNDB.F  PHYSP.L\n"
                    "       101         12 running        5  262144\n"
                    "       102          - stopped        -  262144\n")
    assert vzlist.detect(path)
    rows = vzlist.read(path)["limits"].to_pylist()
    r101 = {r["resource"]: r for r in rows if r["container"] == "101"}
    assert r101["tcpsndbuf"]["failcnt"] == 5 and r101["physpages"]["limit"] == 262144 * 4096
    r102 = {r["resource"]: r for r in rows if r["container"] == "102"}
    assert r102["numproc"]["held"] is None


def test_vzlist_bad_row():
    with pytest.raises(CollectorError) as info:
        vzlist.read(DATA / "vzlist" / "bad" / "row-with-missing-field.txt")
    assert info.value.line == 4
    assert not vzlist.detect(BEANS)


def test_numbers_beyond_64_bits_are_collector_errors(tmp_path):
    beans = tmp_path / "ubc.txt"
    beans.write_text(BEANS.read_text().replace("1179549397", "99999999999999999999999"))
    with pytest.raises(CollectorError, match="64-bit") as info:
        openvz_beancounters.read(beans)
    assert info.value.line == 3
    pages = tmp_path / "pages.txt"  # fits as pages, not once converted to bytes
    pages.write_text(BEANS.read_text().replace("420415", "4000000000000000000"))
    with pytest.raises(CollectorError, match="64-bit"):
        openvz_beancounters.read(pages)
    listing = tmp_path / "vzlist.txt"
    listing.write_text(VZLIST.read_text().replace("215695", "92233720368547758079"))
    with pytest.raises(CollectorError, match="64-bit"):
        vzlist.read(listing, ts=0)
