"""JMeter collectors (CSV JTL, XML JTL, Summary/Aggregate Report) against real files and an independent reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from capacity.schema import conform
from collectors import jmeter_jtl, jmeter_summary, jmeter_xml, jtl_layout
from collectors.base import CollectorError

DATA = Path(__file__).parent / "data"
JTL = DATA / "jmeter_jtl"
XML = DATA / "jmeter_xml"
SUMMARY = DATA / "jmeter_summary"
V213 = jtl_layout.COLUMNS_BY_VERSION["2.13"]


def jtl(file: str, **options) -> pd.DataFrame:
    table = jmeter_jtl.read(JTL / file, **options)["requests"]
    conform(table, "requests")
    return table.to_pandas()


def raw_csv(file: str, **options) -> pd.DataFrame:
    """The independent reader: pandas on the raw file."""
    return pd.read_csv(JTL / file, keep_default_na=False, **options)


def summariser(file: str) -> dict[str, int]:
    """The last `summary =` line JMeter printed for `file` (quoted in the folder's README)."""
    for line in (JTL / "README.md").read_text().splitlines():
        if line.strip().startswith(f"{file}: summary ="):
            m = re.search(r"summary =\s+(\d+) in .* Avg:\s+(\d+) Min:\s+(\d+) Max:\s+(\d+) Err:\s+(\d+)", line)
            assert m, line
            return dict(zip(("count", "avg", "min", "max", "errors"), map(int, m.groups()), strict=True))
    raise AssertionError(f"no summariser line for {file}")


# --- CSV JTL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "rows"),
    [
        ("header-2.13-default.jtl", 1806),
        ("no-header-semicolon-tsformat.jtl", 760),
        ("step-load-idle-connect.jtl", 16691),
        ("two-generators-gen1.jtl", 671),
        ("two-generators-gen2.jtl", 668),
    ],
)
def test_row_counts_and_summariser_totals(file, rows):
    df = jtl(file)
    assert len(df) == rows
    # JMeter 2.13's summariser counts every row written, Transaction Controller rows included.
    total = summariser(file)
    assert total["count"] == len(df)
    assert total["avg"] == round(df["elapsed_ms"].mean())
    assert total["min"] == df["elapsed_ms"].min() and total["max"] == df["elapsed_ms"].max()
    assert total["errors"] == int((~df["success"]).sum())


def test_percentiles_per_label_match_pandas_on_raw_csv():
    df = jtl("step-load-idle-connect.jtl")
    raw = raw_csv("step-load-idle-connect.jtl")
    assert sorted(df["label"].unique()) == sorted(raw["label"].unique())
    for label, group in raw.groupby("label"):
        mine = df.loc[df["label"] == label, "elapsed_ms"].to_numpy()
        for q in (50, 90, 95, 99):
            assert np.percentile(mine, q) == np.percentile(group["elapsed"].to_numpy(), q), (label, q)
    # idle time and connect time carried over untouched
    assert df["idle_ms"].sum() == raw["IdleTime"].sum() and (df["connect_ms"] > 0).sum() == (raw["Connect"] > 0).sum() == 34


def test_transaction_rows_are_marked():
    df = jtl("header-2.13-default.jtl")
    raw = raw_csv("header-2.13-default.jtl")
    is_tx = raw["responseMessage"].str.startswith("Number of samples in transaction")
    assert (df["row_kind"] == "transaction").sum() == is_tx.sum() == 164
    assert set(df.loc[df["row_kind"] == "transaction", "label"]) == {"TX Open course"}
    assert set(df["row_kind"]) == {"sample", "transaction"}


def test_epoch_ms_start_time_and_columns():
    df = jtl("header-2.13-default.jtl")
    first = df.iloc[0]
    # raw line 2: 1795303385110,46,01 Home,200,OK,MOOC learners 1-1,text,true,8380,1,1,45
    assert first["ts"] == pd.Timestamp(1795303385110, unit="ms", tz="UTC")
    assert (first["elapsed_ms"], first["label"], first["status"], first["bytes"], first["active_users"], first["latency_ms"]) == (46, "01 Home", "200", 8380, 1, 45)
    assert first["generator"] == "header-2.13-default" and first["source"] == "jmeter_jtl"


def test_headerless_semicolon_formatted_timestamps_in_given_zone():
    raw = pd.read_csv(JTL / "no-header-semicolon-tsformat.jtl", sep=";", header=None, names=V213, keep_default_na=False)
    utc = jtl("no-header-semicolon-tsformat.jtl")
    paris = jtl("no-header-semicolon-tsformat.jtl", tz="Europe/Paris")
    expected = pd.to_datetime(raw["timeStamp"], format="%Y/%m/%d %H:%M:%S.%f").dt.tz_localize("UTC")
    assert (utc["ts"] == expected).all()
    assert utc["ts"].iloc[0] == pd.Timestamp("2026-11-21 23:24:47.623", tz="UTC")
    # November in Paris is UTC+1: the same wall clock is one hour earlier in UTC.
    assert ((utc["ts"] - paris["ts"]) == pd.Timedelta(hours=1)).all()
    assert (utc["elapsed_ms"].to_numpy() == raw["elapsed"].to_numpy()).all()
    assert (utc["row_kind"] == "transaction").sum() == raw["responseMessage"].str.startswith("Number of samples").sum()


def test_explicit_timestamp_format_option(tmp_path):
    src = (JTL / "no-header-semicolon-tsformat.jtl").read_text().splitlines()[:20]
    # the same rows with a day-first pattern no loader guesses
    lines = [re.sub(r"^(\d{4})/(\d\d)/(\d\d) ", r"\3.\2.\1 ", ln) for ln in src]
    path = tmp_path / "dayfirst.jtl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CollectorError):
        jmeter_jtl.read(path)
    df = jmeter_jtl.read(path, timestamp_format="dd.MM.yyyy HH:mm:ss.SSS")["requests"].to_pandas()
    assert df["ts"].iloc[0] == pd.Timestamp("2026-11-21 23:24:47.623", tz="UTC")


def test_headerless_needs_known_layout(tmp_path):
    lines = (JTL / "step-load-idle-connect.jtl").read_text().splitlines()[1:30]
    path = tmp_path / "no-header-14.jtl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CollectorError, match="14 fields"):
        jmeter_jtl.read(path)
    cols = ",".join(V213 + ["IdleTime", "Connect"])
    df = jmeter_jtl.read(path, columns=cols)["requests"].to_pandas()
    assert len(df) == 29 and df["connect_ms"].iloc[0] == 35


def test_quoted_delimiters_quotes_and_newlines_in_message():
    df = jtl("quoted-newline-in-message.jtl")
    raw = raw_csv("quoted-newline-in-message.jtl")
    assert len(df) == len(raw) == 200
    expected = 'Not Found, said the "backend"\nsecond line; of|the\tmessage'
    assert raw["responseMessage"].iloc[34] == expected
    assert df["message"].iloc[34] == expected and df["thread"].iloc[34] == "MOOC learners 1-2" and df["bytes"].iloc[34] == 308


def test_sample_variables_kept_as_var_columns():
    df = jtl("sample-variables.jtl")
    raw = raw_csv("sample-variables.jtl")
    assert list(df["var_courseId"]) == list(raw["courseId"])
    assert list(df["var_learner"]) == list(raw["learner"])
    assert df["var_learner"].iloc[0] == "learner" + raw["threadName"].iloc[0].rsplit("-", 1)[1]


@pytest.mark.parametrize(("file", "sep", "header"), [("header-tab-delimited.jtl", "\t", 0), ("no-header-pipe.jtl", "|", None)])
def test_other_delimiters(file, sep, header):
    df = jtl(file)
    raw = pd.read_csv(JTL / file, sep=sep, header=header, names=None if header == 0 else V213, keep_default_na=False)
    assert len(df) == len(raw) == 120
    assert (df["elapsed_ms"].to_numpy() == raw["elapsed"].to_numpy()).all()
    assert list(df["message"].fillna("")) == list(raw["responseMessage"])


def test_two_generators_stay_distinguishable_and_active_users_add_up():
    gen1, gen2 = jtl("two-generators-gen1.jtl"), jtl("two-generators-gen2.jtl")
    both = pd.concat([gen1, gen2])
    assert set(both["generator"]) == {"two-generators-gen1", "two-generators-gen2"}
    # identical thread names in both files: only `generator` tells them apart
    assert set(gen1["thread"]) & set(gen2["thread"])
    second = both.assign(sec=both["ts"].dt.floor("s"))
    per_gen = second.groupby(["sec", "generator"])["active_users"].max().unstack()
    overlap = per_gen.dropna()
    assert len(overlap) > 30 and (overlap.sum(axis=1) > overlap.max(axis=1)).all()
    assert per_gen.max().max() == 10 and overlap.sum(axis=1).max() == 20


def test_distributed_engine_prefix_is_the_generator():
    df = jtl("distributed-engine-prefix.jtl")
    assert df["generator"].value_counts().to_dict() == {"192.168.56.11:1099": 100, "192.168.56.12:1099": 100}
    # a thread group name with a dash is not an engine prefix
    table = pa.table({"threadName": ["Users-A 1-1", "gen1.example.org-Users 1-2", "10.0.0.7-TG 2-3", "[::1]:1099-TG 1-1"]})
    engine = pc.struct_field(pc.extract_regex(table["threadName"], jmeter_jtl.ENGINE_PREFIX), "engine")
    assert engine.to_pylist() == [None, "gen1.example.org", "10.0.0.7", "[::1]:1099"]


def test_host_option_names_generator_when_file_does_not():
    assert set(jtl("two-generators-gen1.jtl", host="loadgen-7")["generator"]) == {"loadgen-7"}


def test_subresults_from_jmeter5_csv():
    df = jtl("subresults-5x-from-xml.jtl")
    raw = raw_csv("subresults-5x-from-xml.jtl")
    assert len(df) == len(raw) == 866
    kinds = df["row_kind"].value_counts().to_dict()
    # 248 embedded resources labelled `01 Home-<i>`; TX children keep their names and stay samples
    assert kinds == {"sample": 564, "subresult": 248, "transaction": 54}
    subs = df[df["row_kind"] == "subresult"]
    assert subs["label"].str.fullmatch(r"01 Home-\d").all()
    assert set(df["generator"]) == {"vm"}
    assert df["error"].notna().sum() == (raw["failureMessage"] != "").sum() == 15
    # no request counted twice: samples + transactions are the XML's 510 top-level samples
    assert kinds["sample"] - 108 + kinds["transaction"] == 510


def test_subresult_detection_across_batches(monkeypatch):
    whole = jtl("subresults-5x-from-xml.jtl")
    monkeypatch.setattr(jmeter_jtl, "BLOCK_SIZE", 4096)
    parts = list(jmeter_jtl.read_batches(JTL / "subresults-5x-from-xml.jtl"))
    assert len(parts) > 10
    df = pa.concat_tables([t for kind, t in parts if kind == "requests"]).to_pandas()
    assert list(df["row_kind"]) == list(whole["row_kind"])


def test_truncated_last_line_is_warned_and_skipped():
    notes: list[str] = []
    df = jtl("truncated-last-line.jtl", warn=notes.append)
    full = raw_csv("two-generators-gen1.jtl")
    assert len(df) == len(full) - 1 == 670
    assert len(notes) == 1 and "truncated last line" in notes[0] and ":672:" in notes[0]


@pytest.mark.parametrize(
    ("file", "line", "words"),
    [
        ("short-row-in-middle.jtl", 50, "6 field"),
        ("elapsed-not-a-number.jtl", 40, "53x"),
        ("latin1-encoded.jtl", 30, "UTF-8"),
        ("unterminated-quote-mid-file.jtl", 61, "malformed row"),
        ("impossible-date.jtl", 30, "2026/13/41"),
    ],
)
def test_broken_csv_names_file_and_line(file, line, words):
    with pytest.raises(CollectorError) as err:
        jmeter_jtl.read(JTL / "bad" / file, warn=lambda _: None)
    assert err.value.line == line and words in str(err.value) and file in err.value.path


def test_unknown_zone_is_an_input_error():
    with pytest.raises(CollectorError, match="time zone"):
        jmeter_jtl.read(JTL / "header-2.13-default.jtl", tz="Mars/Olympus")


# --- XML JTL ---------------------------------------------------------------------------------


def xml_rows(text: str) -> list[tuple[bool, bool, dict[str, str]]]:
    """Independent reader, by regex on the raw text: (top-level?, child of a transaction?, attributes) in document order."""
    rows, parent_is_tx = [], False
    for line in text.splitlines():
        m = re.match(r"^( *)<(httpSample|sample) (.*?)/?>$", line)
        if m:
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3)))
            top = not m.group(1)
            if top:
                parent_is_tx = attrs.get("rm", "").startswith("Number of samples in transaction")
            rows.append((top, not top and parent_is_tx, attrs))
    return rows


def test_xml_counts_kinds_and_values():
    table = jmeter_xml.read(XML / "xml-subresults-assertions.jtl")["requests"]
    conform(table, "requests")
    df = table.to_pandas()
    rows = xml_rows((XML / "xml-subresults-assertions.jtl").read_text())
    top = [a for is_top, _, a in rows if is_top]
    tx_children = [a for _, child_of_tx, a in rows if child_of_tx]
    assert (len(top), len(rows) - len(top), len(tx_children)) == (510, 356, 108)
    # children of a Transaction Controller parent are the requests it is made of: samples, not sub-results
    assert df["row_kind"].value_counts().to_dict() == {"sample": 456 + 108, "subresult": 356 - 108, "transaction": 54}
    main = df[df["row_kind"] != "subresult"]
    expected = [(is_top, a) for is_top, child_of_tx, a in rows if is_top or child_of_tx]
    assert list(main["elapsed_ms"]) == [float(a["t"]) for _, a in expected]
    epoch_ms = (main["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    assert list(epoch_ms) == [int(a["ts"]) for _, a in expected]
    assert main["ts"].iloc[0] == pd.Timestamp(int(top[0]["ts"]), unit="ms", tz="UTC")
    top_level = main[[is_top for is_top, _ in expected]]
    # summariser (top-level results): summary =    510 in  61.2s =    8.3/s Avg:    33 Min:     0 Max:   311 Err:    68
    assert (len(top_level), round(top_level["elapsed_ms"].mean()), top_level["elapsed_ms"].min(), top_level["elapsed_ms"].max(),
            int((~top_level["success"]).sum())) == (510, 33, 0, 311, 68)
    assert set(df["generator"]) == {"vm"}
    assert df["url"].iloc[0] == "http://127.0.0.1:18082/"


def test_xml_assertion_failures_into_error():
    df = jmeter_xml.read(XML / "xml-subresults-assertions.jtl")["requests"].to_pandas()
    failed = df[df["error"].notna()]
    assert len(failed) == 15
    quiz = failed[failed["label"] == "07 Quiz submit"]
    assert len(quiz) == 8 and (quiz["error"] == 'Test failed: text expected to contain /"result": "correct"/').all()
    # success stays as JMeter wrote it; status and message are untouched
    assert not quiz["success"].any() and (quiz["status"] == "200").all() and (quiz["message"] == "OK").all()
    slow = failed[failed["label"] == "06 Recommendations"]
    assert (slow["row_kind"] == "sample").all() and slow["error"].str.startswith("The operation lasted too long").all()


def test_xml_sample_variables_and_batches(tmp_path, monkeypatch):
    text = (XML / "xml-subresults-assertions.jtl").read_text().replace(' hn="vm">', ' hn="vm" courseId="c1">')
    path = tmp_path / "vars.jtl"
    path.write_text(text)
    monkeypatch.setattr(jmeter_xml, "BATCH_ROWS", 100)
    parts = [t for kind, t in jmeter_xml.read_batches(path) if kind == "requests"]
    assert len(parts) >= 8 and all(t.num_rows >= 100 for t in parts[:-1])
    df = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    assert len(df) == 866 and (df["var_courseId"] == "c1").sum() == text.count('courseId="c1"')


def test_xml_truncated_file_keeps_complete_samples():
    notes: list[str] = []
    df = jmeter_xml.read(XML / "truncated-mid-sample.jtl", warn=notes.append)["requests"].to_pandas()
    raw = (XML / "truncated-mid-sample.jtl").read_text()
    # every sample whose element was closed before the cut is kept, the open one is not
    complete = [r for r in xml_rows(raw[: raw.rfind("\n<httpSample")]) if r[0] or r[1]]
    assert (df["row_kind"] != "subresult").sum() == len(complete)
    assert len(notes) == 1 and "mid-write" in notes[0]


@pytest.mark.parametrize(("file", "line"), [("mismatched-tag-mid-file.jtl", 1031), ("elapsed-not-a-number.jtl", 1547)])
def test_xml_broken_names_line(file, line):
    with pytest.raises(CollectorError) as err:
        jmeter_xml.read(XML / "bad" / file)
    assert err.value.line == line


def test_detect_is_exclusive_between_jmeter_formats():
    for folder, owner in ((JTL, jmeter_jtl), (XML, jmeter_xml), (SUMMARY, jmeter_summary)):
        for f in folder.glob("*.*"):
            if f.suffix == ".md":
                continue
            claims = [c.name for c in (jmeter_jtl, jmeter_xml, jmeter_summary) if c.detect(f)]
            assert claims == [owner.name], f


# --- Summary / Aggregate Report ----------------------------------------------------------------


def stats(file: str) -> pd.DataFrame:
    table = jmeter_summary.read(SUMMARY / file)["request_stats"]
    conform(table, "request_stats")
    return table.to_pandas()


@pytest.mark.parametrize(
    ("file", "count", "mean_s", "rps"),
    [("summary-report-openedx-native.csv", 8174, 24.316, 4.01), ("summary-report-openedx-devstack.csv", 1030, 33.315, 0.28)],
)
def test_openedx_seed_figures(file, count, mean_s, rps):
    df = stats(file)
    total = df[df["row_kind"] == "total"].iloc[0]
    assert total["label"] == "TOTAL" and total["count"] == count
    assert total["mean_ms"] / 1000 == pytest.approx(mean_s) and round(total["throughput_rps"], 2) == rps
    labels = df[df["row_kind"] == "sample"]
    assert labels["count"].sum() == count and (labels["errors"] == 0).all()
    raw = pd.read_csv(SUMMARY / file)
    assert list(df["received_bytes_per_s"]) == pytest.approx(list(raw["Received KB/sec"] * 1024))
    assert list(df["std_ms"]) == pytest.approx(list(raw["Std. Dev."]))


@pytest.mark.parametrize("file", ["summary-report-leading-dot.csv", "summary-report-comma-decimal-locale.csv"])
def test_decimal_format_variants_equal_plain_file(file):
    plain = stats("summary-report-openedx-devstack.csv")
    other = stats(file)
    pd.testing.assert_frame_equal(plain, other)
    assert other["throughput_rps"].iloc[0] == 0.01887


def test_aggregate_report_percentiles_and_error_count():
    df = stats("aggregate-report-from-ramp20.csv")
    jtl_rows = raw_csv("header-2.13-default.jtl")
    total = df[df["row_kind"] == "total"].iloc[0]
    assert total["count"] == len(jtl_rows) and total["errors"] == (jtl_rows["success"] == False).sum() == 277  # noqa: E712
    home = df[df["label"] == "01 Home"].iloc[0]
    assert (home["p50_ms"], home["p90_ms"], home["p95_ms"], home["p99_ms"]) == (1, 2, 2, 4)
    per_label = jtl_rows.groupby("label")["success"].apply(lambda s: int((~s).sum()))
    for _, row in df[df["row_kind"] == "sample"].iterrows():
        assert row["errors"] == per_label[row["label"]], row["label"]


def test_summary_bad_value_names_line():
    with pytest.raises(CollectorError) as err:
        jmeter_summary.read(SUMMARY / "bad" / "summary-value-not-a-number.csv")
    assert err.value.line == 6 and "30x258" in str(err.value)
