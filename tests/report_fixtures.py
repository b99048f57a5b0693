"""A store with the bundled sample runs plus a hostile run, built once per test session, and the report pages written from it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from capacity.cli import main
from capacity.store import Store

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
SEED_DATE = "2019-07-04"
# Labels and a host name an attacker could put in an input file.
XSS_SCRIPT = "<script>document.title='pwned-script'</script>"
XSS_IMG = "\"><img src=x onerror=\"window.__pwned=1\">"
XSS_MD = "[click me](javascript:alert(1)) **bold** | pipe `code` <b>x</b>"
XSS_HOST = "<img src=y onerror=window.__pwned=2>"


def jtl_labels(path: Path) -> dict[str, int]:
    """Sample count per label, read from the JTL's raw text (what the report must show)."""
    counts: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            counts[row["label"]] = counts.get(row["label"], 0) + 1
    return counts


def hostile_jtl(tmp: Path) -> Path:
    """The ramp20 JTL with three labels replaced by script, attribute and Markdown injections (properly CSV-quoted)."""
    src = SAMPLES / "jmeter-ramp20" / "results.jtl"
    rows = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"))))
    swap = {"01 Home": XSS_SCRIPT, "02 Login page": XSS_IMG, "03 Login submit": XSS_MD}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0])
    for r in rows[1:]:
        r[2] = swap.get(r[2], r[2])
        writer.writerow(r)
    path = tmp / "hostile.jtl"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def ingest(store_dir: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["ingest", *args, "--store", str(store_dir)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def report_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Store with jmeter-ramp20, jmeter-steps, openedx-native, openedx-devstack (tagged as `make report` does) and `hostile`."""
    tmp = tmp_path_factory.mktemp("report-store")
    store_dir = tmp / "store"
    ingest(store_dir, [str(SAMPLES / "jmeter-ramp20"), "--run", "jmeter-ramp20"])
    ingest(store_dir, [str(SAMPLES / "jmeter-steps"), "--run", "jmeter-steps"])
    for name, users in (("native", 100), ("devstack", 10)):
        ingest(store_dir, [str(SAMPLES / f"openedx-{name}"), "--run", f"openedx-{name}", "--date", SEED_DATE, "--host", f"openedx-{name}",
                           "--tag", f"users={users}", "--tag", "duration_s=3600", "--tag", f"deployment={name}"])
    ingest(store_dir, [str(hostile_jtl(tmp)), "--run", "hostile", "--tag", f"note={XSS_SCRIPT}"])
    ingest(store_dir, [str(SAMPLES / "openedx-native" / "top-45min.txt"), "--run", "hostile", "--date", SEED_DATE, "--host", XSS_HOST])
    return store_dir


@pytest.fixture(scope="session")
def reports(report_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind of page written by the CLI into one reports folder, with its index."""
    out = tmp_path_factory.mktemp("reports")
    runner = CliRunner()
    store = ["--store", str(report_store)]
    for run in Store.open(report_store).catalog()["runs"]:
        r = runner.invoke(main, ["report", run, "-o", str(out / f"run-{run}"), *store])
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["compare", "openedx-native", "openedx-devstack", "-o", str(out / "compare-openedx"), *store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["compare", "jmeter-steps", "jmeter-ramp20", "-o", str(out / "compare-jmeter"), *store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["plan", "--users", "1000", "--run", "jmeter-steps", "--cpu-count", "2", "--slo", "p95<1s,errors<20%",
                             "-o", str(out / "plan"), *store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["report", "--index", str(out)])
    assert r.exit_code == 0, r.output
    return out
