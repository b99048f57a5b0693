"""What a command may do when it runs in a `capacity` process of its own.

The same commands also run inside other Python programs (a notebook, the tests'
`CliRunner`); what only suits a short-lived process of our own happens only
under `run_standalone`, which the `capacity` executable and `python -m capacity`
go through.

Both uses here are of `gc.freeze`. A command's modules live until the process
exits, yet each full collection, and the interpreter's collections at exit,
traverse their hundreds of thousands of objects again: about 0.15 s per command
once pandas, scipy, pyarrow and DuckDB are loaded. Frozen objects are still
freed by reference counting; only cycles among them go uncollected, which at
exit costs nothing and in a long-lived caller would keep garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

_standalone = False


def run_standalone(main: Callable[[], object]) -> None:
    """Run `main` as the whole life of this process (it ends by raising `SystemExit`)."""
    global _standalone
    _standalone = True
    try:
        main()
    finally:
        gc.freeze()  # what is left is freed at exit without another traversal


def settle_imports() -> None:
    """In a `run_standalone` process, exempt every object alive now (the imported modules') from the cyclic collector."""
    if _standalone:
        gc.freeze()
