"""`capacity ingest`: read files into a run of the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from capacity.cli.common import BAD_INPUT, fail, store_option

if TYPE_CHECKING:
    from capacity.store import FileResult, Store

SKIP_NAMES = {"README.md", "MANIFEST.md", ".DS_Store"}
PROGRESS_MIN_BYTES = 8 << 20


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        out[key.strip()] = value.strip()
    return out


def _expand(paths: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """Files to ingest, each with whether it was named explicitly (a folder's files are not)."""
    out: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [(f, False) for f in sorted(p.rglob("*")) if f.is_file() and f.name not in SKIP_NAMES and not f.name.startswith(".")]
        elif p.is_file():
            out.append((p, True))
        else:
            fail(f"{p}: no such file or directory", BAD_INPUT)
    return out


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--run", "run", required=True, help="Run id to ingest into (created if new).")
@store_option
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Run tag (platform, deployment, version, users, ...).")
@click.option("--host", default=None, help="Host name for files that do not name their host.")
@click.option("--collector", default=None, help="Collector to use instead of auto-detection.")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of timestamps written without one (recorded in the catalog).")
@click.option("--date", "date", default=None, metavar="YYYY-MM-DD", help="Date of files that carry only times (top screens).")
@click.option("--columns", default=None, help="Comma-separated column list of a headerless JMeter CSV JTL.")
@click.option("--option", "-O", "extra", multiple=True, metavar="KEY=VALUE", help="Collector option (e.g. log_format=combined, max_workers=256).")
def ingest(paths: tuple[str, ...], run: str, store_dir: str | None, tags: tuple[str, ...], host: str | None,
           collector: str | None, tz: str, date: str | None, columns: str | None, extra: tuple[str, ...]) -> None:
    """Ingest PATH... (files, or every file under a folder) into run RUN, auto-detecting each format."""
    from capacity.store import Store
    from collectors import registry
    from collectors.base import CollectorError

    tag_map = _pairs(tags, "--tag")
    options: dict[str, object] = dict(_pairs(extra, "--option"))
    if date:
        options["date"] = date
    if columns:
        options["columns"] = [c.strip() for c in columns.split(",")]
    if collector:
        try:
            registry.get(collector)
        except KeyError as exc:
            raise click.BadParameter(str(exc).strip("'\""), param_hint="--collector") from exc
    store = Store.open(store_dir, create=True)
    err = Console(stderr=True)
    for path, explicit in _expand(paths):
        if not explicit and collector is None and not registry.candidates(path):
            click.echo(f"{path}: skipped (no collector recognises it)")
            continue
        try:
            result = _ingest_one(store, path, run, collector, tag_map, host, tz, options, err)
        except CollectorError as exc:
            fail(f"{exc} (nothing of this file was stored)", BAD_INPUT)
        _report(result)


def _ingest_one(store: Store, path: Path, run: str, collector: str | None, tags: dict[str, str], host: str | None,
                tz: str, options: dict[str, object], err: Console) -> FileResult:
    size = path.stat().st_size
    if size < PROGRESS_MIN_BYTES or not err.is_terminal:
        return store.ingest(path, run, collector=collector, tags=tags, host=host, tz=tz, options=options)
    columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed:,} rows"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"{path.name} ({size / 1e6:,.0f} MB)", total=None)
        return store.ingest(path, run, collector=collector, tags=tags, host=host, tz=tz, options=options,
                            progress=lambda rows: bar.update(task, completed=rows))


def _report(result: FileResult) -> None:
    tables = ", ".join(f"{t}={n:,}" for t, n in result.rows.items()) or "no rows"
    status = "unchanged" if result.skipped else "ingested"
    click.echo(f"{result.path}: {status} by {result.collector}: {tables} in {result.seconds:.2f} s")
    for line in ([result.note] if result.note else []) + result.warnings:
        click.echo(f"  note: {line}")
