"""Plotly figures of the report pages, as plain figure dicts (no I/O, no statistics: the data comes computed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from capacity.report.render import esc

# Panels of the run timeline: title, y-axis unit, and the series columns (`host/` prefixed ones are per host).
PANELS = (
    ("Active users", "users", ["users"]),
    ("Throughput", "requests/s", ["throughput_rps"]),
    ("Response time", "ms", ["p50_ms", "p95_ms"]),
    ("Errors", "% of requests", ["error_pct"]),
    ("CPU busy", "%", ["/cpu_busy_pct"]),
    ("Memory used", "% of RAM", ["/mem_used_pct"]),
    ("Load average (1 min)", "tasks", ["/load_1m"]),
    ("Busy web workers", "workers", ["/busy_workers"]),
    ("Network", "bytes/s", ["/net_rx_bytes_per_s", "/net_tx_bytes_per_s"]),
)
NAMES = {"users": "users", "throughput_rps": "requests/s", "p50_ms": "p50", "p95_ms": "p95", "error_pct": "errors %",
         "cpu_busy_pct": "CPU busy", "mem_used_pct": "memory used", "load_1m": "load 1m", "busy_workers": "busy workers",
         "net_rx_bytes_per_s": "received", "net_tx_bytes_per_s": "sent"}


def _iso(index: pd.Index) -> list[str]:
    return [t.isoformat() for t in pd.DatetimeIndex(index)]


def _values(s: pd.Series) -> list[float | None]:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in s]


def timeline_figure(frame: pd.DataFrame) -> dict[str, Any] | None:
    """Every available series of a run stacked on one shared UTC time axis (None without any series)."""
    panels = []
    for title, unit, keys in PANELS:
        cols = [c for k in keys for c in frame.columns if (c.endswith(k) and "/" in c if k.startswith("/") else c == k)]
        cols = [c for c in cols if frame[c].notna().any()]
        if cols:
            panels.append((title, unit, cols))
    if not panels:
        return None
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.025,
                        subplot_titles=[f"{t} ({u})" for t, u, _ in panels])
    x = _iso(frame.index)
    hosts = {c.split("/", 1)[0] for c in frame.columns if "/" in c}
    for row, (_, unit, cols) in enumerate(panels, start=1):
        for c in cols:
            host, _, key = c.rpartition("/")
            name = NAMES.get(key, key)
            label = f"{host}: {name}" if host and len(hosts) > 1 else name
            fig.add_trace(go.Scatter(x=x, y=_values(frame[c]), name=esc(label), mode="lines+markers" if frame[c].notna().sum() < 30 else "lines",
                                     connectgaps=True, legendgroup=str(row), hovertemplate=f"%{{y:.4g}} {unit}<extra>{esc(label)}</extra>"),
                          row=row, col=1)
    fig.update_layout(height=170 * len(panels) + 90, margin={"l": 60, "r": 20, "t": 40, "b": 40}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.03}, template="plotly_white")
    fig.update_xaxes(showspikes=True, spikemode="across")
    fig.update_xaxes(title_text="time (UTC)", row=len(panels), col=1)
    return fig.to_dict()


def scalability_figures(steps: pd.DataFrame, curves: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Throughput vs users and response time vs users: the measured steps, and the model with its 95 % band."""
    figs = []
    for key, title, unit, measured in (
        ("throughput", "Throughput vs users", "requests/s", [("throughput_rps", "measured steps")]),
        ("response", "Response time vs users", "ms", [("mean_ms", "measured mean"), ("p95_ms", "measured p95")]),
    ):
        fig = go.Figure()
        if curves and curves.get(key):
            c = curves[key]
            fig.add_trace(go.Scatter(x=c["users"] + c["users"][::-1], y=c["hi"] + c["lo"][::-1], fill="toself", name=esc(c["band_name"]),
                                     line={"width": 0}, fillcolor="rgba(9,105,218,0.15)", hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=c["users"], y=c["value"], name=esc(c["name"]), mode="lines", line={"color": "#0969da"}))
            if c.get("p95"):
                fig.add_trace(go.Scatter(x=c["users"], y=c["p95"], name="model p95", mode="lines", line={"color": "#bc4c00", "dash": "dash"}))
        for col, name in measured:
            if col in steps and steps[col].notna().any():
                fig.add_trace(go.Scatter(x=_values(steps["users"]), y=_values(steps[col]), name=name, mode="markers", marker={"size": 9}))
        fig.update_layout(title=title, xaxis_title="concurrent users", yaxis_title=unit, height=380, template="plotly_white",
                          margin={"l": 60, "r": 20, "t": 50, "b": 50})
        figs.append(fig.to_dict())
    return figs


def bar_figure(title: str, categories: list[str], series: dict[str, list[float | None]], unit: str,
               errors: dict[str, tuple[list[float | None], list[float | None]]] | None = None, horizontal: bool = True) -> dict[str, Any]:
    """Grouped bars (categories are input text and get escaped), with optional asymmetric error bars (lo, hi)."""
    fig = go.Figure()
    cats = [esc(c) for c in categories]
    for name, values in series.items():
        err = None
        if errors and name in errors:
            lo, hi = errors[name]
            err = {"type": "data", "symmetric": False,
                   "array": [None if h is None or v is None or not math.isfinite(h) else h - v for v, h in zip(values, hi, strict=True)],
                   "arrayminus": [None if lo_ is None or v is None else v - lo_ for v, lo_ in zip(values, lo, strict=True)]}
        vals = [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in values]
        if horizontal:
            fig.add_trace(go.Bar(y=cats, x=vals, name=esc(name), orientation="h", error_x=err))
        else:
            fig.add_trace(go.Bar(x=cats, y=vals, name=esc(name), error_y=err))
    axis = {"title": unit}
    layout: dict[str, Any] = {"title": esc(title), "barmode": "group", "template": "plotly_white", "margin": {"l": 20, "r": 20, "t": 50, "b": 50}}
    if horizontal:
        layout.update(xaxis=axis, yaxis={"automargin": True, "autorange": "reversed"}, height=max(260, 28 * len(categories) * max(1, len(series)) + 120))
    else:
        layout.update(yaxis=axis, height=380)
    fig.update_layout(**layout)
    return fig.to_dict()


def overlay_figure(series: dict[str, pd.DataFrame], columns: list[tuple[str, str, str]]) -> dict[str, Any] | None:
    """Runs overlaid on time since their own start: one panel per (column, title, unit) with data."""
    panels = [(c, t, u) for c, t, u in columns if any(c in f and f[c].notna().any() for f in series.values())]
    if not panels:
        return None
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=[f"{t} ({u})" for _, t, u in panels])
    palette = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e"]
    for i, (run, frame) in enumerate(series.items()):
        if frame.empty:
            continue
        t0 = pd.DatetimeIndex(frame.index).min()
        x = list(np.round((pd.DatetimeIndex(frame.index) - t0).total_seconds().to_numpy(float), 3))
        for row, (col, _, _) in enumerate(panels, start=1):
            if col in frame and frame[col].notna().any():
                fig.add_trace(go.Scatter(x=x, y=_values(frame[col]), name=esc(run), legendgroup=esc(run), showlegend=row == 1, mode="lines",
                                         line={"color": palette[i % len(palette)]}, connectgaps=True), row=row, col=1)
    fig.update_layout(height=200 * len(panels) + 90, template="plotly_white", hovermode="x unified", margin={"l": 60, "r": 20, "t": 40, "b": 40})
    fig.update_xaxes(title_text="seconds since the run's start", row=len(panels), col=1)
    return fig.to_dict()
