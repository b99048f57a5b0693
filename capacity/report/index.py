"""The index page linking every report page found in the subfolders of a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from capacity.report.render import PAGE_META, now, write_page

KINDS = {"run": "Run reports", "compare": "Comparisons", "plan": "Capacity plans"}


def build_index(root: str | Path) -> dict[str, Any]:
    """Page data listing every `*/page.json` under `root` (one level down), grouped by kind."""
    root = Path(root)
    pages = []
    for meta in sorted(root.glob(f"*/{PAGE_META}")):
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        # "./" and quoting keep a folder named like a URL scheme (javascript:...) a relative link
        folder = quote(meta.parent.name)
        pages.append({**info, "href": f"./{folder}/index.html", "md": f"./{folder}/index.md", "folder": meta.parent.name})
    sections = []
    for kind, title in KINDS.items():
        rows = [p for p in pages if p.get("kind") == kind]
        if rows:
            sections.append({"id": kind, "title": title, "blocks": [{"type": "links", "items": rows}]})
    if not sections:
        sections.append({"id": "empty", "title": "Reports", "note": "No report pages yet.", "blocks": []})
    return {"kind": "index", "title": "Capacity reports", "subtitle": f"{len(pages)} page(s)", "summary": [], "sections": sections,
            "pages": pages, "generated": now()}


def render_index(page: dict[str, Any], root: str | Path) -> Path:
    """Write `root/index.html` and `root/index.md` linking the pages; return the HTML path."""
    return write_page(page, root, meta=False)
