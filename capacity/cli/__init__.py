"""The `capacity` command line.

Exit codes: 0 ok, 2 bad usage, 3 bad input (the CollectorError or store message
on stderr, never a traceback). Every command takes `--store DIR` (or the
`CAPACITY_STORE` environment variable).

Commands are imported only when asked for: the analysis pulls in scipy and the
reports plotly, and a command should not pay for the others' imports.
"""

from __future__ import annotations

import importlib
import os
import sys

# Set before numpy is first imported: its OpenBLAS starts one busy-waiting thread per core, about
# 0.1 s of CPU taken from DuckDB and Arrow in every command, and no command multiplies large matrices.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

import capacity
from capacity.cli.common import BAD_INPUT, fail
from capacity.cli.process import run_standalone, settle_imports

# Command name -> "module:attribute", in the order `capacity --help` lists them.
COMMANDS: dict[str, str] = {
    "ingest": "capacity.cli.ingest:ingest",
    "runs": "capacity.cli.runs:runs",
    "stats": "capacity.cli.runs:stats",
    "verify": "capacity.cli.runs:verify",
    "steps": "capacity.cli.analysis:steps",
    "fit": "capacity.cli.analysis:fit",
    "plan": "capacity.cli.analysis:plan",
    "collect": "capacity.cli.collect:collect",
    "report": "capacity.cli.report:report",
    "compare": "capacity.cli.report:compare",
}


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"capacity, version {capacity.__version__}")
        ctx.exit()


class _Group(click.Group):
    """Loads each command on demand, and turns the project's own errors into exit code 3 with a one-line message."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        settle_imports()
        return command

    def invoke(self, ctx: click.Context) -> object:
        from capacity.schema import SchemaError
        from capacity.store import StoreError
        from collectors.base import CollectorError

        try:
            return super().invoke(ctx)
        except (CollectorError, StoreError, SchemaError) as exc:
            fail(str(exc), BAD_INPUT)
        except Exception as exc:
            # DuckDB is imported only by the commands that query (an ingest of XML needs none):
            # if it was never loaded, this cannot be its error.
            duckdb = sys.modules.get("duckdb")
            if duckdb is None or not isinstance(exc, duckdb.OutOfMemoryException):
                raise
            first = str(exc).splitlines()[0]
            fail(f"{first}: the query needs more memory than DuckDB may use; raise it with CAPACITY_DUCKDB_MEMORY (e.g. 2GB)", 1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main() -> None:
    """Capacity analysis of load tests and server metrics for e-learning platforms."""


def run() -> None:
    """The `capacity` executable (and `python -m capacity`): `main` in a process of its own."""
    run_standalone(main)


if __name__ == "__main__":  # pragma: no cover
    run()
