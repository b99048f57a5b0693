"""`capacity report` and `capacity compare`: report pages (HTML with offline plotly charts, plus Markdown) from stored runs."""

from __future__ import annotations

import click

from capacity.cli.common import fail, fmt, json_option, print_json, print_table, store_option

percentile_option = click.option("--percentile-method", type=click.Choice(["linear", "nearest"]), default="linear", show_default=True,
                                 help="linear: interpolation between closest ranks; nearest: nearest-rank value.")
output_option = click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
                             help="Folder to write index.html, index.md and assets/ into.")


@click.command()
@click.argument("run", required=False)
@output_option
@store_option
@percentile_option
@click.option("--apdex-t-ms", type=float, default=500.0, show_default=True, help="Apdex threshold T (F = 4T).")
@click.option("--slo", "slo_exprs", multiple=True, help="SLO for the max-users figure, e.g. p95<2s, errors<1%, cpu<80%, mem<90%.")
@click.option("--clock-offset", default="auto", show_default=True, help="Seconds added to server timestamps, or `auto`.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
              help="Instead of a run: write INDEX/index.html linking every report page in INDEX's subfolders.")
def report(run: str | None, out_dir: str | None, store_dir: str | None, percentile_method: str, apdex_t_ms: float,
           slo_exprs: tuple[str, ...], clock_offset: str, index_dir: str | None) -> None:
    """Write the report page of RUN into the -o folder (index.html, index.md, assets/) and print its path."""
    if index_dir:
        from capacity.report.index import build_index, render_index

        if run:
            raise click.UsageError("give either RUN with -o, or --index DIR")
        click.echo(render_index(build_index(index_dir), index_dir))
        return
    if not run or not out_dir:
        raise click.UsageError("capacity report RUN -o DIR (or --index DIR)")
    from capacity.analysis.slo import SLO
    from capacity.cli.analysis import parse_slo
    from capacity.report.run import build_run_report, render_run_report
    from capacity.store import Store

    store = Store.open(store_dir)
    offset = None if clock_offset == "auto" else float(clock_offset)
    page = build_run_report(store, run, method=percentile_method, apdex_t_ms=apdex_t_ms, slo=SLO(**parse_slo(slo_exprs)), clock_offset_s=offset)
    click.echo(render_run_report(page, out_dir))


@click.command()
@click.argument("runs", nargs=-1, required=True)
@output_option
@store_option
@json_option
@percentile_option
def compare(runs: tuple[str, ...], out_dir: str | None, store_dir: str | None, as_json: bool, percentile_method: str) -> None:
    """Compare RUN_A with RUN_B (and more): ratios with 95 % intervals, tests per label, and plain-language findings."""
    from capacity.report.compare import build_compare_page, build_comparison, conclusions, render_comparison
    from capacity.store import Store

    if len(runs) < 2:
        fail("compare needs at least two runs", 2)
    store = Store.open(store_dir)
    if out_dir:
        page = build_compare_page(store, list(runs), percentile_method)
        path = render_comparison(page, out_dir)
        if as_json:
            print_json(page["data"])
        else:
            click.echo(path)
        return
    data = build_comparison(store, list(runs), percentile_method)
    if as_json:
        print_json(data)
        return
    rows = [[o["metric"], *o["values"], o["ratio"], o["ratio_lo"], o["ratio_hi"],
             {True: "real", False: "noise"}.get(o["significant"], "not tested")] for o in data["overall"]]
    print_table(f"{runs[0]} vs {', '.join(runs[1:])} (ratio: {runs[0]} / {runs[1]})",
                ["metric", *runs, "ratio", "lo", "hi", "verdict"], rows, {k: (lambda v: fmt(v, 3)) for k in ("ratio", "lo", "hi")})
    for line in conclusions(data):
        click.echo(f"- {line}")
