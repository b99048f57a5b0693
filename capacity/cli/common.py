"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

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


LEFT_ALIGNED = ("label", "kind", "run", "path", "collector")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], formatters: dict[str, Callable[[Any], str]] | None = None) -> None:
    """Print a table to stdout as aligned plain text, numbers right-aligned.

    Plain text rather than a rich table: a step table has thousands of rows, and
    the output stays the same whether or not it goes to a terminal.
    """
    formatters = formatters or {}
    cells = [[formatters.get(c, fmt)(v) for c, v in zip(columns, row, strict=True)] for row in rows]
    widths = [max([len(name), *(len(r[i]) for r in cells)]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if c in LEFT_ALIGNED else v.rjust(w) for c, v, w in zip(columns, values, widths, strict=True)).rstrip()

    out = [title, line(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    click.echo("\n".join(out))
