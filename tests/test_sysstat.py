"""sysstat collectors: sar text, sadf -d/-p/-j/-x and binary sa files, checked against raw text and each other."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from collectors import registry, sa_binary, sadf_csv, sadf_json, sadf_ppc, sadf_xml, sar_text
from collectors.base import CollectorError

DATA = Path(__file__).parent / "data"
SADC = "/usr/lib/sysstat/sadc"
UTC = dt.UTC


def _values(table: pa.Table) -> dict[tuple, float]:
    out = {}
    for ts, metric, device, value in zip(*(table[c].to_pylist() for c in ("ts", "metric", "device", "value")), strict=True):
        out[(ts, metric, device)] = value
    return out


def _value(table: pa.Table, ts: dt.datetime, metric: str, device: str | None = None) -> float:
    found = [v for k, v in _values(table).items() if k == (ts, metric, device)]
    assert len(found) == 1, (ts, metric, device)
    return found[0]


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "TZ": "UTC", **extra}


def _run(args: list[str], **env: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, env=_env(**env), timeout=60).stdout


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Record a real sa file now (3 samples, a restart, 3 samples) and render it every way."""
    assert Path(SADC).exists() and shutil.which("sadf"), "install the Debian package sysstat (requirements-apt.txt)"
    tmp = tmp_path_factory.mktemp("sysstat")
    sa = tmp / "sa01"
    subprocess.run([SADC, "-S", "XALL", "1", "3", str(sa)], check=True, timeout=30)
    subprocess.run([SADC, str(sa)], check=True, timeout=30)  # no interval: a LINUX RESTART record
    subprocess.run([SADC, "-S", "XALL", "1", "3", str(sa)], check=True, timeout=30)
    out = {"bin": sa}
    renders = {
        "sar": (["sar", "-A", "-f", str(sa)], {"LC_ALL": "C"}),
        "sar_berlin": (["sar", "-A", "-f", str(sa)], {"LC_ALL": "C", "TZ": "Europe/Berlin"}),
        "sar_12h": (["sar", "-A", "-f", str(sa)], {"LANG": "C.UTF-8", "LC_TIME": "en_US.UTF-8"}),
        "d": (["sadf", "-d", str(sa), "--", "-A"], {"LC_ALL": "C"}),
        "j": (["sadf", "-j", str(sa), "--", "-A"], {"LC_ALL": "C"}),
        "p": (["sadf", "-p", str(sa), "--", "-A"], {"LC_ALL": "C"}),
        "x": (["sadf", "-x", str(sa), "--", "-A"], {"LC_ALL": "C"}),
    }
    # `make test` generates de_DE.UTF-8 (Makefile target `locales`): a missing locale is a set-up error, not a skip.
    assert "de_DE.utf8" in _run(["locale", "-a"]).split(), "locale de_DE.UTF-8 missing: run `make locales`"
    renders["sar_de"] = (["sar", "-A", "-f", str(sa)], {"LC_ALL": "de_DE.UTF-8"})
    for key, (args, env) in renders.items():
        out[key] = tmp / f"{key}.out"
        out[key].write_text(_run(args, **env), encoding="utf-8")
    return out


def test_recorded_outputs_are_detected_by_one_collector(recorded: dict[str, Path]) -> None:
    expected = {"bin": "sa_binary", "sar": "sar_text", "sar_12h": "sar_text", "d": "sadf_csv", "j": "sadf_json",
                "p": "sadf_ppc", "x": "sadf_xml", "sar_de": "sar_text", "sar_berlin": "sar_text"}
    for key, path in recorded.items():
        assert [c.name for c in registry.candidates(path)] == [expected[key]], key


def test_every_rendering_of_one_file_agrees_value_for_value(recorded: dict[str, Path]) -> None:
    reference = sadf_json.read(recorded["j"])["host_metrics"]
    ref = _values(reference)
    assert len(ref) > 500
    readings = {
        "sar": sar_text.read(recorded["sar"]), "sar_12h": sar_text.read(recorded["sar_12h"]),
        "sar_berlin": sar_text.read(recorded["sar_berlin"], tz="Europe/Berlin"),
        "d": sadf_csv.read(recorded["d"]), "p": sadf_ppc.read(recorded["p"]), "x": sadf_xml.read(recorded["x"]),
        "bin": sa_binary.read(recorded["bin"]),
    }
    if "sar_de" in recorded:
        readings["sar_de"] = sar_text.read(recorded["sar_de"])
    for key, tables in readings.items():
        got = _values(tables["host_metrics"])
        assert got.keys() == ref.keys(), (key, sorted(set(got) ^ set(ref))[:5])
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-9), (key, k)


def test_recorded_restart_splits_segments_and_host_info(recorded: dict[str, Path]) -> None:
    text = recorded["sar"].read_text()
    assert "LINUX RESTART" in text
    table = sar_text.read(recorded["sar"])["host_metrics"]
    info = json.loads(table.schema.metadata[b"host_info"])
    assert info == {"host": text.split("(")[1].split(")")[0], "cpu_count": int(re.search(r"\((\d+) CPU\)", text)[1])}
    # 3 records + 3 records = 2 intervals per segment; the restart itself carries no values.
    assert len(set(table["ts"].to_pylist())) == 4


def _raw_row(path: Path, time: str, first: str, header_has: str) -> dict[str, str]:
    """The row of `path` at `time` whose first field is `first`, in the section whose header has `header_has`."""
    header: list[str] = []
    for line in path.read_text().splitlines():
        tokens = line.split()
        if tokens and header_has in tokens and not tokens[0].startswith(("Average", "Durchschn")):
            header = tokens
        elif header and tokens and tokens[0] == time and tokens[1] == first:
            return dict(zip(header[1:], tokens[1:], strict=True))
    raise AssertionError(f"{time} {first} not in {path}")


def test_sar_A_values_equal_raw_text() -> None:
    path = DATA / "sar_text/sar-A-12.6-C-locale.txt"
    table = sar_text.read(path)["host_metrics"]
    ts = dt.datetime(2026, 11, 21, 23, 23, 52, tzinfo=UTC)
    cpu = _raw_row(path, "23:23:52", "1", "%usr")
    assert _value(table, ts, "cpu.user_pct", "1") == pytest.approx(float(cpu["%usr"]) + float(cpu["%guest"]))
    assert _value(table, ts, "cpu.busy_pct", "1") == pytest.approx(100 - float(cpu["%idle"]) - float(cpu["%iowait"]))
    assert _value(table, ts, "cpu.system_pct", "1") == pytest.approx(float(cpu["%sys"]) + float(cpu["%irq"]) + float(cpu["%soft"]))
    mem = _raw_row(path, "23:23:52", _raw_first(path, "23:23:52", "kbmemfree"), "kbmemfree")
    assert _value(table, ts, "mem.used_bytes") == int(mem["kbmemused"]) * 1024
    disk = _raw_row(path, "23:23:52", "vda", "rkB/s")
    assert _value(table, ts, "disk.read_bytes_per_s", "vda") == pytest.approx(float(disk["rkB/s"]) * 1024)
    assert _value(table, ts, "disk.util_pct", "vda") == pytest.approx(float(disk["%util"]))
    nets = {i: _raw_row(path, "23:23:52", i, "rxkB/s") for i in ("lo", "eth0", "ifb0", "ifb1")}
    assert _value(table, ts, "net.rx_bytes_per_s", "lo") == pytest.approx(float(nets["lo"]["rxkB/s"]) * 1024)
    not_lo = sum(float(nets[i]["rxkB/s"]) for i in ("eth0", "ifb0", "ifb1")) * 1024
    assert _value(table, ts, "net.rx_bytes_per_s", "all") == pytest.approx(not_lo)
    queue = _raw_row(path, "23:23:52", _raw_first(path, "23:23:52", "ldavg-1"), "ldavg-1")
    assert _value(table, ts, "load.1m") == float(queue["ldavg-1"])
    fs_line = next(ln for ln in path.read_text().splitlines() if ln.startswith("23:23:52") and ln.endswith("/dev/vda"))
    assert _value(table, ts, "fs.free_bytes", "/dev/vda") == int(fs_line.split()[1]) * 1024 * 1024


def _raw_first(path: Path, time: str, header_has: str) -> str:
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if header_has in ln.split())
    return next(ln.split()[1] for ln in lines[start + 1:] if ln.startswith(time))


def test_de_DE_comma_decimals_equal_sadf_d_of_the_same_records() -> None:
    de = sar_text.read(DATA / "sar_text/sar-A-de_DE-comma-decimal.txt")["host_metrics"]
    ref = _values(sadf_csv.read(DATA / "sadf_csv/sadf-d-A-C-locale.csv")["host_metrics"])
    got = _values(de)
    assert got.keys() == ref.keys()
    assert all(got[k] == pytest.approx(v) for k, v in ref.items())
    # raw: "23:23:51        all      3,52 ..." -> 3.52 + guest 0,00
    assert got[(dt.datetime(2026, 11, 21, 23, 23, 51, tzinfo=UTC), "cpu.user_pct", "all")] == 3.52


def test_committed_samples_of_sa21_agree_across_formats() -> None:
    ref = _values(sadf_json.read(DATA / "sadf_json/sadf-j-A.json")["host_metrics"])
    for table in (sar_text.read(DATA / "sar_text/sar-A-12.6-C-locale.txt"), sadf_ppc.read(DATA / "sadf_ppc/sadf-p-A.txt"),
                  sadf_xml.read(DATA / "sadf_xml/sadf-x-A.xml")):
        got = _values(table["host_metrics"])
        assert got.keys() == ref.keys()
        assert all(got[k] == pytest.approx(v) for k, v in ref.items())


def test_fr_FR_day_first_date_and_moyenne() -> None:
    table = sar_text.read(DATA / "sar_text/sar-fr_FR-comma-decimal-moyenne.txt")["host_metrics"]
    assert table["ts"][0].as_py() == dt.datetime(2026, 11, 21, 23, 23, 51, tzinfo=UTC)
    assert table["ts"][-1].as_py() == dt.datetime(2026, 11, 21, 23, 23, 54, tzinfo=UTC)


def test_12h_ampm_times() -> None:
    path = DATA / "sar_text/sar-u-12h-ampm.txt"
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith("11:23:55 PM") and " all " in ln)
    table = sar_text.read(path)["host_metrics"]
    ts = dt.datetime(2026, 11, 21, 23, 23, 55, tzinfo=UTC)
    assert _value(table, ts, "cpu.user_pct", "all") == float(line.split()[3])


def test_midnight_rollover_in_every_section() -> None:
    path = DATA / "sar_text/sar-midnight-rollover-utc+0035.txt"
    table = sar_text.read(path, tz="+00:35")["host_metrics"]
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith("00:00:05") and " all " in ln)
    # 00:00:05 on 2026-11-22 at UTC+00:35 is 23:25:05 UTC on the 21st.
    ts = dt.datetime(2026, 11, 21, 23, 25, 5, tzinfo=UTC)
    assert _value(table, ts, "cpu.user_pct", "all") == float(line.split()[2])
    times = sorted(set(table["ts"].to_pylist()))
    assert times[0] == dt.datetime(2026, 11, 21, 23, 24, 51, tzinfo=UTC) and len(times) == 20
    per_metric = table.group_by("metric").aggregate([("ts", "max")])
    assert set(per_metric["ts_max"].to_pylist()) == {dt.datetime(2026, 11, 21, 23, 25, 10, tzinfo=UTC)}


def test_two_reports_stitched_into_one_file(tmp_path: Path) -> None:
    a = (DATA / "sar_text/sar-u-12h-ampm.txt").read_text()
    b = (DATA / "sar_text/sar-linux-restart-and-comment.txt").read_text()
    both = tmp_path / "two-days.txt"
    both.write_text(a + "\n" + b)
    table = sar_text.read(both)["host_metrics"]
    days = {t.date() for t in table["ts"].to_pylist()}
    assert days == {dt.date(2026, 11, 21), dt.date(2026, 11, 22)}


def test_restart_and_comment_text() -> None:
    table = sar_text.read(DATA / "sar_text/sar-linux-restart-and-comment.txt")["host_metrics"]
    ref = _values(sadf_csv.read(DATA / "sadf_csv/sadf-d-A-restart-comment.csv")["host_metrics"])
    got = _values(table)
    assert got.keys() <= ref.keys() and len(got) > 100
    assert all(got[k] == pytest.approx(ref[k]) for k in got)


def test_pasted_section_without_header_needs_a_date() -> None:
    path = DATA / "sar_text/sar-u-pasted-section-no-header.txt"
    notes: list[str] = []
    table = sar_text.read(path, date="2026-11-21", warn=notes.append)["host_metrics"]
    assert not notes and table["ts"][0].as_py() == dt.datetime(2026, 11, 21, 23, 23, 51, tzinfo=UTC)
    sar_text.read(path, warn=notes.append)
    assert "modification date" in notes[0]


def test_sadf_units_and_host_info() -> None:
    path = DATA / "sadf_csv/sadf-d-A-C-locale.csv"
    table = sadf_csv.read(path)["host_metrics"]
    lines = path.read_text().splitlines()
    header = next(ln for ln in lines if ";kbmemfree;" in ln)
    row = lines[lines.index(header) + 1].split(";")
    cols = header[2:].split(";")
    ts = dt.datetime.fromisoformat(row[2][:19]).replace(tzinfo=UTC)
    assert _value(table, ts, "mem.used_bytes") == int(row[cols.index("kbmemused")]) * 1024
    assert json.loads(table.schema.metadata[b"host_info"]) == {"host": "vm", "cpu_count": 2}


@pytest.mark.parametrize("corpus", ["sa21", "sadf_d_A.csv", "sadf_j_A.json", "sadf_p_subset.txt",
                                    "sadf_x_all_but_interrupts.xml", "sar_A_LC_ALL_C.txt"])
def test_corpus_files_read(corpus: str) -> None:
    # The shared corpus sits beside the repository (CI clones main next to shared/).
    path = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sar" / corpus
    if not path.exists():
        pytest.skip("shared corpus not mounted")
    collector = registry.detect(path)
    table = collector.read(path)["host_metrics"]
    assert table.num_rows > 20000


def test_bad_binary_files() -> None:
    with pytest.raises(CollectorError, match="truncated"):
        sa_binary.read(DATA / "sa_binary/bad/sa-truncated.bin")
    with pytest.raises(CollectorError, match=r"0x2171.*does not match the installed sysstat version"):
        sa_binary.read(DATA / "sa_binary/bad/sa-format-0x2171-foreign-version.bin")


def test_missing_sadf_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CollectorError, match="package `sysstat`"):
        sa_binary.read(DATA / "sa_binary/sa-12.6.1-XALL-restart-comment.bin")


def test_bad_text_inputs(tmp_path: Path) -> None:
    good = (DATA / "sar_text/sar-A-12.6-C-locale.txt").read_text().splitlines()
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("\n".join(good[:5] + ["this is not sar"] + good[5:]))
    with pytest.raises(CollectorError, match="expected a sar line") as err:
        sar_text.read(garbage)
    assert err.value.line == 6
    short = tmp_path / "short.txt"
    short.write_text("\n".join(good[:4] + [good[4].rsplit(None, 1)[0]]))
    with pytest.raises(CollectorError, match="expected 10 values"):
        sar_text.read(short)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes((good[0] + "\n\n" + good[2] + "\nDurchschn.\xe9:  all 1\n").encode("latin-1"))
    with pytest.raises(CollectorError, match="not UTF-8"):
        sar_text.read(latin)
    badcsv = tmp_path / "bad.csv"
    badcsv.write_text((DATA / "sadf_csv/sadf-d-A-C-locale.csv").read_text().replace(";94.47", ";x94.47", 1))
    with pytest.raises(CollectorError, match="expected a number"):
        sadf_csv.read(badcsv)
    badjson = tmp_path / "bad.json"
    badjson.write_text((DATA / "sadf_json/sadf-j-A.json").read_text()[:5000])
    with pytest.raises(CollectorError, match="invalid JSON"):
        sadf_json.read(badjson)
    badxml = tmp_path / "bad.xml"
    badxml.write_text((DATA / "sadf_xml/sadf-x-A.xml").read_text()[:5000])
    with pytest.raises(CollectorError, match="malformed XML"):
        sadf_xml.read(badxml)


def test_detect_refuses_neighbours() -> None:
    assert not sar_text.detect(DATA / "sadf_csv/sadf-d-A-C-locale.csv")
    assert not sadf_csv.detect(DATA / "sar_text/sar-A-12.6-C-locale.txt")
    assert not sa_binary.detect(DATA / "sadf_json/sadf-j-A.json")
    assert os.path.exists(DATA / "sadf_ppc/README.md") and not sadf_ppc.detect(DATA / "sadf_ppc/README.md")
