"""access_log (into `requests`) and awstats_data (into `web_traffic`), checked against the raw text."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from collectors import access_log, awstats_data
from collectors.base import CollectorError
from tests.servers import apache_server  # noqa: F401 - pytest fixture

DATA = Path(__file__).resolve().parent / "data"


def sample(folder: str, name: str) -> Path:
    path = DATA / folder / name
    assert path.is_file(), f"missing sample {path}"
    return path


# --- access_log -------------------------------------------------------------------------------


def test_combined_edge_cases_against_raw_lines():
    path = sample("access_log", "combined-debian-edge-cases-excerpt.log")
    lines = path.read_text().splitlines()
    warnings: list[str] = []
    table = access_log.read(path, warn=warnings.append)["requests"]
    assert table.num_rows == len(lines)
    assert any("elapsed_ms is NaN" in w for w in warnings)
    assert all(math.isnan(v) for v in table["elapsed_ms"].to_pylist())
    raw_status = Counter(re.search(r'" (\d{3}) ', ln).group(1) for ln in lines)
    assert Counter(table["status"].to_pylist()) == raw_status
    rows = table.to_pylist()
    garbage = [r for r in rows if r["url"] == "GARBAGE"]
    assert len(garbage) == 1 and garbage[0]["label"] == "(invalid request line)"
    assert garbage[0]["status"] == "400" and garbage[0]["success"] is False and garbage[0]["bytes"] == 448
    quoted = [r for r in rows if r["var_user_agent"] and '\\"quoted\\"' in r["var_user_agent"]]
    assert quoted, "the escaped-quote User-Agent must stay inside its field"
    search = next(r for r in rows if r["url"].startswith("/search.php?q="))
    assert search["label"] == "GET /search.php" and search["status"] == "404" and search["success"] is False
    first = rows[0]
    assert first["ts"] == datetime(2026, 11, 21, 23, 23, 47, tzinfo=UTC)
    assert first["label"] == "GET /server-status" and first["bytes"] == 948 and first["generator"] == "127.0.0.1"
    assert {"OPTIONS /", "POST /index.html"} <= set(table["label"].to_pylist())


def test_combined_d_durations_from_microseconds():
    path = sample("access_log", "combined_D-apache-2.4.71-with-duration.log")
    lines = path.read_text().splitlines()
    table = access_log.read(path, log_format="combined_D")["requests"]
    assert table.num_rows == len(lines)
    micro = [int(ln.rsplit(" ", 1)[1]) for ln in lines]
    assert table["elapsed_ms"].to_pylist() == pytest.approx([m / 1000 for m in micro])
    assert "GET /nothing.html" in table["label"].to_pylist()
    # without the option the trailing number is taken as %D, with a warning
    warnings: list[str] = []
    auto = access_log.read(path, warn=warnings.append)["requests"]
    assert auto["elapsed_ms"].to_pylist() == table["elapsed_ms"].to_pylist()
    assert any("%D" in w for w in warnings)


def test_custom_logformat_string_with_T_and_grouping(tmp_path):
    path = tmp_path / "vhost.log"
    path.write_text(
        'moodle.example:443 10.0.0.5 - - [21/Nov/2026:23:24:25 +0100] "GET /course/view.php?id=7 HTTP/1.1" 200 5120 "-" "JMeter" 2\n'
        'moodle.example:443 10.0.0.6 - bob [21/Nov/2026:23:24:26 +0100] "POST /login/index.php HTTP/1.1" 303 - "-" "JMeter" 0\n'
    )
    fmt = '%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %T'
    table = access_log.read(path, log_format=fmt, label_patterns=[(r"^(\S+) /course/.*", r"\1 /course/*")])["requests"]
    rows = table.to_pylist()
    assert rows[0]["label"] == "GET /course/*"
    assert rows[0]["elapsed_ms"] == 2000.0
    assert rows[0]["ts"] == datetime(2026, 11, 21, 22, 24, 25, tzinfo=UTC)
    assert rows[1]["bytes"] == 0 and rows[1]["status"] == "303" and rows[1]["success"] is True
    assert rows[1]["var_vhost"] == "moodle.example" and rows[1]["var_user"] == "bob"


def test_truncated_last_line_warns(tmp_path):
    lines = sample("access_log", "combined-debian-edge-cases-excerpt.log").read_text().splitlines()
    path = tmp_path / "cut.log"
    path.write_text("\n".join(lines[:10]) + "\n" + lines[10][:40])
    warnings: list[str] = []
    table = access_log.read(path, warn=warnings.append)["requests"]
    assert table.num_rows == 10
    assert any("truncated last line" in w and ":11:" in w for w in warnings)


@pytest.mark.parametrize("name, line", [("bad/syslog-line-mid-file.log", 11), ("bad/latin1-user-agent.log", None)])
def test_access_log_bad_files(name, line):
    with pytest.raises(CollectorError) as info:
        access_log.read(sample("access_log", name))
    assert info.value.line == line


def test_bad_lines_skip_option():
    warnings: list[str] = []
    table = access_log.read(sample("access_log", "bad/syslog-line-mid-file.log"), bad_lines="skip", warn=warnings.append)["requests"]
    assert table.num_rows == 20
    assert any("1 line(s) did not match" in w for w in warnings)


def test_access_log_detect_refuses_other_text(tmp_path):
    other = tmp_path / "x.log"
    other.write_text("Nov 21 23:24:00 vm sshd[123]: Accepted publickey for root\n")
    assert not access_log.detect(other)
    assert not access_log.detect(sample("awstats_data", "awstats112026.site1.txt"))


def test_live_apache_access_log(apache_server):  # noqa: F811 - fixture
    done = apache_server.load(requests=120, threads=4)
    assert done == 120
    table = access_log.read(apache_server.access_log, log_format="combined_D")["requests"]
    index = table.filter(pc.equal(table["label"], "GET /index.html"))
    assert index.num_rows >= 120
    assert pc.min(index["elapsed_ms"]).as_py() >= 0
    assert pc.all(index["success"]).as_py()


# --- awstats_data -------------------------------------------------------------------------------


def awstats_rows(section: str) -> list[dict]:
    table = awstats_data.read(sample("awstats_data", "awstats112026.site1.txt"))["web_traffic"]
    return table.filter(pc.equal(table["section"], section)).to_pylist()


def raw_section(section: str) -> list[list[str]]:
    text = sample("awstats_data", "awstats112026.site1.txt").read_text()
    body = re.search(rf"^BEGIN_{section} .*?\n(.*?)^END_{section}$", text, re.M | re.S).group(1)
    return [ln.split() for ln in body.splitlines() if ln.strip()]


def test_awstats_time_day_and_general():
    time_rows = {r["key"]: r for r in awstats_rows("TIME")}
    assert len(time_rows) == 24
    raw23 = next(r for r in raw_section("TIME") if r[0] == "23")
    assert (time_rows["23"]["pages"], time_rows["23"]["hits"], time_rows["23"]["bandwidth_bytes"]) == tuple(int(v) for v in raw23[1:4])
    not_viewed = {r["key"]: r for r in awstats_rows("TIME_NOTVIEWED")}
    assert not_viewed["23"]["hits"] == int(raw23[5]) == 4113
    assert time_rows["23"]["period"] == "2026-11" and time_rows["23"]["site"] == "site1"
    (day,) = awstats_rows("DAY")
    assert day["period"] == "2026-11-21" and day["period_start"] == datetime(2026, 11, 21, tzinfo=UTC)
    assert (day["pages"], day["hits"], day["bandwidth_bytes"], day["visits"]) == (7780, 10117, 63542633, 9)
    general = {r["key"]: r for r in awstats_rows("GENERAL")}
    assert general["TotalVisits"]["visits"] == 9 and general["TotalUnique"]["visitors"] == 9
    assert general["FirstTime"]["last_ts"] == datetime(2026, 11, 21, 23, 23, 57, tzinfo=UTC)


def test_awstats_sections_match_raw_counts():
    for section in ("VISITOR", "SIDER", "SIDER_404", "ERRORS", "OS", "BROWSER", "ROBOT", "KEYWORDS", "DOWNLOADS"):
        rows = awstats_rows(section)
        raw = raw_section(section)
        assert [r["key"] for r in rows] == [t[0] for t in raw], section
    os_rows = {r["key"]: r for r in awstats_rows("OS")}  # header `BEGIN_OS ID - Hits - Pages 5`
    assert (os_rows["ios_iphone"]["hits"], os_rows["ios_iphone"]["pages"]) == (3019, 3010)
    sider = {r["key"]: r for r in awstats_rows("SIDER")}
    assert (sider["/large.html"]["pages"], sider["/large.html"]["bandwidth_bytes"]) == (530, 22739140)
    assert sider["/"]["entries"] == 7
    errors = {r["key"]: r["hits"] for r in awstats_rows("ERRORS")}
    assert errors == {"404": 2588, "301": 732, "400": 1, "403": 510}
    s404 = {r["key"]: r for r in awstats_rows("SIDER_404")}
    assert s404["/wp-login.php"]["hits"] == 1200 and s404["/search.php"]["value"] == "https://example.org/blog/post-42"
    visitor = {r["key"]: r for r in awstats_rows("VISITOR")}
    assert visitor["127.0.0.1"]["hits"] == 10006
    assert visitor["127.0.0.1"]["last_ts"] == datetime(2026, 11, 21, 23, 25, 50, tzinfo=UTC)
    downloads = awstats_rows("DOWNLOADS")[0]
    assert (downloads["hits"], downloads["bandwidth_bytes"]) == (16, 8392896)


def test_awstats_timezone_option():
    table = awstats_data.read(sample("awstats_data", "awstats112026.site1.txt"), tz="Europe/Paris")["web_traffic"]
    day = table.filter(pc.equal(table["section"], "DAY")).to_pylist()[0]
    assert day["period_start"] == datetime(2026, 11, 20, 23, tzinfo=UTC)


def test_awstats_truncated_and_missing_sections(tmp_path):
    with pytest.raises(CollectorError, match="END_ROBOT") as info:
        awstats_data.read(sample("awstats_data", "bad/truncated-inside-section.txt"))
    assert info.value.line == 143
    lines = sample("awstats_data", "awstats112026.site1.txt").read_text().splitlines()
    cut = tmp_path / "awstats112026.site1.txt"
    cut.write_text("\n".join(lines[:147]) + "\n")  # ends right after END_ROBOT
    with pytest.raises(CollectorError, match="missing"):
        awstats_data.read(cut)


def test_awstats_bad_number(tmp_path):
    text = sample("awstats_data", "awstats112026.site1.txt").read_text().replace("20261121 7780 10117", "20261121 77x0 10117")
    path = tmp_path / "awstats112026.site1.txt"
    path.write_text(text)
    with pytest.raises(CollectorError, match="pages") as info:
        awstats_data.read(path)
    assert text.splitlines()[info.value.line - 1].startswith("20261121 77x0")


def test_bad_time_names_its_line(tmp_path):
    lines = sample("access_log", "combined-debian-edge-cases-excerpt.log").read_text().splitlines()
    lines[6] = lines[6].replace("/Nov/", "/Nvm/")
    path = tmp_path / "badtime.log"
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line shifts numbering
    with pytest.raises(CollectorError, match="%t") as info:
        access_log.read(path)
    assert info.value.line == 8


def test_huge_numbers_are_collector_errors(tmp_path):
    lines = sample("access_log", "combined-debian-edge-cases-excerpt.log").read_text().splitlines()
    lines[2] = lines[2].replace(" 200 1023 ", " 200 99999999999999999999999 ")
    path = tmp_path / "huge.log"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CollectorError, match="does not fit"):
        access_log.read(path)
    text = sample("awstats_data", "awstats112026.site1.txt").read_text().replace("20261121 7780 10117", "20261121 7780 99999999999999999999999")
    aw = tmp_path / "awstats112026.site1.txt"
    aw.write_text(text)
    with pytest.raises(CollectorError, match="64-bit"):
        awstats_data.read(aw)
