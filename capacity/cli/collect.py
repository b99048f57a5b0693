"""`capacity collect`: record live sources (Apache server-status, Prometheus, this machine) into a run.

Every subcommand writes to the store as it goes (one chunk every
`--flush-every` seconds), so stopping it with Ctrl-C or SIGTERM loses nothing
already collected: the handlers flush the buffer, print one summary line and
exit 0. Failed polls are retried with backoff and recorded as gaps in the
catalog entry of the chunk that follows them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from capacity.cli.common import BAD_INPUT, fail, store_option
from capacity.cli.ingest import _pairs

if TYPE_CHECKING:
    from capacity.live import Event, FlushResult, Summary
    from capacity.store import Store


def _positive(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive", param_hint=f"--{param.name.replace('_', '-')}")
    return value


def _not_negative(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < 0:
        raise click.BadParameter("must be 0 or more", param_hint=f"--{param.name.replace('_', '-')}")
    return value


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every collect subcommand takes."""
    for option in reversed([
        click.option("--run", "run", required=True, help="Run id to record into (created if new)."),
        store_option,
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Run tag (platform, deployment, ...)."),
        click.option("--flush-every", default=5.0, show_default=True, type=float, callback=_positive,
                     help="Seconds between writes to the store (at most this much is lost on a kill -9)."),
        click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
                     help="Append one JSON line per poll (ok, fail, recovered) to this file."),
    ]):
        func = option(func)
    return func


def _loop_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the polling subcommands."""
    for option in reversed([
        click.option("--interval", default=1.0, show_default=True, type=float, callback=_positive, help="Seconds between polls."),
        click.option("--duration", default=600.0, show_default=True, type=float, callback=_not_negative,
                     help="Seconds to record; 0 records until Ctrl-C or SIGTERM."),
        click.option("--retry-max", default=30.0, show_default=True, type=float, callback=_positive,
                     help="Longest wait between retries while the source does not answer (the wait doubles from --interval)."),
    ]):
        func = option(func)
    return func


class _Reporter:
    """Prints gaps and flushes on stderr and writes the optional JSON-lines poll log."""

    def __init__(self, log_path: str | None) -> None:
        self.log: IO[str] | None = open(Path(log_path), "a", encoding="utf-8") if log_path else None  # noqa: SIM115 - closed in close()
        self.failing = False

    def event(self, event: Event) -> None:
        if self.log:
            record = {"event": event.kind, "ts": event.ts.isoformat(timespec="milliseconds"), "rows": event.rows}
            if event.error:
                record["error"] = event.error
            if event.retry_in is not None:
                record["retry_in_s"] = round(event.retry_in, 3)
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
        if event.kind == "fail":
            retry = f"; retrying in {event.retry_in:g} s" if event.retry_in is not None else "; giving up on it"
            click.echo(f"capacity: {event.ts:%H:%M:%S} poll failed: {event.error}{retry}", err=True)
        elif event.kind == "recovered" and event.gap is not None:
            click.echo(f"capacity: {event.ts:%H:%M:%S} source answers again after {event.gap.failed_polls} failed poll(s); "
                       f"gap of {event.gap.seconds or 0:.1f} s recorded", err=True)

    def flushed(self, result: FlushResult) -> None:
        rows = ", ".join(f"{n} {kind}" for kind, n in sorted(result.rows.items())) or "no rows"
        gaps = f", {result.gaps} gap(s)" if result.gaps else ""
        click.echo(f"capacity: flushed {rows}{gaps}", err=True)

    def close(self) -> None:
        if self.log:
            self.log.close()


def _summary_line(what: str, run: str, summary: Summary, extra: str = "", noun: str = "samples") -> str:
    rows = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.rows.items())) or "no rows"
    open_gaps = sum(1 for g in summary.gaps if g.end is None)
    gaps = f"{len(summary.gaps)} gap(s) ({summary.gap_seconds:.1f} s{', 1 still open' if open_gaps else ''}), {summary.failed_polls} failed poll(s)"
    ending = f"stopped by {summary.stopped_by}" if summary.stopped_by else "finished"
    good = summary.polls - summary.failed_polls
    return f"collect {what}: {good} {noun}, {rows} in {summary.flushes} flush(es) to run {run}; {gaps}{extra}; {ending}"


def _restart_notices(reporter: _Reporter, source: Any, message: str) -> Callable[[Event], None]:
    """The reporter's event handler, plus `message` on stderr each time `source.restarts` grows."""
    seen = 0

    def on_event(event: Event) -> None:
        nonlocal seen
        reporter.event(event)
        if source.restarts > seen:
            seen = source.restarts
            click.echo(f"capacity: {event.ts:%H:%M:%S} {message}", err=True)

    return on_event


def _poll(source: Any, sink: Any, interval: float, duration: float, retry_max: float,
          on_event: Callable[[Event], None]) -> Summary:
    """Poll `source` into `sink` until `duration` ends or SIGINT/SIGTERM arrives."""
    from capacity.live import StopFlag, poll_loop, stop_on_signals

    with stop_on_signals(StopFlag()) as stop:
        return poll_loop(source, sink, interval=interval, duration=duration, stop=stop, retry_max=retry_max, on_event=on_event)


def _open(store_dir: str | None, run: str) -> Store:
    from capacity.store import Store, check_run_id

    check_run_id(run)
    return Store.open(store_dir, create=True)


@click.group()
def collect() -> None:
    """Record live sources into a run as they run (Ctrl-C or SIGTERM flushes and stops)."""


@collect.command()
@click.argument("url")
@_common
@_loop_options
@click.option("--host", default=None, help="Server name for the rows (default: the URL's host).")
@click.option("--max-workers", type=int, default=None, help="Configured MaxRequestWorkers (default: the scoreboard length).")
@click.option("--timeout", default=5.0, show_default=True, type=float, callback=_positive, help="Seconds to wait for one answer.")
def apache(url: str, run: str, store_dir: str | None, tags: tuple[str, ...], flush_every: float, log_path: str | None,
           interval: float, duration: float, retry_max: float, host: str | None, max_workers: int | None, timeout: float) -> None:
    """Poll Apache's server-status?auto at URL into web_status (rates between polls, restarts flagged)."""
    from capacity.live import StoreSink
    from capacity.live.apache import ApacheStatusSource, name

    tag_map = _pairs(tags, "--tag")
    store = _open(store_dir, run)
    source = ApacheStatusSource(url, host=host, max_workers=max_workers, timeout=timeout)
    reporter = _Reporter(log_path)
    on_event = _restart_notices(reporter, source, "server restart detected (counters or uptime went down)")
    sink = StoreSink(store, run, collector=name, location=source.url, host=source.host, flush_every=flush_every,
                     tags=tag_map, on_flush=reporter.flushed)
    try:
        summary = _poll(source, sink, interval, duration, retry_max, on_event)
    finally:
        reporter.close()
    click.echo(_summary_line("apache", run, summary, f"; {source.restarts} restart(s) detected"))


@collect.command()
@_common
@_loop_options
@click.option("--host", default=None, help="Host name for the rows (default: this machine's name).")
@click.option("--processes", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also record the top N processes by CPU into the processes table.")
def host(run: str, store_dir: str | None, tags: tuple[str, ...], flush_every: float, log_path: str | None,
         interval: float, duration: float, retry_max: float, host: str | None, processes: int) -> None:
    """Sample this machine with psutil into host_metrics (sar's metrics) and processes (top N by CPU)."""
    from capacity.live import StoreSink
    from capacity.live.host import HostSource, name

    tag_map = _pairs(tags, "--tag")
    store = _open(store_dir, run)
    source = HostSource(host=host, processes=processes)
    reporter = _Reporter(log_path)
    recorded_host = False

    def on_flush(result: FlushResult) -> None:
        nonlocal recorded_host
        reporter.flushed(result)
        if not recorded_host:
            # After the first flush, when the run exists; set_host takes the lock itself.
            store.set_host(run, source.host, cpu_count=source.sampler.cpu_count, memory_bytes=source.sampler.memory_bytes)
            recorded_host = True

    sink = StoreSink(store, run, collector=name, location=f"host:{source.host}", host=source.host, flush_every=flush_every,
                     tags=tag_map, on_flush=on_flush)
    try:
        summary = _poll(source, sink, interval, duration, retry_max, reporter.event)
    finally:
        reporter.close()
    click.echo(_summary_line("host", run, summary))


@collect.command()
@click.argument("url")
@_common
@click.option("--query", "queries", multiple=True, required=True, help="PromQL query (repeatable), e.g. 'rate(node_cpu_seconds_total[1m])'.")
@click.option("--start", "start_text", default="-15m", show_default=True, help="RFC 3339, epoch seconds, now, or relative (-15m).")
@click.option("--end", "end_text", default="now", show_default=True, help="RFC 3339, epoch seconds, now, or relative (-1m).")
@click.option("--step", "step_text", default="15s", show_default=True, help="Resolution: a duration (1s, 15s, 1m) or seconds.")
@click.option("--host", default=None, help="Host name for every row (default: the series' instance label without its port).")
@click.option("--max-points", default=11_000, show_default=True, type=click.IntRange(min=2),
              help="Points per series per request; longer spans are split into several requests.")
@click.option("--timeout", default=30.0, show_default=True, type=float, callback=_positive, help="Seconds to wait for one answer.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0), help="Retries of a failed request before recording a gap.")
def prometheus(url: str, run: str, store_dir: str | None, tags: tuple[str, ...], flush_every: float, log_path: str | None,
               queries: tuple[str, ...], start_text: str, end_text: str, step_text: str, host: str | None, max_points: int,
               timeout: float, retries: int) -> None:
    """Run range queries against the Prometheus at URL into host_metrics (node_exporter series mapped onto the vocabulary)."""
    from datetime import UTC, datetime

    from capacity.live import StopFlag, StoreSink, stop_on_signals
    from capacity.live.prometheus import collect_range, connect, name, parse_duration, parse_time

    now = datetime.now(UTC)
    try:
        start, end = parse_time(start_text, now), parse_time(end_text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start/--end") from None
    try:
        step = parse_duration(step_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--step") from None
    if end <= start:
        raise click.BadParameter(f"end {end.isoformat()} is not after start {start.isoformat()}", param_hint="--start/--end")
    tag_map = _pairs(tags, "--tag")
    store = _open(store_dir, run)
    reporter = _Reporter(log_path)
    sink = StoreSink(store, run, collector=name, location=url, host=host, flush_every=flush_every, tags=tag_map, on_flush=reporter.flushed)
    client = connect(url, timeout)
    try:
        with stop_on_signals(StopFlag()) as stop:
            summary = collect_range(client, url, list(queries), start, end, step, sink, stop=stop, host=host, max_points=max_points,
                                    retries=retries, on_event=reporter.event)
    finally:
        reporter.close()
    click.echo(_summary_line("prometheus", run, summary, noun="requests answered"))
    if not summary.rows and summary.failed_polls and not summary.stopped_by:
        fail(f"no data from {url}: every request failed (see the gaps above)", BAD_INPUT)


@collect.command()
@click.argument("address")
@_common
@_loop_options
@click.option("--host", default=None, help="Server name for the rows (default: the address's host).")
@click.option("--password", envvar="REDISCLI_AUTH", default=None, help="AUTH password (default: $REDISCLI_AUTH, as redis-cli).")
@click.option("--user", "username", default=None, help="ACL user name for AUTH (Redis 6+).")
@click.option("--timeout", default=5.0, show_default=True, type=float, callback=_positive, help="Seconds to wait for one answer.")
def redis(address: str, run: str, store_dir: str | None, tags: tuple[str, ...], flush_every: float, log_path: str | None,
          interval: float, duration: float, retry_max: float, host: str | None, password: str | None, username: str | None,
          timeout: float) -> None:
    """Poll Redis INFO at ADDRESS (HOST:PORT) into host_metrics (clients, memory, ops/s, hit ratio, evictions, rejections)."""
    from capacity.live import StoreSink
    from capacity.live.redis import RedisInfoSource, name

    tag_map = _pairs(tags, "--tag")
    try:
        source = RedisInfoSource(address, host=host, password=password, username=username, timeout=timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    store = _open(store_dir, run)
    reporter = _Reporter(log_path)
    on_event = _restart_notices(reporter, source, "Redis restart detected (new run_id)")
    sink = StoreSink(store, run, collector=name, location=f"redis://{source.address}", host=source.host, flush_every=flush_every,
                     tags=tag_map, on_flush=reporter.flushed)
    try:
        summary = _poll(source, sink, interval, duration, retry_max, on_event)
    finally:
        source.close()
        reporter.close()
    click.echo(_summary_line("redis", run, summary, f"; {source.restarts} restart(s) detected"))


@collect.command()
@click.argument("url")
@_common
@_loop_options
@click.option("--host", default=None, help="Host name for the rows (default: the URL's host).")
@click.option("--kind", type=click.Choice(["auto", "health", "number", "prometheus"]), default="auto", show_default=True,
              help="How to read a 2xx body: status only, a plain number, Prometheus text, or guessed from the body.")
@click.option("--metric", default=None, help="Metric name for a plain-number body (default: app.<last path segment>).")
@click.option("--timeout", default=5.0, show_default=True, type=float, callback=_positive, help="Seconds to wait for one answer.")
def http(url: str, run: str, store_dir: str | None, tags: tuple[str, ...], flush_every: float, log_path: str | None,
         interval: float, duration: float, retry_max: float, host: str | None, kind: str, metric: str | None, timeout: float) -> None:
    """Poll an application check endpoint at URL into host_metrics: app.health (1/0), app.response_ms, and its numbers."""
    from capacity.live import StoreSink
    from capacity.live.http import HttpCheckSource, name

    tag_map = _pairs(tags, "--tag")
    source = HttpCheckSource(url, host=host, kind=kind, metric=metric, timeout=timeout)
    store = _open(store_dir, run)
    reporter = _Reporter(log_path)
    sink = StoreSink(store, run, collector=name, location=source.url, host=source.host, flush_every=flush_every,
                     tags=tag_map, on_flush=reporter.flushed)
    try:
        summary = _poll(source, sink, interval, duration, retry_max, reporter.event)
        # Health = 0 rows of polls that failed up to the end have no later good poll to travel with.
        leftover = source.drain()
        if leftover:
            sink.add(leftover)
            sink.flush()
            summary.rows = dict(sink.written)
            summary.flushes = sink.flushes
    finally:
        reporter.close()
    click.echo(_summary_line("http", run, summary, f"; {source.failures} poll(s) without an answer recorded as health 0"))
