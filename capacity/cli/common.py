"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

BAD_INPUT = 3

store_option = click.option(
    "--store",
    "store_dir",
    envvar="CAPACITY_STORE",
    type=click.Path(file_okay=False),
    default=None,
    help="Store directory (default: $CAPACITY_STORE or data/store).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    """Print `message` on stderr and exit with `code`."""
    click.echo(f"capacity: error: {message}", err=True)
    sys.exit(code)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def print_json(data: Any) -> None:
    """Print `data` as JSON (NaN and infinities become null)."""
    click.echo(json.dumps(_clean(data), indent=2, default=str))


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], formatters: dict[str, Callable[[Any], str]] | None = None) -> None:
    """Print a table to stdout with rich, right-aligning numbers."""
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="left" if name in ("label", "kind", "run", "path", "collector") else "right")
    formatters = formatters or {}
    for row in rows:
        table.add_row(*(formatters.get(c, fmt)(v) for c, v in zip(columns, row, strict=True)))
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    console.print(table)
