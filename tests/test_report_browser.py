"""Report pages opened in real headless Chromium: no console errors, every chart rendered, expected numbers, no network, no script injection."""

from __future__ import annotations

import os
import shutil

import pytest

from tests import report_fixtures
from tests.browser import CHROMIUM, visit_all
from tests.report_fixtures import XSS_HOST, XSS_IMG, XSS_SCRIPT

# the shared session fixtures (store and written pages)
report_store = report_fixtures.report_store
reports = report_fixtures.reports

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") or os.path.exists(CHROMIUM)),
                                reason="Debian `chromium` is not installed (make apt installs it)")

PAGES = ("run-jmeter-steps", "run-jmeter-ramp20", "run-openedx-native", "run-hostile", "compare-openedx", "compare-jmeter", "plan", ".")
PROBES = {
    "charts": "document.querySelectorAll('.chart').length",
    # a rendered plotly chart has its main SVG with drawn content (traces or bars)
    "rendered": "Array.from(document.querySelectorAll('.chart')).filter(c => { const s = c.querySelector('svg.main-svg');"
                " return s && s.getBoundingClientRect().width > 0 && c.querySelectorAll('.trace, .point, .scatterlayer path').length > 0; }).length",
    "tables": "Array.from(document.querySelectorAll('table')).map(t => Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.textContent)))",
    "text": "document.body.innerText",
    "title": "document.title",
    "pwned": "typeof window.__pwned === 'undefined' ? null : window.__pwned",
    "images": "document.querySelectorAll('img').length",
    "scripts": "Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json').length",
}


@pytest.fixture(scope="module")
def visits(reports):
    urls = {name: (reports / name / "index.html").resolve().as_uri() for name in PAGES}
    got = visit_all(list(urls.values()), PROBES)
    return {name: got[url] for name, url in urls.items()}, reports


def _table(visit, header: str) -> list[list[str]]:
    return next(t for t in visit.values["tables"] if t and header in t[0])


def test_no_console_errors_and_no_network(visits):
    pages, root = visits
    for name, v in pages.items():
        assert v.errors == [], f"{name}: {v.errors}"
        assert v.console == [], f"{name}: {v.console}"
        for url in v.requests:
            assert url.startswith(root.resolve().as_uri()), f"{name} requested {url}"


def test_every_chart_renders(visits):
    pages, _ = visits
    expected_min = {"run-jmeter-steps": 3, "run-jmeter-ramp20": 1, "run-openedx-native": 1, "compare-openedx": 1, "compare-jmeter": 2, "plan": 1}
    for name, v in pages.items():
        assert v.values["rendered"] == v.values["charts"], f"{name}: {v.values['rendered']} of {v.values['charts']} charts rendered"
        assert v.values["charts"] >= expected_min.get(name, 0), name


def test_tables_show_the_expected_numbers(visits):
    pages, _ = visits
    labels = _table(pages["run-jmeter-ramp20"], "label")
    counts = {row[0]: row[2] for row in labels[1:]}
    assert counts["01 Home"] == "174" and counts["10 Lecture download"] == "156" and counts["TX Open course"] == "164"
    overall = _table(pages["compare-openedx"], "figure")
    rows = {row[0]: row for row in overall[1:]}
    assert rows["transactions (requests)"][1:4] == ["8,174", "1,030", "7.94×"]
    assert rows["transactions (requests)"][-2] == "real difference"
    assert rows["mean response (ms)"][1:3] == ["24,316", "33,315"]
    assert rows["p95 response (ms)"][-2] == "not tested"
    assert "completed 7.9x the transactions of openedx-devstack in the same hour" in pages["compare-openedx"].values["text"]
    procs = _table(pages["run-openedx-native"], "command")
    assert procs[1][2] == "gunicorn" and procs[1][3] == "9"  # 8 workers and the master in the top screen
    index = pages["."].values["text"]
    assert "Run jmeter-steps" in index and "openedx-native vs openedx-devstack" in index and "Capacity plan for 1,000 users" in index


def test_sortable_table_sorts(reports):
    url = (reports / "run-jmeter-ramp20" / "index.html").resolve().as_uri()
    probe = {"sorted": "(() => { const t = document.getElementById('label-stats'); t.tHead.rows[0].cells[2].click();"
                       " t.tHead.rows[0].cells[2].click(); return Array.from(t.tBodies[0].rows).map(r => r.cells[2].dataset.v); })()"}
    values = [float(v) for v in visit_all([url], probe)[url].values["sorted"]]
    assert values == sorted(values, reverse=True) and len(values) == 12


def test_injected_labels_and_hosts_show_as_text_and_run_nothing(visits):
    pages, _ = visits
    v = pages["run-hostile"]
    assert v.values["pwned"] is None
    assert v.values["title"] == "Run hostile"
    assert v.values["images"] == 0
    assert v.values["scripts"] == 1  # the page's own script only
    text = v.values["text"]
    for shown in (XSS_SCRIPT, XSS_IMG, XSS_HOST):
        assert shown in text
