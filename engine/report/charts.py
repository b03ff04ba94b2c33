"""One plotly figure per chart of the report. Every string that comes from data (segment,
category, brand names) is HTML-escaped before it reaches a chart."""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
import polars as pl

from engine.report.data import ReportData

PROFILE_FEATURES = (
    "n_events",
    "n_sessions",
    "events_per_session",
    "view_to_cart",
    "cart_abandon_rate",
    "purchase_session_rate",
    "n_purchases",
    "revenue",
    "avg_order_value",
    "avg_view_price",
    "recency_days",
    "active_days",
)
PALETTE = (
    *("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6"),
    *("#ec4899", "#14b8a6", "#f97316", "#6366f1", "#84cc16"),
)
MAX_SCATTER_POINTS = 4000


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": esc(title), "x": 0.01, "font": {"size": 16}},
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        template="plotly_white",
        font={"family": "Inter, system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.15},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _segment_names(data: ReportData) -> list[str]:
    return [esc(n) for n in data.profiles.sort("segment")["segment_name"].to_list()]


def chart_sizes(data: ReportData) -> go.Figure:
    p = data.profiles.sort("segment")
    fig = go.Figure(
        go.Bar(
            x=p["users"].to_list(),
            y=_segment_names(data),
            orientation="h",
            marker_color=[PALETTE[i % len(PALETTE)] for i in range(p.height)],
            text=[f"{s:.1%}" for s in p["user_share"].to_list()],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} users<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Segment sizes (users)", 80 + 45 * p.height)


def chart_profile(data: ReportData) -> go.Figure:
    p = data.profiles.sort("segment")
    cols = [c for c in PROFILE_FEATURES if c in p.columns]
    values = p.select(cols).to_numpy().astype(float)
    std = values.std(axis=0)
    z = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
    text = [[f"{v:,.2f}" for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=_segment_names(data),
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            colorbar={"title": "z"},
            hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig,
        "Segment profiles (mean per user; colour: relative to other segments)",
        120 + 50 * p.height,
    )


def chart_categories(data: ReportData) -> go.Figure:
    c = data.category_preference
    wide = c.pivot(on="category", index="segment_name", values="lift", sort_columns=True).fill_null(
        0
    )
    order = {name: i for i, name in enumerate(data.profiles.sort("segment")["segment_name"])}
    wide = wide.with_columns(
        pl.col("segment_name").replace_strict(order, default=99).alias("_o")
    ).sort("_o")
    cats = [col for col in wide.columns if col not in ("segment_name", "_o")]
    lift = wide.select(cats).to_numpy().astype(float)
    fig = go.Figure(
        go.Heatmap(
            z=np.log2(np.clip(lift, 1 / 16, 16)),
            x=[esc(x) for x in cats],
            y=[esc(x) for x in wide["segment_name"].to_list()],
            text=[[f"{v:.2f}x" for v in row] for row in lift],
            texttemplate="%{text}",
            colorscale="PuOr",
            zmid=0,
            colorbar={"title": "log2 lift"},
            hovertemplate="%{y}<br>%{x}: lift %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig,
        "Category preference by segment (lift over the overall view mix)",
        120 + 50 * wide.height,
    )


def chart_funnel(data: ReportData) -> go.Figure:
    fig = go.Figure()
    names = data.profiles.sort("segment")["segment_name"].to_list()
    for i, name in enumerate(names):
        rows = data.funnel.filter(pl.col("segment_name") == name).sort("step")
        fig.add_bar(
            name=esc(name),
            x=rows["stage"].to_list(),
            y=rows["of_first"].to_list(),
            marker_color=PALETTE[i % len(PALETTE)],
            customdata=rows["users"].to_list(),
            hovertemplate=f"{esc(name)}<br>%{{x}}: %{{y:.1%}} "
            "(%{customdata:,} users)<extra></extra>",
        )
    fig.update_yaxes(tickformat=".2~%", type="log", title="share of viewers (log)")
    return _layout(fig, "Funnel per segment: view → add_to_cart → purchase (share of viewers)")


def chart_interest(data: ReportData) -> go.Figure:
    p = data.product_interest.head(MAX_SCATTER_POINTS)
    fig = go.Figure()
    cats = (
        sorted(p["category"].fill_null("(none)").unique().to_list())
        if "category" in p.columns
        else ["all"]
    )
    for i, cat in enumerate(cats):
        rows = (
            p.filter(pl.col("category").fill_null("(none)") == cat)
            if "category" in p.columns
            else p
        )
        brand = (
            rows["brand"].fill_null("").to_list() if "brand" in rows.columns else [""] * rows.height
        )
        fig.add_scatter(
            name=esc(cat),
            x=rows["views"].to_list(),
            y=(rows["purchases"] + 0.5).to_list(),
            mode="markers",
            marker={"size": 6, "opacity": 0.6, "color": PALETTE[i % len(PALETTE)]},
            customdata=[
                [int(pid), esc(b)]
                for pid, b in zip(rows["product_id"].to_list(), brand, strict=True)
            ],
            hovertemplate="product %{customdata[0]} (%{customdata[1]})<br>"
            f"%{{x:,}} views, purchases %{{y:.0f}}<extra>{esc(cat)}</extra>",
        )
    fig.update_xaxes(type="log", title="views")
    fig.update_yaxes(type="log", title="purchases + 0.5")
    rho = (
        ""
        if data.spearman is None or math.isnan(data.spearman)
        else f" — Spearman ρ = {data.spearman:.2f}"
    )
    return _layout(
        fig, f"Product interest vs purchases (top {p.height:,} products by views){rho}", 480
    )


def chart_agreement(data: ReportData) -> go.Figure | None:
    if data.contingency is None or data.ari is None:
        return None
    t = data.contingency.sort("segment")
    personas = [c for c in t.columns if c not in ("segment", "segment_name")]
    counts = t.select(personas).to_numpy().astype(float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=[esc(p) for p in personas],
            y=[esc(s) for s in t["segment_name"].to_list()],
            text=[[f"{int(v):,}" for v in row] for row in counts],
            texttemplate="%{text}",
            colorscale="Greens",
            colorbar={"title": "share of segment"},
            hovertemplate="%{y} × %{x}: %{text} users<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, f"Segments vs planted personas (ARI = {data.ari:.3f})", 120 + 50 * t.height)


def chart_k(data: ReportData) -> go.Figure | None:
    if data.k_scores.is_empty():
        return None
    fig = go.Figure(
        go.Scatter(
            x=data.k_scores["k"].to_list(),
            y=data.k_scores["silhouette"].to_list(),
            mode="lines+markers",
            hovertemplate="k=%{x}: silhouette %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="k", dtick=1)
    fig.update_yaxes(title="silhouette (sample)")
    return _layout(fig, "Choosing k: silhouette per k (the best is kept)", 320)


def _retention_heatmap(table: pl.DataFrame, visible: bool, name: str) -> go.Heatmap:
    wide = table.pivot(on="period", index="cohort", values="rate", sort_columns=True).sort("cohort")
    periods = [c for c in wide.columns if c != "cohort"]
    rates = wide.select(periods).to_numpy().astype(float)
    sizes = dict(table.filter(pl.col("period") == 0).select("cohort", "cohort_users").iter_rows())
    labels = [f"{c} ({sizes.get(c, 0):,})" for c in wide["cohort"].to_list()]
    return go.Heatmap(
        z=rates,
        x=[int(p) for p in periods],
        y=labels,
        text=[["" if math.isnan(v) else f"{v:.0%}" for v in row] for row in rates],
        texttemplate="%{text}",
        colorscale="Blues",
        zmin=0,
        zmax=1,
        name=esc(name),
        visible=visible,
        hovertemplate="cohort %{y}<br>period %{x}: %{text}<extra></extra>",
    )


def chart_retention(data: ReportData) -> go.Figure | None:
    """Retention by weekly (or daily, monthly) cohort; a menu picks all users or a segment."""
    if data.retention is None or data.retention.is_empty():
        return None
    traces = [_retention_heatmap(data.retention, True, "all users")]
    names = ["all users"]
    if data.retention_by_segment is not None:
        for name in data.profiles.sort("segment")["segment_name"].to_list():
            rows = data.retention_by_segment.filter(pl.col("segment_name") == name)
            if not rows.is_empty():
                traces.append(_retention_heatmap(rows, False, name))
                names.append(name)
    fig = go.Figure(traces)
    buttons = [
        {
            "label": esc(name),
            "method": "update",
            "args": [{"visible": [i == j for j in range(len(traces))]}],
        }
        for i, name in enumerate(names)
    ]
    fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15, "xanchor": "right"}])
    fig.update_xaxes(title="periods since the cohort's first", dtick=1)
    fig.update_yaxes(title="cohort (users)", autorange="reversed")
    height = 140 + 32 * data.retention["cohort"].n_unique()
    return _layout(fig, "Retention by cohort (share of the cohort back in each period)", height)


LIFECYCLE_COLOURS = {
    "new": "#10b981",
    "returning": "#3b82f6",
    "resurrecting": "#f59e0b",
    "dormant": "#ef4444",
}


def chart_lifecycle(data: ReportData) -> go.Figure | None:
    """New, returning and resurrecting users per period above zero, dormant below."""
    if data.lifecycle is None or data.lifecycle.is_empty():
        return None
    fig = go.Figure()
    for status, colour in LIFECYCLE_COLOURS.items():
        rows = data.lifecycle.filter(pl.col("status") == status).sort("period_start")
        sign = -1 if status == "dormant" else 1
        fig.add_bar(
            name=status,
            x=[str(d) for d in rows["period_start"].to_list()],
            y=[sign * int(u) for u in rows["users"].to_list()],
            marker_color=colour,
            hovertemplate=f"{status}: %{{y:,}} users<extra>%{{x}}</extra>",
        )
    fig.update_layout(barmode="relative")
    fig.update_yaxes(title="users (dormant below zero)")
    return _layout(fig, "Lifecycle: new, returning, resurrecting and dormant users per period")
