"""Writing report pages: one HTML page (Jinja2, autoescaped) and one Markdown page per report, plus plotly.js beside them.

A page is plain data built by a `build_*` function::

    {"kind": "run", "title": ..., "subtitle": ..., "summary": [item, ...], "conclusions": [str, ...],
     "sections": [{"id", "title", "note", "blocks": [block, ...]}], "generated": iso time}

Blocks: `{"type": "table", "columns": [{"key", "title", "kind"}], "rows": [dict], "sortable": bool}`,
`{"type": "figure", "figure": plotly figure dict, "caption": str}`, `{"type": "text", "text": str}`,
`{"type": "list", "items": [str]}` and `{"type": "kv", "items": [{"name", "value", "kind", "note"}]}`.

Everything that came from an input file (labels, host names, commands,
messages) is text: Jinja2 escapes it in HTML, `md_escape` in Markdown, and
`esc` before it goes into a chart (plotly shows entities as characters and
never interprets them as markup). The pages load nothing from the network:
plotly.js is written beside them and a Content-Security-Policy forbids any
other origin.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import jinja2

ASSET_DIR = "assets"
PLOTLY_JS = "plotly.min.js"
PAGE_META = "page.json"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def esc(text: object) -> str:
    """Text from an input file made inert for plotly labels (entities are shown as characters)."""
    return html.escape(str(text), quote=True)


def fmt(value: Any, kind: str = "text") -> str:
    """A cell value as text: `int`, `ms`, `s`, `pct`, `rps`, `ratio`, `p`, `bytes`, `float`, `bool` or `text`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "text":
        return str(value)
    if kind == "bool":
        return {True: "yes", False: "no"}.get(value, str(value))
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"
    if kind == "s":
        return f"{v:,.1f}"
    if kind == "pct":
        return f"{v:.1f} %"
    if kind == "rps":
        return f"{v:,.2f}" if abs(v) >= 0.1 else f"{v:.4f}"
    if kind == "ratio":
        return f"{v:.2f}×"
    if kind == "p":
        return "< 0.001" if v < 0.001 else f"{v:.3f}"
    if kind == "bytes":
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if abs(v) >= size:
                return f"{v / size:,.2f} {unit}"
        return f"{v:,.0f} B"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def sort_key(value: Any) -> str:
    """The value a sortable table column sorts by (numbers numerically, the rest as text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(float(value))
    return str(value)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("capacity.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["sort_key"] = sort_key
    env.filters["figure_json"] = figure_json
    return env


def figure_json(figure: dict[str, Any]) -> str:
    """A plotly figure as JSON safe inside `<script type="application/json">` (no `<`, `>`, `&` left as such)."""
    import plotly.io as pio

    text = pio.to_json(figure, validate=False)
    for ch, rep in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, rep)
    return text


def render_html(page: dict[str, Any], asset_prefix: str = ASSET_DIR) -> str:
    """The HTML of a page, from the template named after its kind."""
    template = _env().get_template(f"{page['kind']}.html")
    return template.render(page=page, plotly_src=f"{asset_prefix}/{PLOTLY_JS}")


def md_escape(text: object, line_start: bool = True) -> str:
    """Text from an input file made inert in Markdown: no markup, links, HTML or line breaks survive.

    With `line_start`, a leading list or heading marker is escaped too (not needed inside table cells).
    """
    s = " ".join(str(text).split())
    s = _MD_SPECIAL.sub(r"\\\1", s)
    if line_start:
        s = "\\" + s if s[:1] in ("-", "=") else re.sub(r"^(\d+)([.)])", r"\1\\\2", s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_table(columns: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table, every cell escaped."""
    out = ["| " + " | ".join(md_escape(c["title"]) for c in columns) + " |", "|" + "|".join("---" if c.get("kind", "text") == "text" else "---:" for c in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(md_escape(fmt(r.get(c["key"]), c.get("kind", "text")), line_start=False) for c in columns) + " |")
    return out


def render_markdown(page: dict[str, Any]) -> str:
    """The Markdown version of a page for the documentation site (charts are listed, they live in index.html)."""
    out = [f"# {md_escape(page['title'])}", ""]
    if page.get("subtitle"):
        out += [md_escape(page["subtitle"]), ""]
    if page.get("conclusions"):
        out += ["## Conclusions", ""] + [f"- {md_escape(c)}" for c in page["conclusions"]] + [""]
    if page.get("summary"):
        out += ["## Summary", ""]
        out += md_table([{"key": "name", "title": "figure"}, {"key": "text", "title": "value"}, {"key": "note", "title": "note"}],
                        [{"name": i["name"], "text": fmt(i["value"], i.get("kind", "text")), "note": i.get("note") or ""} for i in page["summary"]])
        out.append("")
    for section in page["sections"]:
        out += [f"## {md_escape(section['title'])}", ""]
        if section.get("note"):
            out += [f"*{md_escape(section['note'])}*", ""]
        for block in section.get("blocks", []):
            out += _md_block(block) + [""]
    out += [f"Generated {md_escape(page['generated'])} by `capacity`; interactive charts are in [index.html](index.html).", ""]
    return "\n".join(out)


def _md_block(block: dict[str, Any]) -> list[str]:
    kind = block["type"]
    if kind == "table":
        return ([f"**{md_escape(block['caption'])}**", ""] if block.get("caption") else []) + md_table(block["columns"], block["rows"])
    if kind == "figure":
        return [f"*Chart: {md_escape(block.get('caption') or 'see index.html')} (interactive in index.html).*"]
    if kind == "text":
        return [md_escape(block["text"])]
    if kind == "list":
        return [f"- {md_escape(item)}" for item in block["items"]]
    if kind == "links":
        return [f"- [{md_escape(i['title'], line_start=False)}]({i['md']})" + (f": {md_escape(i['subtitle'], line_start=False)}" if i.get("subtitle") else "")
                for i in block["items"]]
    if kind == "kv":
        return md_table([{"key": "name", "title": "figure"}, {"key": "text", "title": "value"}, {"key": "note", "title": "note"}],
                        [{"name": i["name"], "text": fmt(i["value"], i.get("kind", "text")), "note": i.get("note") or ""} for i in block["items"]])
    raise ValueError(f"unknown block type {kind!r}")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_assets(out_dir: Path) -> Path:
    """plotly.js (the copy bundled with the plotly package) in `out_dir/assets/`, written once."""
    from plotly.offline import get_plotlyjs

    target = out_dir / ASSET_DIR / PLOTLY_JS
    code = get_plotlyjs()
    if not target.is_file() or target.stat().st_size != len(code.encode("utf-8")):
        target.parent.mkdir(parents=True, exist_ok=True)
        _write(target, code)
    return target


def write_page(page: dict[str, Any], out_dir: str | Path, meta: bool = True) -> Path:
    """Write `out_dir/index.html`, `out_dir/index.md`, the assets and (with `meta`) `out_dir/page.json`, which the index reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_assets(out)
    _write(out / "index.html", render_html(page))
    _write(out / "index.md", render_markdown(page))
    if meta:
        info = {"kind": page["kind"], "title": page["title"], "subtitle": page.get("subtitle"), "generated": page["generated"]}
        _write(out / PAGE_META, json.dumps(info, indent=1))
    return out / "index.html"


def now() -> str:
    """The generation time stamped on pages (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
