"""Hostile text from input files through every page: run report, comparison, plan, index and the mkdocs site built from their Markdown.

The inputs are real files made hostile: the ramp20 JTL with script, attribute,
Markdown and 100 kB labels, URLs and failure messages; the full-command-line
top file with a hostile command; an Apache access log with hostile URLs; and a
hostile `--host` and `--tag`. They are ingested and rendered with the CLI, the
Markdown pages are built by mkdocs, and every HTML page is opened in headless
Chromium: nothing may run, no injected element may exist, the text must be
visible as text, and nothing may be requested from anywhere but the page's folder.

Notebooks are not covered: no report path writes input text into a notebook
(the bundled notebooks are stored without outputs); what a notebook shows of a
table is the DataFrame HTML repr, checked here to escape.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from capacity.cli import main
from capacity.docgen import publish_reports
from capacity.store import Store
from tests.browser import CHROMIUM, visit_all

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
DATA = Path(__file__).resolve().parent / "data"
RAMP = SAMPLES / "jmeter-ramp20" / "results.jtl"
TOP = DATA / "top_batch" / "top-b-c-w512-full-command-lines.txt"
ACCESS = DATA / "access_log" / "combined-debian-edge-cases-excerpt.log"
CORPUS_DATE = "2026-11-21"

SCRIPT = "<script>window.__pwned='script'</script>"
IMG = "\"><img src=x onerror=\"window.__pwned='img'\">"
MARKDOWN = "[click me](javascript:alert(1)) **bold** | pipe `code` <b>x</b> # not a heading"
REMOTE = "<img src=\"http://203.0.113.9/beacon.png\"><link rel=stylesheet href=\"//203.0.113.9/x.css\">"
LONG = "<svg onload=\"window.__pwned='long'\">" + "W" * 100_000
HOST = "<img src=y onerror=\"window.__pwned='host'\">"
TAG = "</script><script>window.__pwned='tag'</script>"
COMMAND = "php -r \"<script>window.__pwned='cmd'</script>\" --opt='\"><img src=z onerror=alert(7)>' " + "[x](javascript:alert(8))"
URL_PATH = "/<script>window.__pwned='url'</script>"
ACCESS_URL = "/search?q=<svg/onload=window.__pwned='access'>"
LABELS = {"01 Home": SCRIPT, "02 Login page": IMG, "03 Login submit": MARKDOWN, "04 Course catalogue": LONG, "05 Course page": REMOTE}
SHOWN = (SCRIPT, IMG, HOST)  # texts every hostile run page must show, character for character
PROBES = {
    "pwned": "typeof window.__pwned === 'undefined' ? null : String(window.__pwned)",
    "injected": "document.querySelectorAll('img[src=x], img[src=y], img[src=z], img[onerror], svg[onload], link[href*=\"203.0.113\"], "
                "img[src*=\"203.0.113\"]').length",
    "inline_scripts": "Array.from(document.scripts).filter(s => s.type !== 'application/json' && /__pwned|alert\\(/.test(s.textContent)).length",
    "js_links": "Array.from(document.querySelectorAll('a[href]')).filter(a => a.href.trim().toLowerCase().startsWith('javascript:')).length",
    "text": "document.body.innerText",
    "charts": "document.querySelectorAll('.chart').length",
    "width": "document.documentElement.scrollWidth",
    "rendered": "Array.from(document.querySelectorAll('.chart')).filter(c => c.querySelector('svg.main-svg')).length",
}
has_chromium = bool(shutil.which("chromium") or os.path.exists(CHROMIUM))


def hostile_jtl(folder: Path) -> Path:
    """The ramp20 JTL with hostile labels, and URL and failureMessage columns (JMeter's names) holding hostile text."""
    rows = list(csv.reader(io.StringIO(RAMP.read_text(encoding="utf-8"))))
    header = rows[0]
    assert "label" in header and "URL" not in header
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, "URL", "failureMessage"])
    label, success = header.index("label"), header.index("success")
    for r in rows[1:]:
        r[label] = LABELS.get(r[label], r[label])
        failed = r[success] == "false"
        writer.writerow([*r, f"http://moodle.example{URL_PATH}", f"{IMG} {MARKDOWN}" if failed else ""])
    path = folder / "hostile.jtl"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def hostile_top(folder: Path) -> Path:
    text = TOP.read_text(encoding="utf-8")
    assert "bash ./run_dev.sh" in text
    path = folder / "top-hostile.txt"
    path.write_text(text.replace("bash ./run_dev.sh", COMMAND), encoding="utf-8")
    return path


def hostile_access_log(folder: Path) -> Path:
    lines = ACCESS.read_text(encoding="utf-8").splitlines()
    out = [line.replace("/css/style.css", URL_PATH).replace("/server-status?auto", ACCESS_URL) for line in lines]
    assert out != lines
    path = folder / "access-hostile.log"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def cli(*args: str) -> str:
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def mkdocs_site(reports: Path, tmp: Path) -> Path:
    """The report pages' Markdown built by mkdocs with the project's configuration (docs_dir and nav pointed at tmp)."""
    docs = tmp / "docs"
    publish_reports(reports, docs)
    (docs / "index.md").write_text("# Reports\n\nHostile pages.\n", encoding="utf-8")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), site_dir=str(tmp / "site"), hooks=[str(ROOT / "capacity" / "docgen.py")],
                  nav=[{"Home": "index.md"}, {"Reports": []}])
    (tmp / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp / "mkdocs.yml")], cwd=tmp,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return tmp / "site"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    store = ["--store", str(tmp / "store")]
    cli("ingest", str(hostile_jtl(tmp)), "--run", "hostile", "--tag", f"note={TAG}", "--tag", f"deployment={MARKDOWN}", *store)
    cli("ingest", str(hostile_top(tmp)), "--run", "hostile", "--host", HOST, "--date", CORPUS_DATE, *store)
    cli("ingest", str(hostile_access_log(tmp)), "--run", "hostile-web", "--host", HOST, *store)
    cli("ingest", str(RAMP), "--run", "normal", *store)
    out = tmp / "reports"
    cli("report", "hostile", "-o", str(out / "run-hostile"), *store)
    cli("report", "hostile-web", "-o", str(out / "run-hostile-web"), *store)
    cli("compare", "hostile", "normal", "-o", str(out / "compare-hostile"), *store)
    cli("compare", "normal", "hostile", "-o", str(out / "compare-normal"), *store)
    cli("plan", "--users", "500", "--run", "hostile", "--cpu-count", "2", "--slo", "p95<1s,errors<50%", "-o", str(out / "plan-hostile"), *store)
    cli("report", "--index", str(out))
    site = mkdocs_site(out, tmp / "mkdocs")
    return {"store": tmp / "store", "reports": out, "site": site}


def html_pages(written: dict[str, Path], copies: bool = True) -> list[Path]:
    """Every HTML page: the reports, and the mkdocs pages built from their Markdown (with `copies`, the reports' HTML as published too)."""
    pages = sorted(written["reports"].glob("**/index.html"))
    pages += sorted(p for p in written["site"].glob("reports/**/*.html") if copies or p.name != "report.html")
    return pages


def test_every_page_is_written_and_escapes_in_source(written):
    pages = html_pages(written)
    names = {p.relative_to(p.parents[1]).as_posix() for p in pages}
    assert {"run-hostile/index.html", "compare-hostile/index.html", "plan-hostile/index.html", "run-hostile-web/index.html"} <= names
    assert len([p for p in pages if written["site"] in p.parents]) >= 10  # mkdocs page and report.html of each of 5 reports
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for bad in (SCRIPT, IMG, HOST, TAG, "<img src=x", "<img src=y", "<img src=z", "<svg onload", "<svg/onload", "<b>x</b>",
                    'href="javascript:', "http://203.0.113.9/beacon.png\">"):
            assert bad not in text, f"{page}: {bad!r}"
    # the published copies are the reports' own pages, byte for byte (so opening the reports covers them)
    for copy in written["site"].glob("reports/*/report.html"):
        assert copy.read_bytes() == (written["reports"] / copy.parent.name / "index.html").read_bytes()
    # the hostile labels did reach the pages (escaped)
    for name in ("run-hostile", "compare-hostile"):
        for page in ("index.html", "index.md"):
            text = (written["reports"] / name / page).read_text(encoding="utf-8")
            assert "W" * 1000 in text and "&lt;script&gt;window." in text, f"{name}/{page}"
    for md in written["reports"].glob("**/index.md"):
        text = md.read_text(encoding="utf-8")
        assert "<" not in text.replace("&lt;", ""), md
        assert "](javascript:" not in text and "**bold**" not in text, md


def test_pages_stay_bounded_with_100_kb_labels(written):
    for name in ("run-hostile", "compare-hostile", "compare-normal"):
        folder = written["reports"] / name
        for page in ("index.html", "index.md"):
            size = (folder / page).stat().st_size
            assert size < 1_500_000, f"{name}/{page}: {size:,} bytes"


def test_notebook_tables_escape_input_text(written):
    df = Store.open(written["store"]).df("requests", ["hostile"], columns=["label", "error", "url"])
    shown = df.head(200).to_html()
    assert SCRIPT not in shown and "&lt;script&gt;" in shown
    procs = Store.open(written["store"]).df("processes", ["hostile"], columns=["host", "command"])
    assert HOST not in procs.to_html() and "<script>" not in procs._repr_html_()


@pytest.mark.skipif(not has_chromium, reason="Debian `chromium` is not installed (make apt installs it)")
def test_nothing_runs_in_chromium(written):
    pages = html_pages(written, copies=False)
    urls = {p.resolve().as_uri(): p for p in pages}
    visits = visit_all(list(urls), PROBES, settle_s=0.2, timeout=30)
    for url, v in visits.items():
        page = urls[url]
        assert v.values["pwned"] is None, f"{page}: {v.values['pwned']}"
        assert v.values["injected"] == 0, page
        assert v.values["inline_scripts"] == 0, page
        assert v.values["js_links"] == 0, page
        assert v.exceptions == [], f"{page}: {v.exceptions}"
        assert v.values["rendered"] == v.values["charts"], page
        assert v.values["width"] <= 1280, f"{page}: {v.values['width']} px wide (long input text must wrap)"
        for req in v.requests:
            assert req.startswith(("file://", "data:", "blob:")), f"{page} requested {req}"
    reports = written["reports"]
    run = visits[(reports / "run-hostile" / "index.html").resolve().as_uri()]
    assert run.errors == [], run.errors
    for shown in SHOWN:
        assert shown in run.values["text"]
    assert COMMAND in run.values["text"] and MARKDOWN in run.values["text"]
    web = visits[(reports / "run-hostile-web" / "index.html").resolve().as_uri()]
    assert f"GET {URL_PATH}" in web.values["text"] or f"HEAD {URL_PATH}" in web.values["text"]
    compare = visits[(reports / "compare-hostile" / "index.html").resolve().as_uri()]
    assert SCRIPT in compare.values["text"] and IMG in compare.values["text"]
    site = [v for u, v in visits.items() if written["site"] in urls[u].parents and urls[u].name == "index.html"
            and urls[u].parent.name == "run-hostile"]
    assert len(site) == 1 and SCRIPT in site[0].values["text"] and HOST in site[0].values["text"]
