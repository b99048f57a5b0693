"""Report pages built from analysis results: one run, a comparison of runs, a capacity plan, and an index.

`build_*` functions return plain data (tables as lists of dicts, plotly figure
dicts); `render_*` functions write `index.html`, `index.md` and the assets.
"""
