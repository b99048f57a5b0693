"""The documentation site: generated pages up to date, every command, option and collector documented, strict build."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import yaml

from capacity import docgen
from capacity.cli import main
from collectors.registry import COLLECTORS
from tests.conftest import ROOT

DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "cli.md"
REGENERATE = "run `python -m capacity.docgen` and commit docs/"


def _sections(markdown: str) -> dict[str, str]:
    """Command name -> text of its section, from the `## \\`capacity ...\\`` headings of a CLI page."""
    parts = re.split(r"^#{2,6} `(capacity[^`]*)`.*$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _walk(cmd: click.Command, name: str = "capacity"):
    yield name, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=name)
        for sub_name in cmd.list_commands(ctx):  # the top-level group loads its commands lazily
            sub = cmd.get_command(ctx, sub_name)
            if not sub.hidden:
                yield from _walk(sub, f"{name} {sub_name}")


def _undocumented(markdown: str, root: click.Command) -> list[str]:
    sections = _sections(markdown)
    missing = []
    for name, cmd in _walk(root):
        if name not in sections:
            missing.append(name)
            continue
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                missing += [f"{name} {opt}" for opt in (*param.opts, *param.secondary_opts) if f"`{opt}`" not in sections[name]]
            elif isinstance(param, click.Argument) and param.human_readable_name.upper() not in sections[name]:
                missing.append(f"{name} {param.human_readable_name}")
    return missing


def _load_mkdocs_yml() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use mkdocs' own tags (!ENV, !relative); they are irrelevant to these checks.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def test_every_command_and_option_is_in_the_committed_cli_page() -> None:
    assert CLI_PAGE.is_file(), REGENERATE
    missing = _undocumented(CLI_PAGE.read_text(encoding="utf-8"), main)
    assert not missing, f"undocumented in docs/cli.md: {missing}; {REGENERATE}"


def test_cli_page_is_up_to_date() -> None:
    assert CLI_PAGE.read_text(encoding="utf-8") == docgen.cli_markdown(), REGENERATE


def test_generated_pages_are_up_to_date() -> None:
    assert docgen.stale() == [], REGENERATE


def test_cli_reference_walks_nested_groups_and_every_kind_of_option() -> None:
    @click.group()
    def root() -> None:
        """Root help."""

    @root.group()
    def live() -> None:
        """Live things."""

    @live.command()
    @click.argument("url")
    @click.option("--interval", default=1.5, show_default=True, help="Seconds between <polls>, see `<url>`.")
    @click.option("--tag", multiple=True, metavar="KEY=VALUE", help="A tag.")
    @click.option("--secret", hidden=True)
    @click.option("--verbose/--quiet", default=False)
    def poll(url: str, interval: float, tag: tuple[str, ...], secret: str | None, verbose: bool) -> None:
        """Poll URL.

        \f
        Not for users.
        """

    page = docgen.cli_markdown(root)
    assert _undocumented(page, root) == []
    poll_section = _sections(page)["capacity live poll"]
    assert "capacity live poll [OPTIONS] URL" in poll_section
    assert "`--interval` `FLOAT`: Seconds between &lt;polls>, see `<url>`. (default: `1.5`)" in poll_section
    assert "`--tag` `KEY=VALUE`: A tag. (repeatable)" in poll_section
    assert "`--verbose`, `--quiet`" in poll_section
    assert "--secret" not in page and "Not for users" not in page
    # and the check itself fails on a page that lacks an option
    assert _undocumented(page.replace("`--interval`", "`--period`"), root) == ["capacity live poll --interval"]


def test_every_registered_collector_has_a_page_in_the_nav() -> None:
    nav = docgen._expand_nav(_load_mkdocs_yml()["nav"], DOCS)
    (collectors_nav,) = [item["Collectors"] for item in nav if isinstance(item, dict) and "Collectors" in item]
    listed = {next(iter(i.values())) if isinstance(i, dict) else i for i in collectors_nav}
    index = (DOCS / "collectors" / "index.md").read_text(encoding="utf-8")
    for module in COLLECTORS:
        page = DOCS / "collectors" / f"{module.name}.md"
        assert page.is_file(), f"no page for collector {module.name}; {REGENERATE}"
        text = page.read_text(encoding="utf-8")
        assert text.startswith(f"# `{module.name}`")
        assert (module.__doc__ or "").strip().splitlines()[0] in text
        assert f"collectors/{module.name}.md" in listed
        assert f"]({module.name}.md)" in index


def test_collector_page_lists_its_samples_and_their_readme() -> None:
    from collectors import jmeter_jtl

    page = docgen.collector_markdown(jmeter_jtl)
    data = ROOT / "tests" / "data" / "jmeter_jtl"
    for sample in data.iterdir():
        if sample.is_file() and sample.name != "README.md":
            assert f"- `{sample.name}`" in page
    readme_title = (data / "README.md").read_text(encoding="utf-8").splitlines()[0]
    assert "\n##" + readme_title + "\n" in page  # the README's headings are pushed under the page's own


def test_nav_drops_only_optional_pages_not_written_yet(tmp_path: Path) -> None:
    (tmp_path / "scale.md").write_text("# Scale\n", encoding="utf-8")
    nav = [{"Home": "index.md"}, {"Performance": "performance.md"}, {"Scale": "scale.md"}, {"Models": "models.md"}]
    assert docgen._expand_nav(nav, tmp_path) == [{"Home": "index.md"}, {"Scale": "scale.md"}, {"Models": "models.md"}]


def test_models_page_explains_every_model_with_its_formula() -> None:
    text = (DOCS / "models.md").read_text(encoding="utf-8")
    for heading in ("## Little's law", "## Utilisation law", "## Universal Scalability Law", "## Max users under an SLO", "## Sizing"):
        assert heading in text
    for formula in ("X(N) = λ · N / (1 + σ · (N − 1) + κ · N · (N − 1))", "N* = sqrt((1 − σ) / κ)", "N = X · (R + Z)",
                    "U = X · D", "D_cpu = U_cpu · cores / X", "servers = ceil(users / users_per_server)"):
        assert " ".join(formula.split()) in " ".join(text.split()), formula
    # the SLO defaults printed are the code's
    from capacity.analysis.slo import SLO

    assert f"≤ {SLO().p95_ms:.0f} ms" in text and f"≤ {SLO().cpu_pct:.0f} %" in text and f"≤ {SLO().error_pct:.0f} %" in text


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting-started.html", "tables.html", "cli.html", "models.html", "store.html", "reports.html"):
        assert (site / page).is_file(), page
    for module in COLLECTORS:
        assert (site / "collectors" / f"{module.name}.html").is_file(), module.name
    cli_html = (site / "cli.html").read_text(encoding="utf-8")
    assert 'id="capacity-ingest"' in cli_html
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        remote = re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=\"(?:https?:)?//[^\"]+\"", text)
        assert not remote, f"{html.relative_to(site)} loads {remote[:3]} from the internet: the site must work offline"


def test_published_report_becomes_a_page_next_to_its_html(tmp_path: Path) -> None:
    reports = tmp_path / "reports" / "jmeter-steps"
    reports.mkdir(parents=True)
    (reports / "index.md").write_text("# Report: jmeter-steps\n\nInteractive version: [HTML](index.html).\n\n![p95](p95.svg)\n", encoding="utf-8")
    (reports / "index.html").write_text("<html><body>plotly</body></html>", encoding="utf-8")
    (reports / "p95.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    plain = tmp_path / "reports" / "compare" / "native-vs-devstack"
    plain.mkdir(parents=True)
    (plain / "index.md").write_text("# Native vs devstack\n\nSee [jmeter-steps](../../jmeter-steps/index.html#summary).\n", encoding="utf-8")
    (plain / "index.html").write_text("<html><body>compare</body></html>", encoding="utf-8")
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(DOCS), str(docs)], check=True)
    published = docgen.publish_reports(tmp_path / "reports", docs)
    assert published == [docs / "reports" / "compare" / "native-vs-devstack" / "index.md", docs / "reports" / "jmeter-steps" / "index.md"]
    compare_md = published[0].read_text(encoding="utf-8")
    assert "(../../jmeter-steps/report.html#summary)" in compare_md and compare_md.endswith("[report.html](report.html).\n")
    assert "[HTML](report.html)" in published[1].read_text(encoding="utf-8")
    assert published[1].read_text(encoding="utf-8").count("report.html") == 1
    assert (docs / "reports" / "jmeter-steps" / "report.html").is_file()
    config = _load_mkdocs_yml()
    config.update(docs_dir=str(docs), hooks=[str(ROOT / "capacity" / "docgen.py")])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    page = (tmp_path / "site" / "reports" / "jmeter-steps" / "index.html").read_text(encoding="utf-8")
    assert "Report: jmeter-steps" in page and 'href="report.html"' in page
    compare_page = (tmp_path / "site" / "reports" / "compare" / "native-vs-devstack" / "index.html").read_text(encoding="utf-8")
    assert 'href="../../jmeter-steps/report.html#summary"' in compare_page
    assert (tmp_path / "site" / "reports" / "jmeter-steps" / "report.html").read_text(encoding="utf-8") == "<html><body>plotly</body></html>"
