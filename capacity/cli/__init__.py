"""The `capacity` command line.

Exit codes: 0 ok, 2 bad usage, 3 bad input (the CollectorError or store message
on stderr, never a traceback). Every command takes `--store DIR` (or the
`CAPACITY_STORE` environment variable).
"""

from __future__ import annotations

import sys

import click

from capacity import __version__
from capacity.cli.analysis import fit, plan, steps
from capacity.cli.collect import collect
from capacity.cli.common import BAD_INPUT, fail
from capacity.cli.ingest import ingest
from capacity.cli.report import compare, report
from capacity.cli.runs import runs, stats, verify


class _Group(click.Group):
    """Turns the project's own errors into exit code 3 with a one-line message."""

    def invoke(self, ctx: click.Context) -> object:
        from capacity.schema import SchemaError
        from capacity.store import StoreError
        from collectors.base import CollectorError

        try:
            return super().invoke(ctx)
        except (CollectorError, StoreError, SchemaError) as exc:
            fail(str(exc), BAD_INPUT)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="capacity")
def main() -> None:
    """Capacity analysis of load tests and server metrics for e-learning platforms."""


for command in (ingest, runs, stats, verify, steps, fit, plan, collect, report, compare):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
