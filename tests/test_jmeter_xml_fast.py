"""The column-wise XML JTL reader (`collectors.jmeter_xml_fast`) against the plain expat reader.

The fast path must give exactly the plain reader's table (every column, row kinds, nulls,
order) or refuse the file, in which case `jmeter_xml.read_batches` falls back to the
plain reader without writing a row twice. Variants of the real sample cover what JMeter's
writer can vary; small chunks force many chunk cuts and parallel chunks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from benchmarks.generate import jtl_xml
from capacity.schema import conform
from collectors import jmeter_xml, jmeter_xml_fast
from collectors.base import CollectorError

XML = Path(__file__).parent / "data" / "jmeter_xml"
REAL = XML / "xml-subresults-assertions.jtl"


def whole(parts: list[pa.Table]) -> pa.Table:
    return conform(pa.concat_tables(parts, promote_options="permissive"), "requests")


def plain(path: Path, **options: object) -> pa.Table:
    return whole([t for kind, t in jmeter_xml.read_batches(path, engine="plain", **options) if kind == "requests"])


def fast(path: Path) -> pa.Table:
    return whole(list(jmeter_xml_fast.scan(path, path.stem)))


def assert_same(path: Path) -> pa.Table:
    expected, got = plain(path), fast(path)
    assert got.schema == expected.schema
    for name in expected.column_names:
        assert got[name].equals(expected[name]), name
    assert got.num_rows > 0
    return got


@pytest.fixture(params=[(1 << 20, 1), (4096, 2), (1500, 3)], ids=["one-chunk", "chunks-2-threads", "tiny-chunks-3-threads"])
def chunking(request, monkeypatch):
    size, workers = request.param
    monkeypatch.setattr(jmeter_xml_fast, "CHUNK_BYTES", size)
    monkeypatch.setattr(jmeter_xml_fast, "WORKERS", workers)
    return request.param


def variant(tmp_path: Path, name: str, change) -> Path:
    path = tmp_path / name
    path.write_text(change(REAL.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_real_sample_is_read_exactly(chunking):
    table = assert_same(REAL)
    df = table.to_pandas()
    # values against the raw text: the first transaction parent and the child request it is made of
    tx = df[df["row_kind"] == "transaction"].iloc[0]
    assert (tx["label"], tx["elapsed_ms"], tx["bytes"]) == ("TX Open course", 234.0, 154114)
    assert df["row_kind"].value_counts().to_dict() == {"sample": 564, "subresult": 248, "transaction": 54}
    assert (df["error"].notna()).sum() == 15 and df["url"].iloc[0] == "http://127.0.0.1:18082/"


def test_generated_100k_file_is_read_exactly(tmp_path_factory):
    path = jtl_xml(tmp_path_factory.mktemp("xml") / "jtl-100k.xml", 100_000)
    table = assert_same(path)
    assert table.num_rows == len(re.findall(r"<(?:httpSample|sample) ", path.read_text(encoding="utf-8")))


VARIANTS = {
    # sample variables (sample_variables=...) after the standard attributes
    "variables": lambda t: t.replace(' hn="vm">', ' hn="vm" courseId="c1" user="u&amp;1">'),
    # the attribute order of another writer; the reader keys on names
    "reordered": lambda t: re.sub(r'<(httpSample|sample) (t="\d+") (lt="\d+") (ts="\d+")', r'<\1 \4 \3 \2', t),
    # optional attributes in some samples only (idle time, connect time, sent bytes)
    "optional": lambda t: re.sub(r'(<httpSample t="\d+") (lt="1")', r'\1 it="0" \2 ct="3" sby="120"', t),
    # entities in attributes and in assertion messages; `rs` (old files) instead of `rc`
    "entities": lambda t: t.replace('rm="OK"', 'rm="O&lt;K&gt; &quot;x&quot; &amp;amp; &apos;y&apos;"').replace('rc="200" rm="Number', 'rs="200" rm="Number'),
    # self-closing samples (no URL saved), an empty URL, no hostname in some samples
    "empty-elements": lambda t: re.sub(r'(<httpSample [^>]*lb="02 Login page"[^>]*)>\n\s*<java.net.URL>[^<]*</java.net.URL>\n</httpSample>',
                                       r"\1/>", t).replace("<java.net.URL>http://127.0.0.1:18082/courses</java.net.URL>", "<java.net.URL/>")
                                        .replace(' ng="4" na="4" hn="vm"', ' ng="4" na="4"'),
    # fractional, negative, upper-case values
    "numbers": lambda t: t.replace('t="127"', 't="127.5"').replace('lt="57"', 'lt="-1"').replace('s="true" lb="03', 's="TRUE" lb="03'),
    # two failed assertions in one sample: messages joined by a newline
    "two-failures": lambda t: re.sub(r"(<assertionResult>\s*<name>Quiz answered correctly</name>\s*<failure>true</failure>.*?</assertionResult>)",
                                     r"\1\1", t, count=3, flags=re.S),
    # a transaction nested in a transaction, and elements the reader ignores
    "nested-tx": lambda t: t.replace('<httpSample t="2" lt="2" ts="1795304140842"',
                                     '<sample t="5" lt="0" ts="1795304140842" s="true" lb="TX inner" rc="200" '
                                     'rm="Number of samples in transaction : 1, number of failing samples : 0" tn="x" dt="" by="1" ng="4" na="4">'
                                     '\n<responseHeader class="java.lang.String">HTTP/1.1 200 OK\nA: b</responseHeader>\n</sample>\n'
                                     '<httpSample t="2" lt="2" ts="1795304140842"'),
    # as many attributes everywhere, but two of the same length swapped in some samples
    "swapped-same-length": lambda t: re.sub(r'(lb="02 Login page") rc="200" rm="OK"', r'\1 rm="OK" rc="200"', t),
    # a space before `>` of some sample tags, and more than a line of indentation after others
    "tag-ends": lambda t: re.sub(r'(lb="02 Login page"[^>]*>)\n', r"\1" + " " * 40 + "\n", t).replace('na="3" hn="vm">', 'na="3" hn="vm" >'),
    # non-ASCII labels (UTF-8 checked) and elements nested deeper than 255 levels
    "non-ascii-deep": lambda t: t.replace('lb="01 Home"', 'lb="01 Accueil é ✓"').replace(
        "<java.net.URL>http://127.0.0.1:18082/login</java.net.URL>",
        "<x>" * 300 + "</x>" * 300 + "<java.net.URL>http://127.0.0.1:18082/login</java.net.URL>", 1),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_are_read_exactly(tmp_path, chunking, name):
    path = variant(tmp_path, f"{name}.jtl", VARIANTS[name])
    assert path.read_text(encoding="utf-8") != REAL.read_text(encoding="utf-8")
    table = assert_same(path)
    df = table.to_pandas()
    if name == "variables":
        assert (df["var_user"] == "u&1").sum() == path.read_text().count('user="u&amp;1"')
    if name == "two-failures":
        assert df["error"].str.contains("\n").sum() == 3
    if name == "nested-tx":
        assert df.loc[df["label"] == "TX inner", "row_kind"].tolist() == ["transaction"]
    if name == "swapped-same-length":
        assert set(df.loc[df["label"] == "02 Login page", "status"]) == {"200"}
    if name == "non-ascii-deep":
        assert (df["label"] == "01 Accueil é ✓").sum() == path.read_text(encoding="utf-8").count('lb="01 Accueil é ✓"') > 0
    if name == "empty-elements":
        assert df["generator"].eq("empty-elements").any() and df["url"].eq("").any()


REFUSED = {
    "cdata": lambda t: t.replace("<failureMessage>", "<failureMessage><![CDATA[x]]>"),
    "comment": lambda t: t.replace("</testResults>", "<!-- end -->\n</testResults>"),
    "doctype": lambda t: t.replace('<testResults version="1.2">', '<!DOCTYPE testResults>\n<testResults version="1.2">'),
    "char-ref": lambda t: t.replace('rm="OK"', 'rm="O&#75;"', 1),
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "latin1": lambda t: t.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"'),
    "split-tag": lambda t: t.replace(' rc="200" rm="OK"', '\n    rc="200" rm="OK"', 5),
    "tab-in-value": lambda t: t.replace('rm="OK"', 'rm="O\tK"', 1),
    "single-quotes": lambda t: t.replace('dt="text"', "dt='text'", 1),
    "unindented": lambda t: re.sub(r"^ +", "", t, flags=re.M),
    "mismatched": lambda t: t.replace("</java.net.URL>", "</java.net.url>", 1),
    "duplicate-attribute": lambda t: t.replace(' hn="vm">', ' hn="vm" hn="x">', 1),
    "duplicate-attribute-everywhere": lambda t: t.replace(' hn="vm">', ' hn="vm" hn="x">'),
    "text-in-sample": lambda t: t.replace('na="3" hn="vm">', 'na="3" hn="vm">x', 1),
    "unclosed-tag": lambda t: t.replace('na="3" hn="vm">', 'na="3" hn="vm" ', 1),
    "bad-utf8": lambda t: t.replace('lb="01 Home"', 'lb="01 Accueil é"', 1),  # written as Latin-1, declared UTF-8
    "non-character": lambda t: t.replace('rm="OK"', 'rm="O\ufffeK"', 1),
    "truncated": lambda t: t[: len(t) * 2 // 3],
    "no-number": lambda t: t.replace('by="45665"', 'by="4x"', 1),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unusual_files_go_to_the_plain_reader(tmp_path, monkeypatch, name):
    monkeypatch.setattr(jmeter_xml_fast, "CHUNK_BYTES", 4096)
    path = tmp_path / f"{name}.jtl"
    path.write_bytes(REFUSED[name](REAL.read_text(encoding="utf-8")).encode("latin-1" if name in ("latin1", "bad-utf8") else "utf-8"))
    with pytest.raises(jmeter_xml_fast.Unavailable):
        list(jmeter_xml_fast.scan(path, "x"))
    # engine="fast" still gives the plain reader's answer, rows or error, never a row twice
    try:
        expected: pa.Table | CollectorError = plain(path, warn=lambda _: None)
    except CollectorError as exc:
        expected = exc
    if isinstance(expected, CollectorError):
        with pytest.raises(CollectorError) as err:
            list(jmeter_xml.read_batches(path, engine="fast"))
        assert (err.value.line, err.value.reason) == (expected.line, expected.reason)
    else:
        got = whole([t for kind, t in jmeter_xml.read_batches(path, engine="fast", warn=lambda _: None) if kind == "requests"])
        assert got.equals(expected)


@pytest.mark.parametrize(("file", "line"), [("mismatched-tag-mid-file.jtl", 1031), ("elapsed-not-a-number.jtl", 1547)])
def test_bad_files_name_the_line_through_the_fast_engine(monkeypatch, file, line):
    monkeypatch.setattr(jmeter_xml_fast, "CHUNK_BYTES", 4096)
    with pytest.raises(CollectorError) as err:
        list(jmeter_xml.read_batches(XML / "bad" / file, engine="fast"))
    assert err.value.line == line and file in err.value.path


def test_late_refusal_writes_no_row_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(jmeter_xml_fast, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(jmeter_xml, "BATCH_ROWS", 64)
    path = variant(tmp_path, "late-comment.jtl", REFUSED["comment"])
    parts = [t for kind, t in jmeter_xml.read_batches(path, engine="fast") if kind == "requests"]
    assert len(parts) > 3
    assert whole(parts).equals(plain(path))


def test_auto_engine_takes_the_fast_path_for_large_complete_files(tmp_path, monkeypatch):
    calls = []
    real_scan = jmeter_xml_fast.scan
    monkeypatch.setattr(jmeter_xml_fast, "scan", lambda *a: calls.append(a) or real_scan(*a))
    monkeypatch.setattr(jmeter_xml, "FAST_MIN_BYTES", 1000)
    truncated = variant(tmp_path, "cut.jtl", REFUSED["truncated"])
    list(jmeter_xml.read_batches(truncated, warn=lambda _: None))
    assert not calls  # visibly cut short: straight to the plain reader
    table = whole([t for kind, t in jmeter_xml.read_batches(REAL) if kind == "requests"])
    assert len(calls) == 1 and table.equals(plain(REAL))
    with pytest.raises(CollectorError, match="engine"):
        list(jmeter_xml.read_batches(REAL, engine="turbo"))
