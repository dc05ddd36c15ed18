"""The plotly figures of the report, each built from one section's frames (see dashboards.data).

Every builder returns a plotly Figure or None when it has nothing to draw; the page says why.
M axes are log2 (buckets are powers of two), latency axes log10 (M = 1 and M = 4096 differ 50x).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboards.data import Section
from storage.queries import reason_pattern

TEMPLATE = "plotly_white"
PALETTE = qualitative.Plotly + qualitative.D3
ARMS = {"winner": "#1f77b4", "unfused": "#d62728", "cuBLAS GEMM alone": "#7f7f7f", "HBM floor": "#2ca02c"}
TOP_REASONS = 8  # reasons drawn separately in the failure bars; the rest are "other"


def _grid(titles: list[str], cols: int = 2, **kwargs) -> go.Figure:
    rows = max(1, math.ceil(len(titles) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.32 / rows if rows > 1 else 0.1, **kwargs)
    fig.update_layout(template=TEMPLATE, height=360 * rows, margin=dict(l=60, r=20, t=60, b=50))
    return fig


# Mantissas tried in turn until at least two ticks fall inside the data: plotly's own log ticks
# label 20, 30, 40 as "2 3 4", and 1-2-3-5-7 alone left an axis whose data lay between 5.5 and 6.8
# without any label.
_MANTISSAS = ((1, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9),
              tuple(round(1 + i * 0.1, 1) for i in range(90)))


def _log_ticks(*frames: pd.Series) -> list[float]:
    """Tick values for a log axis over the data: 1-2-3-5-7 per decade, finer where fewer than two
    of those fall inside the data's range."""
    values = pd.concat([f.dropna() for f in frames]) if frames else pd.Series(dtype=float)
    values = values[(values > 0) & (values < float("inf"))]
    if values.empty:
        return []
    vmin, vmax = float(values.min()), float(values.max())
    lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
    for mantissas in _MANTISSAS:
        ticks = [round(m * 10.0**e, 12) for e in range(lo, hi + 1) for m in mantissas]
        if sum(vmin <= t <= vmax for t in ticks) >= 2:
            return ticks
    # A range narrower than 10% of its values: evenly spaced ticks at a round step inside it, and one
    # step beyond each end for the axis padding (a single value gets ticks around it).
    spread = vmax - vmin if vmax > vmin else vmax * 0.1
    step = 10.0 ** math.floor(math.log10(spread / 2))
    first = math.floor(vmin / step) - 1
    return [round((first + i) * step, 12) for i in range(int((vmax - vmin) / step) + 4)]


def _log_yaxis(fig: go.Figure, index: int, *frames: pd.Series, cols: int = 2) -> None:
    """Ticks of one subplot's log y axis from its own data (each subplot autoranges on its own)."""
    fig.update_yaxes(tickvals=_log_ticks(*frames), **_cell(index, cols))


def _speedup_colors(values: list[float]) -> tuple[float, float, list]:
    """(zmin, zmax, colorscale) with 1.0 (no gain) pale and a win green; zmid would stretch the
    scale to as far below 1 as the best win is above it, and speedups are >= 1 almost always."""
    zmin, zmax = min([0.9, *values]), max([1.5, *values])
    one = (1.0 - zmin) / (zmax - zmin)
    return zmin, zmax, [[0.0, "#d73027"], [one, "#ffffbf"], [min(1.0, one + 0.02), "#f3fab6"], [1.0, "#006837"]]


def _cell(index: int, cols: int = 2) -> dict:
    return dict(row=index // cols + 1, col=index % cols + 1)


def speedup_heatmap(section: Section) -> go.Figure | None:
    """Speedup of the winner over the unfused path, ops x M buckets; cells say fused or unfused."""
    w = section.winners
    if w.empty:
        return None
    ms = sorted(set(section.studies["m"]))
    ops = section.ops
    z = [[None] * len(ms) for _ in ops]
    text = [["no winner"] * len(ms) for _ in ops]
    for row in w.itertuples(index=False):
        i, j = ops.index(row.op), ms.index(row.m)
        z[i][j] = row.speedup
        text[i][j] = f"<b>fused</b><br>{row.speedup:.2f}x" if row.arm == "fused" else f"unfused<br>{row.speedup:.2f}x"
    zmin, zmax, colorscale = _speedup_colors([v for row in z for v in row if v is not None])
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(m) for m in ms], y=ops, text=text, texttemplate="%{text}", textfont=dict(size=11),
        colorscale=colorscale, zmin=zmin, zmax=zmax, colorbar=dict(title="speedup"), xgap=2, ygap=2,
        hovertemplate="%{y} M=%{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, height=140 + 70 * len(ops), margin=dict(l=160, r=20, t=40, b=50),
                      title="winner speedup over the unfused path (bold: fused kernel chosen)")
    fig.update_xaxes(title="M (tokens in the batch)", type="category")
    fig.update_yaxes(autorange="reversed")
    return fig


def latency_lines(section: Section) -> go.Figure | None:
    """Per op: the winner, the unfused path, the cuBLAS GEMM alone and the HBM floor against M."""
    w = section.winners
    if w.empty:
        return None
    ops = [op for op in section.ops if op in set(w["op"])]
    fig = _grid(ops)
    for index, op in enumerate(ops):
        rows = w[w["op"] == op].sort_values("m")
        series = {"winner": rows["median_us"], "unfused": rows["unfused_us"],
                  "cuBLAS GEMM alone": rows["cublas_us"], "HBM floor": rows["floor_us"]}
        _log_yaxis(fig, index, *series.values())
        for name, values in series.items():
            if values.isna().all():
                continue
            marker = dict(color=ARMS[name], size=8)
            if name == "winner":  # filled: a fused kernel won; open: the unfused path stayed
                marker["symbol"] = ["circle" if arm == "fused" else "circle-open" for arm in rows["arm"]]
            fig.add_trace(go.Scatter(
                x=rows["m"], y=values, name=name, legendgroup=name, showlegend=index == 0, mode="lines+markers",
                line=dict(color=ARMS[name], dash="dot" if name == "HBM floor" else "solid"), marker=marker,
                customdata=rows["arm"],
                hovertemplate=f"{name}<br>M=%{{x}}: %{{y:.2f}} us<extra>%{{customdata}}</extra>",
            ), **_cell(index))
    fig.update_xaxes(type="log", dtick=math.log10(2), title="M")
    fig.update_yaxes(type="log", title="us")
    fig.update_layout(title="latency against M (winner marker filled where the fused kernel won)")
    return fig


def _bucket_colors(section: Section) -> dict[int, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(section.studies["m"])))}


def best_so_far(section: Section) -> go.Figure | None:
    """Per op, one line per M bucket: the best ok median (fused or unfused) after each trial."""
    t = section.trials
    t = t[(t["arm"] != "cublas") & t["trial_number"].notna()]
    if t.empty:
        return None
    ops = [op for op in section.ops if op in set(t["op"])]
    colors = _bucket_colors(section)
    fig = _grid(ops)
    shown = set()
    for index, op in enumerate(ops):
        plotted = []
        for m, rows in t[t["op"] == op].groupby("m", sort=True):
            rows = rows.sort_values(["trial_number", "trial_id"])
            ok = rows["median_us"].where(rows["status"] == "ok")
            best = ok.cummin().ffill()
            plotted.append(best)
            fig.add_trace(go.Scatter(
                x=rows["trial_number"], y=best, name=f"M={m}", legendgroup=str(m), showlegend=m not in shown,
                mode="lines", line=dict(color=colors[m], shape="hv"),
                hovertemplate=f"M={m} trial %{{x}}: best %{{y:.2f}} us<extra></extra>",
            ), **_cell(index))
            shown.add(m)
        _log_yaxis(fig, index, *plotted)  # the lines' values, not every trial's: the axis spans those
    fig.update_xaxes(title="trial number")
    fig.update_yaxes(type="log", title="best us so far")
    fig.update_layout(title="best-so-far against trial number, per study (failed trials keep the best)")
    return fig


def failure_shares(section: Section) -> go.Figure | None:
    """Per study: the share of its trials that failed or were incorrect, stacked by reason."""
    t = section.trials
    if t.empty or (t["status"] == "ok").all():
        return None
    totals = t.groupby("study_id").size()
    bad = t[t["status"] != "ok"].assign(kind=lambda f: f["status"] + ": " + f["reason"].map(reason_pattern))
    top = list(bad["kind"].value_counts().index[:TOP_REASONS])
    bad["kind"] = bad["kind"].where(bad["kind"].isin(top), "other")
    studies = section.studies.set_index("study_id")
    order = [sid for sid in section.studies["study_id"] if sid in totals.index]
    labels = [f"{studies.at[sid, 'op']} M={studies.at[sid, 'm']}" for sid in order]
    fig = go.Figure()
    for i, kind in enumerate(top + (["other"] if (bad["kind"] == "other").any() else [])):
        counts = bad[bad["kind"] == kind].groupby("study_id").size()
        shares = [counts.get(sid, 0) / totals[sid] for sid in order]
        fig.add_trace(go.Bar(x=labels, y=shares, name=_short(kind), marker_color=PALETTE[i % len(PALETTE)],
                             customdata=[[kind, int(counts.get(sid, 0)), int(totals[sid])] for sid in order],
                             hovertemplate="%{x}<br>%{customdata[0]}<br>%{customdata[1]} of %{customdata[2]} "
                                           "trials<extra></extra>"))
    fig.update_layout(template=TEMPLATE, barmode="stack", height=520, title="share of failed trials by reason",
                      legend=dict(orientation="h", yanchor="top", y=-0.35, font=dict(size=10)),
                      margin=dict(l=60, r=20, t=40, b=40))
    fig.update_yaxes(title="share of the study's trials", tickformat=".0%", range=[0, 1])
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=9))
    return fig


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def importance_heatmap(section: Section, op: str) -> go.Figure | None:
    """Parameter importance (PED-ANOVA) of one op's studies: params x M buckets."""
    imp = section.importances
    imp = imp[(imp["op"] == op) & imp["param"].notna()]
    if imp.empty:
        return None
    table = imp.pivot_table(index="param", columns="m", values="importance", aggfunc="first")
    table = table.loc[table.mean(axis=1).sort_values(ascending=False).index]
    z = [[None if pd.isna(v) else float(v) for v in row] for row in table.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(m) for m in table.columns], y=list(table.index), colorscale="Blues", zmin=0,
        texttemplate="%{z:.2f}", textfont=dict(size=10), colorbar=dict(title="importance"), xgap=1, ygap=1,
        hovertemplate="%{y} at M=%{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, height=120 + 28 * len(table.index), margin=dict(l=140, r=20, t=40, b=50),
                      title=f"{op}: parameter importance per M bucket")
    fig.update_xaxes(title="M", type="category")
    fig.update_yaxes(autorange="reversed")
    return fig


def gpu_comparison(winners: pd.DataFrame, model: str) -> go.Figure | None:
    """One model's winners on every GPU that tuned it: per op, winner us against M, a line per GPU."""
    w = winners[winners["model"] == model]
    if w["fingerprint"].nunique() < 2:
        return None
    ops = list(dict.fromkeys(w["op"]))
    fig = _grid(ops)
    gpus = list(dict.fromkeys(zip(w["gpu"], w["fingerprint"], strict=True)))
    for index, op in enumerate(ops):
        _log_yaxis(fig, index, w.loc[w["op"] == op, "median_us"])
        for g, (gpu, fp) in enumerate(gpus):
            rows = w[(w["op"] == op) & (w["fingerprint"] == fp)].sort_values("m")
            name = f"{gpu} [{fp}]"
            fig.add_trace(go.Scatter(
                x=rows["m"], y=rows["median_us"], name=name, legendgroup=name, showlegend=index == 0,
                mode="lines+markers", line=dict(color=PALETTE[g % len(PALETTE)]),
                customdata=rows["arm"], hovertemplate=f"{name}<br>M=%{{x}}: %{{y:.2f}} us (%{{customdata}})"
                                                      "<extra></extra>",
            ), **_cell(index))
    fig.update_xaxes(type="log", dtick=math.log10(2), title="M")
    fig.update_yaxes(type="log", title="winner us")
    fig.update_layout(title=f"{model}: winners per GPU")
    return fig
