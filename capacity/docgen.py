"""Generate the documentation pages that are derived from code (`python -m capacity.docgen`)."""

from __future__ import annotations

import sys
from pathlib import Path

from capacity.schema import tables_markdown

PAGES = {"docs/tables.md": tables_markdown}


def generate(root: Path) -> list[Path]:
    """Write every generated page under `root`; return the paths written."""
    written = []
    for rel, build in PAGES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(build(), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":
    for page in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")):
        print(page)
