"""`capacity runs` and `capacity stats`."""

from __future__ import annotations

import click

from capacity.cli.common import fail, json_option, print_json, print_table, store_option


@click.command()
@store_option
@json_option
def runs(store_dir: str | None, as_json: bool) -> None:
    """List the runs in the store with their tags, hosts, span and files."""
    from capacity.store import Store

    listing = Store.open(store_dir).runs()
    if as_json:
        print_json(listing)
        return
    rows = [
        (
            r["run"],
            ", ".join(f"{k}={v}" for k, v in sorted(r["tags"].items())),
            ", ".join(h["name"] for h in r["hosts"]),
            r["start"],
            r["end"],
            len(r["files"]),
            sum(sum(f["rows"].values()) for f in r["files"]),
        )
        for r in listing
    ]
    print_table("Runs", ["run", "tags", "hosts", "start", "end", "files", "rows"], rows)


@click.command()
@click.argument("run")
@store_option
@json_option
@click.option("--percentile-method", type=click.Choice(["linear", "nearest"]), default="linear", show_default=True,
              help="linear: interpolation between closest ranks (numpy default); nearest: nearest-rank value.")
def stats(run: str, store_dir: str | None, as_json: bool, percentile_method: str) -> None:
    """Per-label request statistics of RUN, exact, computed over the stored Parquet."""
    from capacity.analysis.stats import STAT_KEYS, label_stats
    from capacity.store import Store

    store = Store.open(store_dir)
    store.run(run)
    con = store.connect([run])
    try:
        # Raw samples give exact statistics; a run holding only the tools' summaries reports those.
        has_samples = con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run]).fetchone()[0]
        if has_samples:
            result = label_stats(con, run, percentile_method)
        else:
            from capacity.analysis.summaries import summary_stats

            result = summary_stats(con, run)
    finally:
        con.close()
    if as_json:
        result.pop("span_s")
        print_json(result)
        return
    columns = ["label", "kind", *STAT_KEYS]
    rows = [[s[c] for c in columns] for s in result["labels"]]
    if result["overall"]:
        rows.append(["OVERALL (samples)", "sample", *(result["overall"][k] for k in STAT_KEYS)])
    span = result["span_s"]
    if result.get("basis") == "summaries":
        title = f"Run {run}: the load tool's own summaries (no raw samples; percentiles: {result['percentile_method']})"
    else:
        title = f"Run {run}: request statistics (percentiles: {percentile_method} interpolation" + (
            f"; throughput over {span:,.1f} s)" if span else ")")
    print_table(title, columns, rows, {"error_pct": lambda v: f"{v:.2f}" if v is not None else "-",
                                       "throughput_rps": lambda v: f"{v:.2f}" if v is not None else "-"})


@click.command()
@click.argument("run", required=False)
@store_option
def verify(run: str | None, store_dir: str | None) -> None:
    """Recover the store from any interrupted write, then check every stored file of RUN (or all runs)
    against the catalog: presence, row counts and sha256."""
    from capacity.store import Store

    store = Store.open(store_dir)
    with store.locked() as removed:
        problems = store.verify(run)
    for path in removed:
        click.echo(f"recovered: removed {path.relative_to(store.root)} (left by an interrupted write, not in the catalog)")
    for line in problems:
        click.echo(line)
    scope = f"run {run}" if run else "all runs"
    if problems:
        fail(f"{len(problems)} problem(s) in {scope}")
    click.echo(f"{scope}: every stored file matches the catalog")
